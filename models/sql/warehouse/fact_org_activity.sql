-- ---
-- description: One row per 三会一课 / 主题党日 meeting of a party organisation: type, date, start and end, place, lecturer, title, with attendance counts. Meetings of an unknown 党组织编码 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   meeting_id: The app's meeting id.
--   org_code: 党组织编码 of the organisation that held it.
--   meeting_type: branch_assembly, branch_committee, group_meeting, party_lecture, theme_day or life_meeting.
--   meeting_type_name: The type as the app writes it.
--   meeting_date: Date (Beijing).
--   start_at: Start instant.
--   end_at: End instant.
--   duration_minutes: Minutes from start to end.
--   place: Where it was held.
--   lecturer: Lecturer (party lectures).
--   title: Title.
--   expected_attendees: People on the roll (attendance fact).
--   present: Of them, present.
--   excused: Of them, excused.
--   absent: Of them, absent.
--   attendance_rate: present / expected_attendees; NULL when nobody was expected.
-- ---
-- Attendance counts come from the attendance fact (orphan rows already left out there); attendance_rate
-- is present / expected attendees (NULL when nobody was expected).
CREATE OR REPLACE TEMP TABLE _fact_org_activity AS
WITH attendance AS (
    SELECT meeting_id,
           count(*)                                   AS expected_attendees,
           count(*) FILTER (WHERE status = 'present') AS present,
           count(*) FILTER (WHERE status = 'excused') AS excused,
           count(*) FILTER (WHERE status = 'absent')  AS absent
    FROM warehouse.fact_activity_attendance
    GROUP BY meeting_id
)
SELECT
    m.meeting_id,
    m.org_code,
    m.meeting_type,
    m.meeting_type_name,
    m.meeting_date,
    m.start_at,
    m.end_at,
    CAST(date_diff('minute', m.start_at, m.end_at) AS INTEGER) AS duration_minutes,
    m.place,
    m.lecturer,
    m.title,
    coalesce(a.expected_attendees, 0)                  AS expected_attendees,
    coalesce(a.present, 0)                             AS present,
    coalesce(a.excused, 0)                             AS excused,
    coalesce(a.absent, 0)                              AS absent,
    round(a.present / nullif(a.expected_attendees, 0), 4) AS attendance_rate,
    ko.org_code IS NULL                                AS _unknown_org
FROM staging.stg_activity_meetings m
LEFT JOIN warehouse.known_org ko ON ko.org_code = m.org_code
LEFT JOIN attendance a ON a.meeting_id = m.meeting_id;

CREATE OR REPLACE TABLE warehouse.fact_org_activity AS
SELECT * EXCLUDE (_unknown_org) FROM _fact_org_activity WHERE NOT _unknown_org
ORDER BY start_at, meeting_id;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_org_activity';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_org('fact_org_activity', 'activity,party', meeting_id, NULL::VARCHAR,
                         'meeting ' || meeting_id || ' of 党组织编码', 'activity.meetings', 'org_code', org_code))
FROM _fact_org_activity WHERE _unknown_org;

DROP TABLE _fact_org_activity;
