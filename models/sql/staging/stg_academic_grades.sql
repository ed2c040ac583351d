-- ---
-- description: 教务系统 grades (jw_cj), one row per 学号, 课程号, 学年学期 and 考试性质; scores as points (grade words via models/codesets/grade_word.csv), the original value kept.
-- source: academic.grades
-- key: [xh, kch, xnxq, ksxz]
-- updated_at: updated_at
-- columns:
--   grade_id: The grade's row id in jw_cj.
--   student_no: 学号 (xh) of the student graded.
--   course_code: 课程号 (kch) of the course.
--   term: 学年学期 (xnxq), e.g. 2023-2024-1.
--   exam_type: 考试性质 coded (map_facts.csv: normal, makeup, retake, ...).
--   exam_type_name: 考试性质 (ksxz) as 教务 writes it.
--   score: The score in points: the number, or a grade word's points (grade_word.csv).
--   score_original: 成绩 (cj) as sent: a number or a grade word.
--   score_kind: numeric, or grade_word when the score was a word.
--   source_updated_at: When the source system last changed the record, as it reports it.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- The key is the grade's natural key, not the database's surrogate id: the same grade stored twice under
-- two ids is a duplicate (the lowest id is kept; the copy is quarantined). Two rows for one key with
-- different scores are a conflict: both are quarantined, never guessed.
-- cj is a number (78, 91.5) or, for 考查 courses, a grade word 优秀/良好/中等/及格/不及格 that becomes
-- points by grade_word.csv (95/85/75/65/0); score_original keeps what the source said.
WITH c AS (
    SELECT * EXCLUDE (_duplicate),
           row_number() OVER (PARTITION BY xh, kch, xnxq, ksxz ORDER BY try_cast(id AS BIGINT), _row_number) > 1
               AS _duplicate,
           count(DISTINCT cj) OVER (PARTITION BY xh, kch, xnxq, ksxz)   AS _versions
    FROM current
), v AS (
    SELECT c.*,
           try_cast(trim(c.cj) AS DOUBLE)                                AS _number,
           try_cast(w.points AS DOUBLE)                                   AS _word_points,
           e.code                                                         AS _exam_type,
           coalesce(regexp_full_match(trim(c.xnxq), '[0-9]{4}-[0-9]{4}-[12]')
               AND try_cast(substr(trim(c.xnxq), 6, 4) AS INTEGER) = try_cast(substr(trim(c.xnxq), 1, 4) AS INTEGER) + 1,
               false)                                                     AS _term_ok
    FROM c
    LEFT JOIN staging.cs_grade_word w ON w.name = trim(c.cj)
    LEFT JOIN staging.code_map e ON e.system = 'academic' AND e.field = 'exam_type' AND e.source_value = trim(c.ksxz)
)
SELECT
    try_cast(v.id AS BIGINT)                       AS grade_id,
    trim(v.xh)                                     AS student_no,
    trim(v.kch)                                    AS course_code,
    trim(v.xnxq)                                   AS term,
    v._exam_type                                   AS exam_type,
    trim(v.ksxz)                                   AS exam_type_name,
    coalesce(v._number, v._word_points)            AS score,
    trim(v.cj)                                     AS score_original,
    CASE WHEN v._number IS NOT NULL THEN 'numeric' ELSE 'grade_word' END AS score_kind,
    try_cast(v.updated_at AS TIMESTAMP)            AS source_updated_at,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN v._exam_type IS NULL THEN 'unmapped_code'
        WHEN NOT v._term_ok THEN 'unparseable_value'
        WHEN v._number IS NULL AND v._word_points IS NULL AND regexp_matches(coalesce(v.cj, ''), '[0-9]')
            THEN 'unparseable_value'
        WHEN v._number IS NULL AND v._word_points IS NULL THEN 'unmapped_code'
        WHEN v._number NOT BETWEEN 0 AND 100 THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'xh+kch+xnxq+ksxz ' || v.xh || '|' || v.kch || '|' || v.xnxq || '|' || v.ksxz
                                  || ' has ' || v._versions || ' different cj values (id ' || v.id || ')'
        WHEN v._duplicate THEN 'xh+kch+xnxq+ksxz ' || v.xh || '|' || v.kch || '|' || v.xnxq || '|' || v.ksxz
                               || ' stored again as id ' || v.id
        WHEN v._exam_type IS NULL THEN 'ksxz ''' || coalesce(v.ksxz, 'NULL') || ''' has no mapping'
        WHEN NOT v._term_ok THEN 'xnxq ''' || coalesce(v.xnxq, 'NULL') || ''' is not YYYY-YYYY-1/2'
        WHEN v._number IS NULL AND v._word_points IS NULL AND regexp_matches(coalesce(v.cj, ''), '[0-9]')
            THEN 'cj ''' || v.cj || ''' is not a number'
        WHEN v._number IS NULL AND v._word_points IS NULL
            THEN 'cj ''' || coalesce(v.cj, 'NULL') || ''' is neither a number nor a grade word in grade_word.csv'
        ELSE 'cj ''' || v.cj || ''' is outside 0-100'
    END                                            AS _reject_detail,
    v.xh || '|' || v.kch || '|' || v.xnxq || '|' || v.ksxz AS _record_key
FROM v
