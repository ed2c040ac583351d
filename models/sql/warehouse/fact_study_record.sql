-- ---
-- description: One row per online study record: who (学号/工号), which course (kind, title, hours from the platform's catalogue), minutes, progress, quiz score, completion, start and last-active dates and the school term. Records of an unknown person or course are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   record_id: The platform's study record id.
--   person_no: user_no: the learner's 学号/工号.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   course_id: The course.
--   course_kind: online_course, micro_lecture or web_lecture.
--   course_kind_name: The kind as the platform writes it.
--   course_title: Course title.
--   course_hours: Credit hours of the course.
--   minutes: Minutes studied.
--   progress: Progress, 0-100.
--   quiz_score: Quiz score; NULL when none was taken.
--   completed: Whether the platform marks it completed.
--   started_at: When study began.
--   started_on: Date study began (Beijing).
--   last_active_at: Last activity instant.
--   last_active_on: Date of the last activity (Beijing).
--   term: School term of started_on: Sep-Jan YYYY-YYYY-1, Feb-Aug YYYY-YYYY-2.
-- ---
-- term: the school term of started_on (Beijing date): September-January -> YYYY-YYYY-1, February-August
-- -> YYYY-YYYY-2 (the summer counts with the spring term).
CREATE OR REPLACE TEMP TABLE _fact_study_record AS
WITH known_course AS (
    SELECT course_id FROM staging.stg_learning_courses
    UNION
    SELECT trim(record_key) FROM quality.quarantine WHERE stage = 'staging' AND source = 'learning' AND entity = 'courses'
), person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
)
SELECT
    r.record_id,
    r.person_no,
    p.person_key,
    r.course_id,
    c.kind                                             AS course_kind,
    c.kind_name                                        AS course_kind_name,
    c.title                                            AS course_title,
    c.hours                                            AS course_hours,
    r.minutes,
    r.progress,
    r.quiz_score,
    r.completed,
    r.started_at,
    r.started_on,
    r.last_active_at,
    r.last_active_on,
    CASE WHEN month(r.started_on) >= 9 THEN year(r.started_on) || '-' || (year(r.started_on) + 1) || '-1'
         WHEN month(r.started_on) = 1 THEN (year(r.started_on) - 1) || '-' || year(r.started_on) || '-1'
         ELSE (year(r.started_on) - 1) || '-' || year(r.started_on) || '-2' END AS term,
    kp.person_no IS NULL                               AS _unknown_person,
    kc.course_id IS NULL                               AS _unknown_course
FROM staging.stg_learning_study_records r
LEFT JOIN staging.stg_learning_courses c ON c.course_id = r.course_id
LEFT JOIN warehouse.known_person kp ON kp.person_no = r.person_no
LEFT JOIN known_course kc ON kc.course_id = r.course_id
LEFT JOIN person_lookup p ON p.person_no = r.person_no;

CREATE OR REPLACE TABLE warehouse.fact_study_record AS
SELECT * EXCLUDE (_unknown_person, _unknown_course)
FROM _fact_study_record
WHERE NOT _unknown_person AND NOT _unknown_course
ORDER BY record_id;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_study_record';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_person('fact_study_record', 'learning,hr,student', record_id,
                            'study record ' || record_id || ' of user_no', 'learning.study_records', 'user_no', person_no))
FROM _fact_study_record WHERE _unknown_person;

INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT 'orphan_reference', person_key, 'learning', record_id,
       'study record ' || record_id || ' of course_id ' || course_id || ', which is not in the course catalogue',
       json_object('entity', 'learning.study_records', 'field', 'course_id', 'value', course_id,
                   'references', 'learning.courses'),
       'fact_study_record'
FROM _fact_study_record WHERE _unknown_course;

DROP TABLE _fact_study_record;
