-- ---
-- description: One row per student and term (学年学期): courses, credits attempted and earned, credit-weighted average score, GPA on a 4-point scale and failed courses.
-- columns:
--   student_no: 学号.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   term: 学年学期.
--   courses: Courses of the term, each once at its best attempt.
--   credits: Credits attempted.
--   credits_earned: Credits of courses with a counted score of 60 or more.
--   average_score: Credit-weighted average of the counted scores (a makeup counts at most 60).
--   gpa: sum(credits x grade point) / sum(credits), 2 decimals.
--   failed_courses: Courses whose counted score is below 60.
-- ---
-- Formula (documented in docs/data-model-facts.md):
-- 1. Each course of the term counts once, at its best attempt in that term; a 补考 (makeup) score counts
--    at most 60 (a passed make-up is recorded as a pass, not as the score). A 重修 (retake) is taken in a
--    later term and counts in that term at its score.
-- 2. The attempt's grade point comes from models/codesets/grade_point_scale.csv (90+ 4.0, 85 3.7, 82 3.3,
--    78 3.0, 75 2.7, 72 2.3, 68 2.0, 64 1.5, 60 1.0, below 60 0).
-- 3. GPA = sum(credits x grade point) / sum(credits), rounded to 2 decimals; failed_courses = courses whose
--    counted score is below 60.
WITH course_term AS (
    SELECT student_no, term, course_code,
           any_value(person_key)                                                      AS person_key,
           any_value(credits)                                                         AS credits,
           max(CASE WHEN exam_type = 'makeup' THEN least(score, 60) ELSE score END)   AS counted_score
    FROM warehouse.fact_course_grade
    GROUP BY student_no, term, course_code
), scale AS (
    SELECT CAST(min_score AS DOUBLE) AS min_score, CAST(grade_point AS DECIMAL(3, 1)) AS grade_point
    FROM staging.cs_grade_point_scale
), score_point AS (  -- the band depends on the score alone: an ASOF over the distinct scores, not every row
    SELECT d.counted_score, s.grade_point
    FROM (SELECT DISTINCT counted_score FROM course_term WHERE counted_score IS NOT NULL) d
    ASOF LEFT JOIN scale s ON d.counted_score >= s.min_score
), pointed AS (
    SELECT ct.*, sp.grade_point
    FROM course_term ct LEFT JOIN score_point sp USING (counted_score)
)
SELECT
    student_no,
    any_value(person_key)                                                   AS person_key,
    term,
    count(*)                                                                AS courses,
    sum(credits)                                                            AS credits,
    coalesce(sum(credits) FILTER (WHERE counted_score >= 60), 0)            AS credits_earned,
    round(sum(credits * counted_score) / nullif(sum(credits), 0), 2)        AS average_score,
    CAST(round(sum(credits * grade_point) / nullif(sum(credits), 0), 2) AS DECIMAL(4, 2)) AS gpa,
    count(*) FILTER (WHERE counted_score < 60)                              AS failed_courses
FROM pointed
GROUP BY student_no, term
ORDER BY student_no, term
