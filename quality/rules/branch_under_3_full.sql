-- branch_under_3_full: a 党支部 with fewer than $min_full_members full members in good standing.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ': ' || full_members || ' full member(s) (and ' || probationary_members
           || ' probationary), fewer than ' || $min_full_members AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND org_type = '党支部'
  AND full_members < $min_full_members
