-- ---
-- description: Learning effect per party branch and school term: everyone with a party record (members, people in the development pipeline, and members transferred out, under the branch their record names) who studied online — learners and member learners, records, completion rate, study hours and hours per learner, average quiz score and quiz pass rate — against the members on the branch's roll during the term (participation), with the change in completion rate and hours per learner from the previous term. Terms run September-January (-1) and February-August (-2).
-- ---
WITH p AS (
    SELECT as_of, (standards->>'$.learning.quiz_pass_score')::DOUBLE AS pass_score FROM marts.mart_parameters
), people AS (
    SELECT person_no, org_code, register IN ('member', 'transfer') AS is_member
    FROM warehouse.dim_party_member WHERE is_current
), terms AS (
    SELECT DISTINCT term,
           make_date(left(term, 4)::INTEGER + (right(term, 1) = '2')::INTEGER,
                     CASE right(term, 1) WHEN '1' THEN 9 ELSE 2 END, 1) AS term_start,
           CASE right(term, 1) WHEN '1' THEN make_date(left(term, 4)::INTEGER + 1, 1, 31)
                ELSE make_date(left(term, 4)::INTEGER + 1, 8, 31) END AS term_end
    FROM warehouse.fact_study_record
), on_roll AS (  -- members on each branch's roll at some time in the term
    SELECT m.org_code, t.term, count(*) AS members_on_roll
    FROM marts.mart_membership m CROSS JOIN terms t CROSS JOIN p
    WHERE m.in_calendars AND m.on_roll_from <= least(t.term_end, p.as_of)
      AND coalesce(m.on_roll_until, p.as_of) >= t.term_start AND t.term_start <= p.as_of
    GROUP BY ALL
), per_term AS (
    SELECT pe.org_code, s.term,
           count(DISTINCT s.person_no) AS learners,
           count(DISTINCT s.person_no) FILTER (WHERE pe.is_member) AS member_learners,
           count(*) AS records,
           count(*) FILTER (WHERE s.completed) AS completed_records,
           round(count(*) FILTER (WHERE s.completed) / count(*), 4) AS completion_rate,
           round(sum(s.minutes) / 60.0, 2) AS study_hours,
           round(sum(s.minutes) / 60.0 / count(DISTINCT s.person_no), 2) AS hours_per_learner,
           count(s.quiz_score) AS quiz_takers,
           round(avg(s.quiz_score), 1) AS avg_quiz_score,
           round(count(*) FILTER (WHERE s.quiz_score >= p.pass_score) / nullif(count(s.quiz_score), 0), 4)
               AS quiz_pass_rate
    FROM warehouse.fact_study_record s
    JOIN people pe USING (person_no)
    CROSS JOIN p
    WHERE s.started_on <= p.as_of
    GROUP BY ALL
)
SELECT
    t.org_code, o.name AS org_name, o.parent_code, o.branch_kind, t.term,
    t.learners, t.member_learners, coalesce(r.members_on_roll, 0) AS members_on_roll,
    round(t.member_learners / nullif(r.members_on_roll, 0), 4) AS member_participation,
    t.records, t.completed_records, t.completion_rate, t.study_hours, t.hours_per_learner,
    t.quiz_takers, t.avg_quiz_score, t.quiz_pass_rate,
    round(t.completion_rate - lag(t.completion_rate) OVER w, 4) AS completion_rate_change,
    round(t.hours_per_learner - lag(t.hours_per_learner) OVER w, 2) AS hours_per_learner_change
FROM per_term t
LEFT JOIN on_roll r USING (org_code, term)
LEFT JOIN warehouse.dim_party_org o ON o.org_code = t.org_code AND o.is_current
WINDOW w AS (PARTITION BY t.org_code ORDER BY t.term)
ORDER BY t.org_code, t.term
