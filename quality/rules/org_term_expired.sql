-- org_term_expired: a 党委, 党总支 or 党支部 whose term (届满日期) ended before as_of.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ' (' || org_type || '): term ended ' || term_end || ', '
           || date_diff('day', term_end, CAST($as_of AS DATE)) || ' days before ' || CAST($as_of AS DATE)
           || coalesce('; last elected ' || elected_on, '') AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND org_type IN ('党委', '党总支', '党支部')
  AND term_end < CAST($as_of AS DATE)
