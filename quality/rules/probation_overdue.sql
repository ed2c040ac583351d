-- probation_overdue: current members in good standing still 预备党员 although their probation
-- ($probation_months months from 入党日期) plus $grace_months ended before as_of.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       '预备党员 since ' || probationary_on || '; probation ended '
           || CAST(probationary_on + to_months(CAST($probation_months AS INTEGER)) AS DATE)
           || CASE WHEN $grace_months > 0 THEN ' (+' || $grace_months || ' months grace)' ELSE '' END
           || ', still probationary on ' || CAST($as_of AS DATE) AS detail
FROM warehouse.dim_party_member
WHERE is_current AND register = 'member' AND status = '正常' AND stage = 'probationary'
  AND probationary_on IS NOT NULL
  AND probationary_on + to_months(CAST($probation_months AS INTEGER) + CAST($grace_months AS INTEGER))
      < CAST($as_of AS DATE)
