-- dues_below_rate: a payment (人员编号|缴费月份) below what the rate band gives (fact_dues_payment.below_rate),
-- for months up to as_of.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no || '|' || strftime(month, '%Y-%m') AS record_key, person_key, org_code,
       '实缴 ' || paid || ' below ' || expected_due || ' due for ' || strftime(month, '%Y-%m') || ' ('
           || member_category || coalesce(', rate ' || CAST(rate * 100 AS DECIMAL(6, 2)) || '%', ', fixed amount')
           || '; 应缴 recorded ' || coalesce(CAST(due AS VARCHAR), 'none') || ')' AS detail
FROM warehouse.fact_dues_payment
WHERE below_rate AND month <= CAST($as_of AS DATE)
