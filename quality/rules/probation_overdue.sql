-- probation_overdue: current members in good standing still 预备党员 although their probation
-- ($probation_months months from 入党日期, plus the 延长预备期 the member register records, if any) and
-- the $grace_months the higher committee has to approve 转正 ended before as_of.
WITH m AS (
    SELECT d.person_no, d.person_key, d.org_code, d.probationary_on,
           coalesce(r.probation_extension_months, 0) AS extension
    FROM warehouse.dim_party_member d
    LEFT JOIN staging.stg_party_members r ON r.person_no = d.person_no
    WHERE d.is_current AND d.register = 'member' AND d.status = '正常' AND d.stage = 'probationary'
      AND d.probationary_on IS NOT NULL
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       '预备党员 since ' || probationary_on || '; probation ended '
           || CAST(probationary_on + to_months(CAST($probation_months AS INTEGER) + extension) AS DATE)
           || CASE WHEN extension > 0 THEN ' (extended by ' || extension || ' months)' ELSE '' END
           || CASE WHEN $grace_months > 0 THEN ' (+' || $grace_months || ' months to approve 转正)' ELSE '' END
           || ', still probationary on ' || CAST($as_of AS DATE) AS detail
FROM m
WHERE probationary_on + to_months(CAST($probation_months AS INTEGER) + extension + CAST($grace_months AS INTEGER))
      < CAST($as_of AS DATE)
