-- committee_size_invalid: a committee has an odd number of members (elections need a majority), and a
-- 党支部's committee (支委会) $committee_min to $committee_max members (支部工作条例). Organisations
-- with no committee (委员人数 0) are committee_missing's business.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ' (' || org_type || '): 委员人数 ' || committee_size || ' — '
           || concat_ws(' and ', CASE WHEN committee_size % 2 = 0 THEN 'even' END,
                        CASE WHEN org_type = '党支部' AND committee_size NOT BETWEEN $committee_min AND $committee_max
                             THEN 'outside ' || $committee_min || '-' || $committee_max END) AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active' AND coalesce(committee_size, 0) > 0
  AND (committee_size % 2 = 0
       OR (org_type = '党支部' AND committee_size NOT BETWEEN $committee_min AND $committee_max))
