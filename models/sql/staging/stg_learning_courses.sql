-- ---
-- description: Online learning platform courses (在线课程/微党课/网络讲座), one row per course_id; kind coded, hours as DECIMAL, epoch-ms times parsed.
-- source: learning.courses
-- key: [course_id]
-- columns:
--   course_id: The learning platform's course id.
--   title: Course title.
--   kind: Course kind coded (online_course, micro_lecture, web_lecture).
--   kind_name: Kind as the platform writes it (在线课程/微党课/网络讲座).
--   hours: Credit hours, DECIMAL(6,2).
--   published_at: When the course was published (from epoch milliseconds).
--   published_on: Beijing calendar date of publication.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
WITH v AS (
    SELECT c.*,
           count(DISTINCT hash(c.title, c.kind, c.hours, c.published_at))
               OVER (PARTITION BY c.course_id)          AS _versions,
           try_cast(trim(c.hours) AS DECIMAL(6, 2))                                  AS _hours,
           CASE WHEN regexp_full_match(trim(c.published_at), '[0-9]{12,13}')
                THEN to_timestamp(CAST(trim(c.published_at) AS BIGINT) / 1000.0) END AS _published
    FROM current c
)
SELECT
    trim(v.course_id)                              AS course_id,
    nullif(trim(v.title), '')                      AS title,
    k.code                                         AS kind,
    trim(v.kind)                                   AS kind_name,
    v._hours                                       AS hours,
    v._published                                   AS published_at,
    parse_date_any(v.published_at)                 AS published_on,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN k.code IS NULL THEN 'unmapped_code'
        WHEN v._hours IS NULL AND nullif(trim(v.hours), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._published IS NULL AND nullif(trim(v.published_at), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'course_id ' || v.course_id || ' has ' || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN 'course_id ' || v.course_id || ' appears more than once in load ' || v._load_id
        WHEN k.code IS NULL THEN 'kind ''' || coalesce(v.kind, 'NULL') || ''' has no mapping'
        WHEN v._hours IS NULL AND nullif(trim(v.hours), '') IS NOT NULL THEN 'hours ''' || v.hours || ''' is not a number'
        ELSE 'published_at ''' || v.published_at || ''' is not epoch milliseconds'
    END                                            AS _reject_detail,
    v.course_id                                    AS _record_key
FROM v
LEFT JOIN staging.code_map k ON k.system = 'learning' AND k.field = 'course_kind' AND k.source_value = trim(v.kind)
