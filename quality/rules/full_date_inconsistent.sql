-- full_date_inconsistent: 转正 takes effect at the end of probation, so a full member's 转正日期 is
-- 入党日期 + $probation_months months, or + the recorded 延长预备期 ($min_extension_months-$max_extension_months
-- months) on top. (29 February + a year ends on 28 February or 1 March: either is accepted.) A recorded
-- extension outside that range is a finding too.
WITH m AS (
    SELECT d.person_no, d.person_key, d.org_code, d.probationary_on, d.full_on, r.probation_extension_months AS ext,
           CAST(d.probationary_on + to_months(CAST($probation_months AS INTEGER)
                                              + coalesce(r.probation_extension_months, 0)) AS DATE) AS expected
    FROM warehouse.dim_party_member d
    LEFT JOIN staging.stg_party_members r ON r.person_no = d.person_no
    WHERE d.is_current AND d.register = 'member' AND d.status = '正常' AND d.stage = 'full'
      AND d.probationary_on IS NOT NULL AND d.full_on IS NOT NULL
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       '入党日期 ' || probationary_on || ', 转正日期 ' || full_on || ': '
           || CASE WHEN ext IS NOT NULL AND ext NOT BETWEEN $min_extension_months AND $max_extension_months
                   THEN '延长预备期 of ' || ext || ' months is outside ' || $min_extension_months || '-'
                        || $max_extension_months
                   ELSE 'probation ends ' || expected
                        || CASE WHEN ext IS NOT NULL THEN ' (extended by ' || ext || ' months)'
                                ELSE ' and no extension is recorded' END END AS detail
FROM m
WHERE full_on NOT BETWEEN expected AND expected + 1
   OR (ext IS NOT NULL AND ext NOT BETWEEN $min_extension_months AND $max_extension_months)
