-- assessment_missing: 民主评议党员 is held every year; a member in good standing who was on the college's
-- roll by the end of a completed year (入党日期 and joining the college both on or before 31 December) has
-- a result (fact_assessment) for it. Years checked: from the first year in the assessment data to the
-- last year that ended before as_of.
WITH years AS (
    SELECT unnest(generate_series(min(year), year(CAST($as_of AS DATE)) - 1)) AS year
    FROM warehouse.fact_assessment
), joined AS (
    SELECT staff_no AS person_no, hire_date AS joined_on FROM staging.stg_hr_staff
    UNION ALL
    SELECT student_no, enrolled_on FROM staging.stg_students
), members AS (
    SELECT m.person_no, m.person_key, m.org_code, greatest(m.probationary_on, j.joined_on) AS on_roll_from
    FROM warehouse.dim_party_member m
    LEFT JOIN (SELECT person_no, max(joined_on) AS joined_on FROM joined GROUP BY ALL) j USING (person_no)
    WHERE m.is_current AND m.register = 'member' AND m.status = '正常' AND m.stage IN ('full', 'probationary')
      AND m.probationary_on IS NOT NULL
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       m.person_no || '|' || y.year AS record_key, m.person_key, m.org_code,
       'member since ' || m.on_roll_from || ' but no 民主评议 result for ' || y.year AS detail
FROM members m
JOIN years y ON m.on_roll_from <= make_date(y.year, 12, 31)
WHERE NOT EXISTS (SELECT 1 FROM warehouse.fact_assessment a WHERE a.person_no = m.person_no AND a.year = y.year)
