-- ---
-- description: Meeting attendance (签到) from the 智慧党建 app, one row per meeting_id and person_no (学号/工号); status coded.
-- source: activity.attendance
-- key: [meeting_id, person_no]
-- updated_at: updated_at
-- columns:
--   meeting_id: The meeting (智慧党建 app meeting_id).
--   person_no: 学号/工号 of the expected attendee.
--   status: Attendance coded: present, excused or absent.
--   status_name: The app's status word as sent.
--   checked_in_at: Check-in instant (签到), TIMESTAMPTZ; NULL when absent.
--   source_updated_at: When the source system last changed the record, as it reports it.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- Status 出席/请假/缺席 maps to present/excused/absent (map_facts.csv). Whether the person and the
-- meeting exist is a warehouse question (fact_activity_attendance), not a row-level rule.
WITH v AS (
    SELECT c.*,
           try_cast(trim(c.checkin_time) AS TIMESTAMPTZ)                            AS _checkin,
           count(DISTINCT hash(c.status, c.checkin_time))
               OVER (PARTITION BY c.meeting_id, c.person_no)                         AS _versions
    FROM current c
)
SELECT
    trim(v.meeting_id)                             AS meeting_id,
    trim(v.person_no)                              AS person_no,
    s.code                                         AS status,
    trim(v.status)                                 AS status_name,
    v._checkin                                     AS checked_in_at,
    try_cast(v.updated_at AS TIMESTAMPTZ)          AS source_updated_at,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN s.code IS NULL THEN 'unmapped_code'
        WHEN v._checkin IS NULL AND nullif(trim(v.checkin_time), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'meeting_id+person_no ' || v.meeting_id || '|' || v.person_no || ' has '
                                  || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN 'meeting_id+person_no ' || v.meeting_id || '|' || v.person_no
                               || ' appears more than once in load ' || v._load_id
        WHEN s.code IS NULL THEN 'status ''' || coalesce(v.status, 'NULL') || ''' has no mapping'
        ELSE 'checkin_time ''' || v.checkin_time || ''' is not an ISO 8601 time'
    END                                            AS _reject_detail,
    v.meeting_id || '|' || v.person_no             AS _record_key
FROM v
LEFT JOIN staging.code_map s ON s.system = 'activity' AND s.field = 'attendance_status'
                            AND s.source_value = trim(v.status)
