-- ---
-- description: 党员考核 per member and calendar year, by the standards in models/assessment_standards.yaml, with the whole breakdown kept: meetings expected / present / excused / absent and their points; online study hours against the hours required for the months on roll and their points; dues months due / paid on time / unpaid and their points; the 民主评议 grade and its points; each deduction (unexcused absences, unpaid months, payments below the rate band); the points available and earned, the 0-100 score and its rating. Members in good standing or transferred out, for each year they were on roll from the start of the data to the as-of date (the as-of year so far).
-- ---
WITH p AS (
    SELECT as_of, dues_from, meetings_from, learning_from,
           standards->'$.member_assessment' AS s,
           (standards->>'$.learning.required_hours_per_year')::DOUBLE AS required_hours_per_year
    FROM marts.mart_parameters
), years AS (
    SELECT unnest(range(year(least(dues_from, meetings_from, learning_from)), year(as_of) + 1)) AS year FROM p
), member_years AS (
    SELECT m.person_key, m.person_no, m.name, m.org_code, m.category, m.stage, m.status, m.on_roll_from,
           m.on_roll_until, y.year,
           make_date(y.year::INTEGER, 1, 1) AS year_start, make_date(y.year::INTEGER, 12, 31) AS year_end
    FROM marts.mart_membership m CROSS JOIN years y CROSS JOIN p
    WHERE m.in_calendars
      AND ((m.on_roll_from <= make_date(y.year::INTEGER, 12, 31)
            AND coalesce(m.on_roll_until, p.as_of) >= make_date(y.year::INTEGER, 1, 1)
            AND m.on_roll_from <= p.as_of)
           -- a 民主评议 grade of the year shows they were a member here then, whatever the hire date says
           OR EXISTS (SELECT 1 FROM warehouse.fact_assessment fa WHERE fa.person_no = m.person_no AND fa.year = y.year))
), meetings AS (
    SELECT a.person_no, year(a.meeting_date) AS year,
           count(*) AS expected,
           count(*) FILTER (WHERE a.status = 'present') AS present,
           count(*) FILTER (WHERE a.status = 'excused') AS excused,
           count(*) FILTER (WHERE a.status = 'absent') AS absent
    FROM warehouse.fact_activity_attendance a CROSS JOIN p
    WHERE a.meeting_date <= p.as_of
      AND list_contains(from_json(p.s->'$.meeting_attendance.meeting_types', '["VARCHAR"]'), a.meeting_type)
    GROUP BY ALL
), study AS (
    SELECT s.person_no, year(s.started_on) AS year, sum(s.minutes) / 60.0 AS hours,
           count(*) FILTER (WHERE s.completed) AS completed_courses
    FROM warehouse.fact_study_record s CROSS JOIN p
    WHERE s.started_on <= p.as_of
    GROUP BY ALL
), dues AS (
    SELECT person_no, year(month) AS year,
           count(*) FILTER (WHERE due_month) AS months_due,
           count(*) FILTER (WHERE status = 'paid_on_time') AS months_on_time,
           count(*) FILTER (WHERE status = 'unpaid') AS months_unpaid,
           count(*) FILTER (WHERE below_rate) AS below_rate
    FROM marts.mart_dues_compliance GROUP BY ALL
), inputs AS (
    SELECT my.*,
           coalesce(mt.expected, 0) AS meetings_expected, coalesce(mt.present, 0) AS meetings_present,
           coalesce(mt.excused, 0) AS meetings_excused, coalesce(mt.absent, 0) AS meetings_absent,
           round(coalesce(st.hours, 0), 2) AS study_hours, coalesce(st.completed_courses, 0) AS completed_courses,
           -- months on roll within the learning data and up to the as-of date
           greatest(0, date_diff('month',
               greatest(my.year_start, date_trunc('month', my.on_roll_from), p.learning_from),
               least(date_trunc('month', my.year_end), date_trunc('month', p.as_of),
                     coalesce(date_trunc('month', my.on_roll_until), date_trunc('month', p.as_of)))) + 1)
               AS study_months,
           coalesce(d.months_due, 0) AS dues_months_due, coalesce(d.months_on_time, 0) AS dues_months_on_time,
           coalesce(d.months_unpaid, 0) AS dues_months_unpaid, coalesce(d.below_rate, 0) AS dues_payments_below_rate,
           fa.grade AS review_grade, fa.grade_name AS review_grade_name,
           p.s, p.required_hours_per_year, p.as_of
    FROM member_years my
    CROSS JOIN p
    LEFT JOIN meetings mt ON mt.person_no = my.person_no AND mt.year = my.year
    LEFT JOIN study st ON st.person_no = my.person_no AND st.year = my.year
    LEFT JOIN dues d ON d.person_no = my.person_no AND d.year = my.year
    LEFT JOIN warehouse.fact_assessment fa ON fa.person_no = my.person_no AND fa.year = my.year
), points AS (
    SELECT *,
           round(required_hours_per_year * study_months / 12.0, 2) AS required_study_hours,
           CASE WHEN meetings_expected > 0 THEN
               (s->>'$.meeting_attendance.points')::DOUBLE
               * (meetings_present + (s->>'$.meeting_attendance.excused_weight')::DOUBLE * meetings_excused)
               / meetings_expected END AS meeting_points_raw,
           CASE WHEN required_hours_per_year * study_months > 0 THEN
               (s->>'$.study_hours.points')::DOUBLE
               * least(1.0, study_hours / round(required_hours_per_year * study_months / 12.0, 2)) END
               AS study_points_raw,
           CASE WHEN dues_months_due > 0 THEN
               (s->>'$.dues_on_time.points')::DOUBLE * dues_months_on_time / dues_months_due END AS dues_points_raw,
           CASE WHEN review_grade IS NOT NULL THEN
               (s->'$.democratic_review.grades'->>review_grade)::DOUBLE END AS review_points_raw,
           least((s->>'$.deductions.unexcused_absence.points')::DOUBLE * meetings_absent,
                 (s->>'$.deductions.unexcused_absence.max')::DOUBLE) AS deduct_absences,
           least((s->>'$.deductions.unpaid_dues_month.points')::DOUBLE * dues_months_unpaid,
                 (s->>'$.deductions.unpaid_dues_month.max')::DOUBLE) AS deduct_unpaid_dues,
           least((s->>'$.deductions.payment_below_rate.points')::DOUBLE * dues_payments_below_rate,
                 (s->>'$.deductions.payment_below_rate.max')::DOUBLE) AS deduct_below_rate
    FROM inputs
), totals AS (
    SELECT *,
           CASE WHEN meeting_points_raw IS NOT NULL THEN (s->>'$.meeting_attendance.points')::DOUBLE ELSE 0 END
           + CASE WHEN study_points_raw IS NOT NULL THEN (s->>'$.study_hours.points')::DOUBLE ELSE 0 END
           + CASE WHEN dues_points_raw IS NOT NULL THEN (s->>'$.dues_on_time.points')::DOUBLE ELSE 0 END
           + CASE WHEN review_points_raw IS NOT NULL THEN (s->>'$.democratic_review.points')::DOUBLE ELSE 0 END
               AS points_available,
           coalesce(meeting_points_raw, 0) + coalesce(study_points_raw, 0) + coalesce(dues_points_raw, 0)
           + coalesce(review_points_raw, 0) AS points_earned_raw,
           deduct_absences + deduct_unpaid_dues + deduct_below_rate AS deductions
    FROM points
), scored AS (
    SELECT *,
           CASE WHEN points_available > 0 THEN
               round(greatest(0, 100.0 * points_earned_raw / points_available - deductions), 1) END AS score
    FROM totals
), ratings AS (
    SELECT r->>'rating' AS rating, r->>'name' AS rating_name, (r->>'min_score')::DOUBLE AS min_score
    FROM (SELECT unnest(json_extract(s, '$.ratings[*]')) AS r FROM p)
)
SELECT
    sc.year, sc.person_key, sc.person_no, sc.name, sc.org_code, o.name AS org_name, sc.category, sc.stage,
    sc.status AS member_status,
    sc.meetings_expected, sc.meetings_present, sc.meetings_excused, sc.meetings_absent,
    round(sc.meeting_points_raw, 2) AS meeting_points,
    sc.study_hours, sc.study_months, sc.required_study_hours, sc.completed_courses,
    round(sc.study_points_raw, 2) AS study_points,
    sc.dues_months_due, sc.dues_months_on_time, sc.dues_months_unpaid, sc.dues_payments_below_rate,
    round(sc.dues_points_raw, 2) AS dues_points,
    sc.review_grade, sc.review_grade_name, round(sc.review_points_raw, 2) AS review_points,
    sc.points_available, round(sc.points_earned_raw, 2) AS points_earned,
    sc.deduct_absences, sc.deduct_unpaid_dues, sc.deduct_below_rate, sc.deductions,
    sc.score,
    (SELECT rating FROM ratings r WHERE sc.score >= r.min_score ORDER BY r.min_score DESC LIMIT 1) AS rating,
    (SELECT rating_name FROM ratings r WHERE sc.score >= r.min_score ORDER BY r.min_score DESC LIMIT 1) AS rating_name,
    sc.year_end <= sc.as_of AS year_complete
FROM scored sc
LEFT JOIN warehouse.dim_party_org o ON o.org_code = sc.org_code AND o.is_current
ORDER BY sc.year, sc.org_code, sc.person_no
