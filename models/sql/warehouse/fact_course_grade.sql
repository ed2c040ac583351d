-- ---
-- description: One row per grade (学号, 课程号, 学年学期, 考试性质) with course name and credits, score as points (the original value kept), grade point and pass flag. Grades for an unknown 学号 or 课程号 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   grade_id: The grade's id in jw_cj.
--   student_no: 学号.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   course_code: 课程号.
--   course_name: 课程名称 from the catalogue jw_kc.
--   course_category: 课程类别 from the catalogue.
--   credits: 学分 of the course.
--   term: 学年学期 (e.g. 2023-2024-1).
--   exam_type: regular, makeup (补考) or retake (重修).
--   exam_type_name: 考试性质 as 教务 writes it.
--   score: Score in points (a grade word as its points).
--   score_original: 成绩 as sent.
--   score_kind: numeric or grade_word.
--   grade_point: 4-point grade point of the score (grade_point_scale.csv).
--   passed: score >= 60.
--   source_updated_at: When 教务 last changed the grade.
-- ---
-- A 学号 is known when the student system holds it (in staging, or quarantined there for a row-level
-- defect: the student exists, the record is what is wrong). person_key comes from dim_person by 学号;
-- a 学号 that leads to no person, or to more than one, gets NULL.
-- grade_point: the 4-point scale in models/codesets/grade_point_scale.csv (the band whose min_score is
-- the highest not above the score). passed: score >= 60.
-- Linear in the grades: the known numbers and each distinct score's grade point are small lookup tables
-- joined by hash; the grades are read once for the fact and once (two columns) for the orphans, with no
-- intermediate copy of every grade and no sort of the whole table. (An ASOF join of every grade against the
-- scale sorted all the grades; a per-score lookup gives the same band: it depends on the score alone.)
CREATE OR REPLACE TEMP TABLE _known_student AS
SELECT student_no FROM staging.stg_students
UNION
SELECT trim(record_key) FROM quality.quarantine
WHERE stage = 'staging' AND source = 'student' AND entity = 'students';

CREATE OR REPLACE TEMP TABLE _known_course AS
SELECT course_code FROM staging.stg_academic_courses
UNION
SELECT trim(record_key) FROM quality.quarantine
WHERE stage = 'staging' AND source = 'academic' AND entity = 'courses';

CREATE OR REPLACE TEMP TABLE _score_grade_point AS
WITH scale AS (
    SELECT CAST(min_score AS DOUBLE) AS min_score, CAST(grade_point AS DECIMAL(3, 1)) AS grade_point
    FROM staging.cs_grade_point_scale
)
SELECT d.score, s.grade_point
FROM (SELECT DISTINCT score FROM staging.stg_academic_grades WHERE score IS NOT NULL) d
ASOF LEFT JOIN scale s ON d.score >= s.min_score;

CREATE OR REPLACE TABLE warehouse.fact_course_grade AS
SELECT
    g.grade_id,
    g.student_no,
    p.person_key,
    g.course_code,
    c.course_name,
    c.course_category,
    c.credits,
    g.term,
    g.exam_type,
    g.exam_type_name,
    g.score,
    g.score_original,
    g.score_kind,
    s.grade_point,
    g.score >= 60                                      AS passed,
    g.source_updated_at
FROM staging.stg_academic_grades g
SEMI JOIN _known_student ks ON ks.student_no = g.student_no
SEMI JOIN _known_course kc ON kc.course_code = g.course_code
LEFT JOIN staging.stg_academic_courses c ON c.course_code = g.course_code
LEFT JOIN warehouse.person_number p ON p.person_no = g.student_no
LEFT JOIN _score_grade_point s ON s.score = g.score;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_course_grade';

INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
WITH orphan AS (
    SELECT g.grade_id, g.student_no, g.course_code,
           g.student_no || '|' || g.course_code || '|' || g.term || '|' || g.exam_type_name AS _record_key,
           ks.student_no IS NULL AS _unknown_student, kc.course_code IS NULL AS _unknown_course
    FROM staging.stg_academic_grades g
    LEFT JOIN _known_student ks ON ks.student_no = g.student_no
    LEFT JOIN _known_course kc ON kc.course_code = g.course_code
    WHERE ks.student_no IS NULL OR kc.course_code IS NULL
)
SELECT 'orphan_reference', NULL, 'academic,student', _record_key,
       'grade (jw_cj id ' || grade_id || ') for 学号 ' || student_no || ', which the student system does not hold',
       json_object('entity', 'academic.grades', 'field', 'xh', 'value', student_no, 'references', 'student.students'),
       'fact_course_grade'
FROM orphan WHERE _unknown_student
UNION ALL
SELECT 'orphan_reference', p.person_key, 'academic', _record_key,
       'grade (jw_cj id ' || grade_id || ') for 课程号 ' || course_code || ', which is not in the course catalogue jw_kc',
       json_object('entity', 'academic.grades', 'field', 'kch', 'value', course_code, 'references', 'academic.courses'),
       'fact_course_grade'
FROM orphan LEFT JOIN warehouse.person_number p ON p.person_no = orphan.student_no
WHERE _unknown_course;

DROP TABLE _known_student;
DROP TABLE _known_course;
DROP TABLE _score_grade_point;
