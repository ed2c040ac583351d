-- ---
-- description: Dues arrears per member: one row per member (in good standing or transferred out) with the months they owed dues up to the as-of date, how many were paid on time, late or not at all (and which), the current run of unpaid months and the longest, the flag for 6 (configurable) months unpaid in a row — which without cause counts as leaving the party — the amounts the rate band asks against what was paid, payments below the band, and an estimate of the arrears at the member's latest monthly amount.
-- ---
WITH p AS (
    SELECT (standards->>'$.dues.arrears_warning_months')::INTEGER AS warning_months FROM marts.mart_parameters
), months AS (
    SELECT * FROM marts.mart_dues_compliance
), latest_payment AS (
    SELECT person_no, arg_max(rate, month) AS latest_rate,
           arg_max(coalesce(expected_due, due), month) AS latest_monthly_amount,
           max(month) AS last_paid_month
    FROM months WHERE status <> 'unpaid' GROUP BY person_no
), summary AS (
    SELECT person_no,
           min(month) FILTER (WHERE due_month)                                  AS first_due_month,
           max(month) FILTER (WHERE due_month)                                  AS last_due_month,
           count(*) FILTER (WHERE due_month)                                    AS months_due,
           count(*) FILTER (WHERE status IN ('paid_on_time', 'paid_late'))      AS months_paid,
           count(*) FILTER (WHERE status = 'paid_on_time')                      AS months_paid_on_time,
           count(*) FILTER (WHERE status = 'paid_late')                         AS months_paid_late,
           count(*) FILTER (WHERE status = 'unpaid')                            AS months_unpaid,
           string_agg(strftime(month, '%Y-%m'), ', ' ORDER BY month) FILTER (WHERE status = 'unpaid')
                                                                                AS unpaid_months,
           arg_max(unpaid_run_months, month) FILTER (WHERE due_month)           AS trailing_unpaid_months,
           max(unpaid_run_months)                                               AS longest_unpaid_run,
           count(*) FILTER (WHERE status = 'paid_not_due')                      AS payments_not_due,
           sum(expected_due) FILTER (WHERE status IN ('paid_on_time', 'paid_late')) AS expected_paid_months,
           sum(paid)                                                            AS paid_total,
           sum(shortfall)                                                       AS shortfall_total,
           count(*) FILTER (WHERE below_rate)                                   AS payments_below_rate,
           count(*) FILTER (WHERE NOT due_matches_rate)                         AS payments_due_not_matching_rate
    FROM months GROUP BY person_no
)
SELECT
    m.person_key, m.person_no, m.name, m.org_code, o.name AS org_name, m.category, m.status AS member_status,
    m.on_roll,
    s.first_due_month, s.last_due_month,
    coalesce(s.months_due, 0) AS months_due,
    coalesce(s.months_paid, 0) AS months_paid,
    coalesce(s.months_paid_on_time, 0) AS months_paid_on_time,
    coalesce(s.months_paid_late, 0) AS months_paid_late,
    coalesce(s.months_unpaid, 0) AS months_unpaid,
    s.unpaid_months,
    coalesce(s.trailing_unpaid_months, 0) AS trailing_unpaid_months,
    coalesce(s.longest_unpaid_run, 0) AS longest_unpaid_run,
    coalesce(s.trailing_unpaid_months, 0) >= p.warning_months AS unpaid_warning,
    coalesce(s.payments_not_due, 0) AS payments_not_due,
    l.last_paid_month,
    l.latest_rate,
    l.latest_monthly_amount,
    s.expected_paid_months::DECIMAL(12, 2) AS expected_for_paid_months,
    coalesce(s.paid_total, 0)::DECIMAL(12, 2) AS paid_total,
    coalesce(s.shortfall_total, 0)::DECIMAL(12, 2) AS shortfall_total,
    coalesce(s.payments_below_rate, 0) AS payments_below_rate,
    coalesce(s.payments_due_not_matching_rate, 0) AS payments_due_not_matching_rate,
    (coalesce(s.months_unpaid, 0) * l.latest_monthly_amount)::DECIMAL(12, 2) AS arrears_estimate,
    CASE WHEN coalesce(s.months_unpaid, 0) > 0 THEN 'arrears'
         WHEN coalesce(s.payments_below_rate, 0) > 0 THEN 'below_rate'
         WHEN coalesce(s.months_paid_late, 0) > 0 THEN 'late'
         WHEN coalesce(s.months_due, 0) = 0 THEN 'nothing_due'
         ELSE 'ok' END AS compliance_status
FROM marts.mart_membership m
CROSS JOIN p
LEFT JOIN summary s USING (person_no)
LEFT JOIN latest_payment l USING (person_no)
LEFT JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
WHERE m.in_calendars
ORDER BY m.org_code, m.person_no
