-- ---
-- description: Dues compliance, one row per member and month: every month a member owed dues (from the later of the start of the dues data, admission and joining the college, to the month of transfer out or the last month whose deadline — month end plus the standards' grace days — is on or before the as-of date), with the payment if there is one, and every payment outside those months. Status paid_on_time / paid_late / unpaid / paid_not_due; the amount the rate band asks (中组部 2008) against the 应缴 and 实缴 the party system recorded; the run of unpaid months up to each month.
-- ---
WITH p AS (
    SELECT as_of, dues_from, (standards->>'$.dues.grace_days')::INTEGER AS grace_days FROM marts.mart_parameters
), last_due AS (  -- the latest month whose deadline (last day + grace days) is on or before the as-of date
    SELECT CASE WHEN x = last_day(x) THEN date_trunc('month', x)
                ELSE date_trunc('month', x) - INTERVAL 1 MONTH END::DATE AS last_due_month
    FROM (SELECT (as_of - grace_days)::DATE AS x FROM p)
), calendar AS (
    SELECT m.person_no, unnest(generate_series(
               greatest(p.dues_from, date_trunc('month', m.on_roll_from))::TIMESTAMP,
               least(l.last_due_month, coalesce(date_trunc('month', m.on_roll_until), l.last_due_month))::TIMESTAMP,
               INTERVAL 1 MONTH))::DATE AS month
    FROM marts.mart_membership m CROSS JOIN p CROSS JOIN last_due l
    WHERE m.in_calendars
), rows AS (
    SELECT coalesce(c.person_no, f.person_no) AS person_no, coalesce(c.month, f.month) AS month,
           c.person_no IS NOT NULL AS due_month, f.person_no IS NOT NULL AS has_payment,
           f.person_key AS payment_person_key, f.org_code AS payment_org_code, f.member_category,
           f.base, f.rate, f.due, f.expected_due, f.paid, f.paid_on, f.below_rate, f.due_matches_rate
    FROM calendar c
    FULL JOIN warehouse.fact_dues_payment f ON f.person_no = c.person_no AND f.month = c.month
), judged AS (
    SELECT r.*, (last_day(r.month) + p.grace_days)::DATE AS deadline,
           CASE WHEN NOT r.due_month THEN 'paid_not_due'
                WHEN NOT r.has_payment THEN 'unpaid'
                WHEN r.paid_on <= last_day(r.month) + p.grace_days THEN 'paid_on_time'
                ELSE 'paid_late' END AS status
    FROM rows r CROSS JOIN p
), streaks AS (
    SELECT *, count(*) FILTER (WHERE status <> 'unpaid') OVER (
                  PARTITION BY person_no ORDER BY month ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run_id
    FROM judged WHERE due_month
)
SELECT
    coalesce(m.person_key, j.payment_person_key) AS person_key,
    j.person_no,
    m.name,
    coalesce(m.org_code, j.payment_org_code) AS org_code,
    o.name AS org_name,
    coalesce(m.category, j.member_category) AS category,
    j.month,
    j.deadline,
    j.due_month,
    j.status,
    j.paid_on,
    CASE WHEN j.paid_on > j.deadline THEN j.paid_on - j.deadline END AS days_late,
    j.rate,
    j.due,
    j.expected_due,
    j.paid,
    CASE WHEN j.paid < j.expected_due THEN j.expected_due - j.paid ELSE 0 END::DECIMAL(12, 2) AS shortfall,
    j.below_rate,
    j.due_matches_rate,
    CASE WHEN j.status = 'unpaid' THEN row_number() OVER (PARTITION BY j.person_no, s.run_id, j.status = 'unpaid'
                                                          ORDER BY j.month) ELSE 0 END AS unpaid_run_months
FROM judged j
LEFT JOIN streaks s ON s.person_no = j.person_no AND s.month = j.month
LEFT JOIN marts.mart_membership m ON m.person_no = j.person_no
LEFT JOIN warehouse.dim_party_org o ON o.org_code = coalesce(m.org_code, j.payment_org_code) AND o.is_current
ORDER BY j.person_no, j.month
