-- secretary_missing: every party organisation has a secretary (书记; a 党小组 its 组长): neither 书记姓名 nor
-- 书记人员编号 is recorded for a current, active organisation.
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ' (' || org_type || '): no ' || CASE WHEN org_type = '党小组' THEN '组长' ELSE '书记' END
           || ' recorded' AS detail
FROM warehouse.dim_party_org
WHERE is_current AND status = 'active'
  AND nullif(trim(secretary_name), '') IS NULL AND nullif(trim(secretary_no), '') IS NULL
