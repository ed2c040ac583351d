-- ---
-- description: Academic standing of student members, 入党积极分子 and 发展对象 (current party record in good standing): overall GPA (credit-weighted over the terms of warehouse.fact_student_term_gpa up to the as-of date), latest term GPA, failed courses (counted per term, and still not passed in any attempt), set against their cohort (same 年级 and 二级学院, every student with grades) — cohort size, average and median GPA, the student's percentile — and the screen of the standards file: students in the screened stages (by default activists and 发展对象) with more failed courses than allowed are flagged for the branch to review before the next step.
-- ---
WITH p AS (
    SELECT as_of,
           from_json(standards->'$.student_standing.screened_stages', '["VARCHAR"]') AS screened_stages,
           (standards->>'$.student_standing.max_failed_courses')::INTEGER AS max_failed
    FROM marts.mart_parameters
), terms AS (
    SELECT g.*
    FROM warehouse.fact_student_term_gpa g CROSS JOIN p
    WHERE make_date(left(g.term, 4)::INTEGER + (right(g.term, 1) = '2')::INTEGER,
                    CASE right(g.term, 1) WHEN '1' THEN 9 ELSE 2 END, 1) <= p.as_of
), per_student AS (
    SELECT student_no,
           count(*) AS terms,
           sum(credits) AS credits,
           sum(credits_earned) AS credits_earned,
           round(sum(gpa * credits) / nullif(sum(credits), 0), 2) AS gpa,
           max(term) AS latest_term,
           arg_max(gpa, term) AS latest_term_gpa,
           sum(failed_courses)::BIGINT AS failed_courses
    FROM terms GROUP BY student_no
), outstanding AS (  -- courses failed and not passed in any attempt since
    SELECT student_no, count(*) AS failed_courses_outstanding
    FROM (SELECT student_no, course_code FROM warehouse.fact_course_grade
          GROUP BY ALL HAVING NOT bool_or(passed))
    GROUP BY student_no
), pool AS (
    SELECT s.student_no, s.cohort, s.school_code, ps.gpa, ps.failed_courses,
           percent_rank() OVER (PARTITION BY s.cohort, s.school_code ORDER BY ps.gpa) AS gpa_percent_rank
    FROM staging.stg_students s JOIN per_student ps USING (student_no)
), cohorts AS (
    SELECT cohort, school_code, count(*) AS cohort_students, round(avg(gpa), 2) AS cohort_avg_gpa,
           round(median(gpa), 2) AS cohort_median_gpa,
           round(count(*) FILTER (WHERE failed_courses > 0) / count(*), 4) AS cohort_share_with_failed
    FROM pool GROUP BY ALL
), people AS (
    SELECT m.person_key, m.person_no AS student_no, m.stage, m.org_code
    FROM warehouse.dim_party_member m
    JOIN staging.stg_students s ON s.student_no = m.person_no
    WHERE m.is_current AND m.status = '正常' AND m.stage IN ('activist', 'candidate', 'probationary', 'full')
)
SELECT
    pe.person_key, pe.student_no, coalesce(d.name, s.name) AS name,
    pe.stage, st.name AS stage_name, st."order"::INTEGER AS stage_order,
    pe.org_code, o.name AS org_name,
    s.school_code, s.school_name, s.major, s.class_name, s.cohort, s.enrolment_status,
    coalesce(ps.terms, 0) AS terms, ps.credits, ps.credits_earned,
    ps.gpa, ps.latest_term, ps.latest_term_gpa,
    coalesce(ps.failed_courses, 0) AS failed_courses,
    coalesce(ou.failed_courses_outstanding, 0) AS failed_courses_outstanding,
    c.cohort_students, c.cohort_avg_gpa, c.cohort_median_gpa, c.cohort_share_with_failed,
    round(ps.gpa - c.cohort_avg_gpa, 2) AS gpa_vs_cohort,
    round(100 * pl.gpa_percent_rank, 1) AS gpa_percentile,
    list_contains(p.screened_stages, pe.stage) AS screened,
    (list_contains(p.screened_stages, pe.stage) AND coalesce(ps.failed_courses, 0) > p.max_failed) AS screen_flag,
    CASE WHEN list_contains(p.screened_stages, pe.stage) AND coalesce(ps.failed_courses, 0) > p.max_failed
         THEN coalesce(ps.failed_courses, 0) || ' failed course(s), '
              || coalesce(ou.failed_courses_outstanding, 0) || ' not yet passed' END AS screen_reason
FROM people pe
CROSS JOIN p
JOIN staging.stg_students s ON s.student_no = pe.student_no
LEFT JOIN per_student ps ON ps.student_no = pe.student_no
LEFT JOIN outstanding ou ON ou.student_no = pe.student_no
LEFT JOIN pool pl ON pl.student_no = pe.student_no
LEFT JOIN cohorts c ON c.cohort = s.cohort AND c.school_code = s.school_code
LEFT JOIN staging.cs_party_stage st ON st.code = pe.stage
LEFT JOIN warehouse.dim_party_org o ON o.org_code = pe.org_code AND o.is_current
LEFT JOIN warehouse.dim_person d ON d.person_key = pe.person_key
ORDER BY screen_flag DESC, pe.org_code, stage_order, pe.student_no
