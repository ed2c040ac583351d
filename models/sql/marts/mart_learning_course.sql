-- ---
-- description: Learning effect per online course and school term (学年学期 of the study start): learners, study records, completion rate, study hours (minutes on the platform / 60) and hours per learner, average progress, quiz takers, average quiz score and quiz pass rate (pass mark from the standards file), and the change in completion rate and quiz score from the course's previous term — the trend. Records started after the as-of date are left out.
-- ---
WITH p AS (
    SELECT as_of, (standards->>'$.learning.quiz_pass_score')::DOUBLE AS pass_score FROM marts.mart_parameters
), per_term AS (
    SELECT s.course_id, s.term,
           any_value(s.course_title) AS course_title, any_value(s.course_kind) AS course_kind,
           any_value(s.course_kind_name) AS course_kind_name, any_value(s.course_hours) AS course_hours,
           count(DISTINCT s.person_no) AS learners,
           count(*) AS records,
           count(*) FILTER (WHERE s.completed) AS completed_records,
           round(count(*) FILTER (WHERE s.completed) / count(*), 4) AS completion_rate,
           round(sum(s.minutes) / 60.0, 2) AS study_hours,
           round(sum(s.minutes) / 60.0 / count(DISTINCT s.person_no), 2) AS hours_per_learner,
           round(avg(s.progress), 1) AS avg_progress,
           count(s.quiz_score) AS quiz_takers,
           round(avg(s.quiz_score), 1) AS avg_quiz_score,
           round(count(*) FILTER (WHERE s.quiz_score >= p.pass_score) / nullif(count(s.quiz_score), 0), 4)
               AS quiz_pass_rate
    FROM warehouse.fact_study_record s CROSS JOIN p
    WHERE s.started_on <= p.as_of
    GROUP BY s.course_id, s.term
)
SELECT *,
       round(completion_rate - lag(completion_rate) OVER w, 4) AS completion_rate_change,
       round(avg_quiz_score - lag(avg_quiz_score) OVER w, 1) AS avg_quiz_score_change
FROM per_term
WINDOW w AS (PARTITION BY course_id ORDER BY term)
ORDER BY course_id, term
