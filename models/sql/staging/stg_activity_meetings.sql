-- ---
-- description: 三会一课 and 主题党日 meetings from the 智慧党建 app, one row per meeting_id; type coded, times parsed (ISO 8601, +08:00).
-- source: activity.meetings
-- key: [meeting_id]
-- required: [org_code]
-- updated_at: updated_at
-- columns:
--   meeting_id: The app's meeting id.
--   org_code: 党组织编码 of the organisation that held the meeting.
--   meeting_type: 三会一课 / 主题党日 type coded (branch_assembly, branch_committee, group_meeting, party_lecture, theme_day, life_meeting).
--   meeting_type_name: The meeting type as the app writes it.
--   title: The meeting's title.
--   meeting_date: Beijing calendar date of the start.
--   start_at: Start instant, TIMESTAMPTZ.
--   end_at: End instant, TIMESTAMPTZ.
--   place: Where it was held.
--   lecturer: Lecturer's name (party lectures), normalised.
--   source_updated_at: When the source system last changed the record, as it reports it.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- meeting_date is the local (Beijing) calendar date of start_time; start_at / end_at keep the instant.
WITH v AS (
    SELECT c.*,
           count(DISTINCT hash(c.org_code, c.type, c.title, c.start_time, c.end_time, c.place, c.lecturer))
               OVER (PARTITION BY c.meeting_id)          AS _versions,
           try_cast(trim(c.start_time) AS TIMESTAMPTZ)                              AS _start,
           try_cast(trim(c.end_time) AS TIMESTAMPTZ)                                AS _end
    FROM current c
)
SELECT
    trim(v.meeting_id)                             AS meeting_id,
    trim(v.org_code)                               AS org_code,
    t.code                                         AS meeting_type,
    trim(v.type)                                   AS meeting_type_name,
    nullif(trim(v.title), '')                      AS title,
    parse_date_any(v.start_time)                   AS meeting_date,
    v._start                                       AS start_at,
    v._end                                         AS end_at,
    nullif(trim(v.place), '')                      AS place,
    name_clean(v.lecturer)                         AS lecturer,
    try_cast(v.updated_at AS TIMESTAMPTZ)          AS source_updated_at,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN t.code IS NULL THEN 'unmapped_code'
        WHEN v._start IS NULL THEN 'unparseable_value'
        WHEN v._end IS NULL AND nullif(trim(v.end_time), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'meeting_id ' || v.meeting_id || ' has ' || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN 'meeting_id ' || v.meeting_id || ' appears more than once in load ' || v._load_id
        WHEN t.code IS NULL THEN 'type ''' || coalesce(v.type, 'NULL') || ''' has no mapping'
        WHEN v._start IS NULL THEN 'start_time ''' || coalesce(v.start_time, 'NULL') || ''' is not an ISO 8601 time'
        ELSE 'end_time ''' || v.end_time || ''' is not an ISO 8601 time'
    END                                            AS _reject_detail,
    v.meeting_id                                   AS _record_key
FROM v
LEFT JOIN staging.code_map t ON t.system = 'activity' AND t.field = 'meeting_type' AND t.source_value = trim(v.type)
