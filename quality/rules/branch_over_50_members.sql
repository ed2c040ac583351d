-- branch_over_50_members: a 党支部 with more than $max_members members (full + probationary, in good standing).
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ': ' || (full_members + probationary_members) || ' members (' || full_members || ' full, '
           || probationary_members || ' probationary), more than ' || $max_members AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND org_type = '党支部'
  AND full_members + probationary_members > $max_members
