-- committee_missing: a 党支部 with $full_members_for_committee or more full members and no committee.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ': ' || full_members || ' full members and 委员人数 ' || coalesce(committee_size, 0)
           || ' (a committee is due from ' || $full_members_for_committee || ')' AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND org_type = '党支部'
  AND full_members >= $full_members_for_committee
  AND coalesce(committee_size, 0) = 0
