-- org_term_expiring: a 党委, 党总支 or 党支部 whose term ends within $warn_days days of as_of (inclusive).
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ' (' || org_type || '): term ends ' || term_end || ', in '
           || date_diff('day', CAST($as_of AS DATE), term_end) || ' days' AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND org_type IN ('党委', '党总支', '党支部')
  AND term_end >= CAST($as_of AS DATE)
  AND term_end <= CAST($as_of AS DATE) + CAST($warn_days AS INTEGER)
