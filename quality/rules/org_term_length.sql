-- org_term_length: 届满日期 − 换届日期 is the term of the organisation's type: $committee_term_years years for a
-- 党委, $general_branch_term_years for a 党总支, $branch_term_years for a 党支部 (党章 第三十条: three to five
-- years; the years here are the college's). 29 February + n years ending on 28 February or 1 March is
-- accepted. Organisations with no 换届日期 or 届满日期 recorded are a finding too.
WITH o AS (
    SELECT org_code, name, org_type, elected_on, term_end,
           CASE org_type WHEN '党委' THEN $committee_term_years WHEN '党总支' THEN $general_branch_term_years
                         ELSE $branch_term_years END AS years
    FROM warehouse.dim_party_org
    WHERE is_current AND status = 'active' AND org_type IN ('党委', '党总支', '党支部')
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code AS record_key, NULL::VARCHAR AS person_key, org_code,
       name || ' (' || org_type || '): ' ||
           CASE WHEN elected_on IS NULL OR term_end IS NULL THEN 'no 换届日期 or 届满日期 recorded'
                ELSE '换届 ' || elected_on || ', 届满 ' || term_end || ': a term of '
                     || round(date_diff('day', elected_on, term_end) / 365.25, 2) || ' years, not ' || years END
           AS detail
FROM o
WHERE elected_on IS NULL OR term_end IS NULL
   OR term_end NOT BETWEEN CAST(elected_on + to_years(CAST(years AS INTEGER)) AS DATE)
                       AND CAST(elected_on + to_years(CAST(years AS INTEGER)) AS DATE) + 1
