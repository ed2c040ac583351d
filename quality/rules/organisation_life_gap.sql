-- organisation_life_gap: 党章 第九条 — $min_months or more consecutive months without organisation life.
-- A month counts as organisation life when the member was present at a meeting of any kind that month
-- (三会一课, 主题党日, 组织生活会; excused absence 请假 too when $excused_counts: it has a cause). Months
-- counted: the complete months from the first month of the activity data (or the month after the member
-- came on roll: 入党日期, or joining the college, whichever is later) to the last month complete by as_of.
-- One finding per run of missed months, naming them; current members in good standing only.
WITH bounds AS (
    SELECT date_trunc('month', min(meeting_date))::DATE AS first_month,
           date_trunc('month', CAST($as_of AS DATE) + 1)::DATE AS end_month  -- exclusive: as_of's month if complete
    FROM warehouse.fact_org_activity
), joined AS (
    SELECT staff_no AS person_no, hire_date AS joined_on FROM staging.stg_hr_staff
    UNION ALL
    SELECT student_no, enrolled_on FROM staging.stg_students
), members AS (
    SELECT m.person_no, m.person_key, m.org_code,
           greatest(b.first_month,
                    date_trunc('month', greatest(m.probationary_on, j.joined_on))::DATE + INTERVAL 1 MONTH)::DATE
               AS from_month,
           b.end_month
    FROM warehouse.dim_party_member m
    CROSS JOIN bounds b
    LEFT JOIN (SELECT person_no, max(joined_on) AS joined_on FROM joined GROUP BY ALL) j USING (person_no)
    WHERE m.is_current AND m.register = 'member' AND m.status = '正常' AND m.stage IN ('full', 'probationary')
      AND m.probationary_on IS NOT NULL
), months AS (
    SELECT person_no, person_key, org_code, unnest(generate_series(from_month, end_month - INTERVAL 1 MONTH,
                                                                   INTERVAL 1 MONTH))::DATE AS month
    FROM members WHERE from_month < end_month
), attended AS (
    SELECT DISTINCT person_no, date_trunc('month', meeting_date)::DATE AS month
    FROM warehouse.fact_activity_attendance
    WHERE status = 'present' OR ($excused_counts AND status = 'excused')
), missed AS (
    SELECT m.*, year(m.month) * 12 + month(m.month)
               - row_number() OVER (PARTITION BY m.person_no ORDER BY m.month) AS run
    FROM months m
    WHERE NOT EXISTS (SELECT 1 FROM attended a WHERE a.person_no = m.person_no AND a.month = m.month)
), runs AS (
    SELECT person_no, any_value(person_key) AS person_key, any_value(org_code) AS org_code,
           min(month) AS first_month, max(month) AS last_month, count(*) AS months,
           string_agg(strftime(month, '%Y-%m'), ', ' ORDER BY month) AS month_list
    FROM missed GROUP BY person_no, run
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no || '|' || strftime(first_month, '%Y-%m') AS record_key, person_key, org_code,
       months || ' consecutive months without organisation life: ' || month_list AS detail
FROM runs
WHERE months >= $min_months
