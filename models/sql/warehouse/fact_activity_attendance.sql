-- ---
-- description: One row per meeting and expected attendee (签到): status present/excused/absent and check-in time, with the meeting's organisation and date. Rows for an unknown person or meeting are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   meeting_id: The meeting (fact_org_activity).
--   person_no: 学号/工号 of the expected attendee.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   org_code: 党组织编码 of the organisation that held the meeting.
--   meeting_type: The meeting's type code.
--   meeting_date: The meeting's date (Beijing).
--   status: present, excused or absent.
--   status_name: The app's status word as sent.
--   checked_in_at: Check-in instant; NULL when absent.
-- ---
-- A person_no is known when HR or the student system holds it (warehouse.known_person).
CREATE OR REPLACE TEMP TABLE _fact_activity_attendance AS
WITH known_meeting AS (
    SELECT meeting_id FROM staging.stg_activity_meetings
    UNION
    SELECT trim(record_key) FROM quality.quarantine
    WHERE stage = 'staging' AND source = 'activity' AND entity = 'meetings'
), person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
)
SELECT
    a.meeting_id,
    a.person_no,
    p.person_key,
    m.org_code,
    m.meeting_type,
    m.meeting_date,
    a.status,
    a.status_name,
    a.checked_in_at,
    a.meeting_id || '|' || a.person_no                 AS _record_key,
    kp.person_no IS NULL                               AS _unknown_person,
    km.meeting_id IS NULL                              AS _unknown_meeting
FROM staging.stg_activity_attendance a
LEFT JOIN staging.stg_activity_meetings m ON m.meeting_id = a.meeting_id
LEFT JOIN warehouse.known_person kp ON kp.person_no = a.person_no
LEFT JOIN known_meeting km ON km.meeting_id = a.meeting_id
LEFT JOIN person_lookup p ON p.person_no = a.person_no;

CREATE OR REPLACE TABLE warehouse.fact_activity_attendance AS
SELECT * EXCLUDE (_record_key, _unknown_person, _unknown_meeting)
FROM _fact_activity_attendance
WHERE NOT _unknown_person AND NOT _unknown_meeting
ORDER BY meeting_id, person_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_activity_attendance';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_person('fact_activity_attendance', 'activity,hr,student', _record_key,
                            'attendance at ' || meeting_id || ' by person_no', 'activity.attendance', 'person_no', person_no))
FROM _fact_activity_attendance WHERE _unknown_person;

INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT 'orphan_reference', person_key, 'activity', _record_key,
       'attendance by ' || person_no || ' at meeting_id ' || meeting_id || ', which is not a meeting',
       json_object('entity', 'activity.attendance', 'field', 'meeting_id', 'value', meeting_id,
                   'references', 'activity.meetings'),
       'fact_activity_attendance'
FROM _fact_activity_attendance WHERE _unknown_meeting;

DROP TABLE _fact_activity_attendance;
