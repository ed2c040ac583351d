-- ---
-- description: 教务系统 course catalogue (jw_kc), one row per 课程号 (kch); credits as DECIMAL.
-- source: academic.courses
-- key: [kch]
-- columns:
--   course_code: 课程号 (kch), the course's key in 教务.
--   course_name: 课程名称 (kcmc).
--   credits: 学分, DECIMAL(4,1).
--   course_category: 课程类别 (kclb) as 教务 writes it.
--   unit_code: 开课单位号 (kkdwh): the department that teaches the course.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
WITH v AS (
    SELECT c.*,
           count(DISTINCT hash(c.kcmc, c.xf, c.kclb, c.kkdwh))
               OVER (PARTITION BY c.kch)          AS _versions,
           try_cast(trim(c.xf) AS DECIMAL(4, 1))                                       AS _credits
    FROM current c
)
SELECT
    trim(v.kch)                                    AS course_code,
    nullif(trim(v.kcmc), '')                       AS course_name,
    v._credits                                     AS credits,
    nullif(trim(v.kclb), '')                       AS course_category,
    nullif(trim(v.kkdwh), '')                      AS unit_code,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN v._credits IS NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'kch ' || v.kch || ' has ' || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN 'kch ' || v.kch || ' appears more than once in load ' || v._load_id
        ELSE 'xf ''' || coalesce(v.xf, 'NULL') || ''' is not a number of credits'
    END                                            AS _reject_detail,
    v.kch                                          AS _record_key
FROM v
