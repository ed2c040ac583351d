-- dues_arrears: a current member in good standing with $min_months or more consecutive months unpaid up
-- to the as_of month ($count_as_of_month false: up to the month before). Unpaid months run from the month
-- after the last payment (paid > 0); for a member who never paid, from the later of the month they became
-- probationary and the first month of the dues data.
WITH members AS (
    SELECT person_no, person_key, org_code, stage, probationary_on
    FROM warehouse.dim_party_member
    WHERE is_current AND register = 'member' AND status = '正常' AND stage IN ('full', 'probationary')
), coverage AS (
    SELECT min(month) AS first_month,
           CAST(date_trunc('month', CAST($as_of AS DATE))
                - CASE WHEN $count_as_of_month THEN INTERVAL 0 MONTH ELSE INTERVAL 1 MONTH END AS DATE) AS last_due
    FROM warehouse.fact_dues_payment
), paid AS (
    SELECT person_no, max(month) AS last_paid
    FROM warehouse.fact_dues_payment
    WHERE paid > 0 AND month <= CAST($as_of AS DATE)
    GROUP BY person_no
), arrears AS (
    SELECT m.*, p.last_paid, c.last_due,
           CASE WHEN p.last_paid IS NOT NULL THEN CAST(p.last_paid + INTERVAL 1 MONTH AS DATE)
                ELSE greatest(c.first_month, CAST(date_trunc('month', m.probationary_on) AS DATE)) END AS unpaid_from
    FROM members m
    CROSS JOIN coverage c
    LEFT JOIN paid p USING (person_no)
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       date_diff('month', unpaid_from, last_due) + 1 || ' months unpaid, '
           || strftime(unpaid_from, '%Y-%m') || ' to ' || strftime(last_due, '%Y-%m')
           || coalesce('; last payment for ' || strftime(last_paid, '%Y-%m'), '; no payment recorded') AS detail
FROM arrears
WHERE unpaid_from IS NOT NULL
  AND date_diff('month', unpaid_from, last_due) + 1 >= $min_months
