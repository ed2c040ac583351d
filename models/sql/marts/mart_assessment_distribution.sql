-- ---
-- description: Distribution of 党员考核 results per organisation (a member counts in their branch and every organisation above it) and year, on two scales — the score rating of the standards file (优秀/良好/合格/不合格) and the 民主评议 grade — with members and share per value, the average score, and whether 优秀 in 民主评议 exceeds the one-third limit. Members not yet assessed on a scale (e.g. no 民主评议 yet this year) count under 'not_assessed'.
-- ---
WITH RECURSIVE orgs AS (
    SELECT org_code, name, org_type, parent_code FROM warehouse.dim_party_org WHERE is_current AND status = 'active'
), root AS (
    SELECT org_code FROM orgs WHERE parent_code IS NULL OR parent_code NOT IN (SELECT org_code FROM orgs)
    ORDER BY org_type = '党委' DESC, org_code LIMIT 1
), closure(org_code, ancestor_code) AS (
    SELECT org_code, org_code FROM orgs
    UNION ALL
    SELECT c.org_code, o.parent_code FROM closure c JOIN orgs o ON o.org_code = c.ancestor_code
    WHERE o.parent_code IS NOT NULL AND o.parent_code IN (SELECT org_code FROM orgs)
), scoped AS (
    SELECT a.*, c.ancestor_code AS scope_code FROM marts.mart_member_assessment a JOIN closure c USING (org_code)
    UNION ALL
    SELECT a.*, unnest([a.org_code, (SELECT org_code FROM root)]) AS scope_code
    FROM marts.mart_member_assessment a WHERE a.org_code NOT IN (SELECT org_code FROM orgs) OR a.org_code IS NULL
), rating_order AS (
    SELECT r->>'rating' AS value, row_number() OVER () AS value_order
    FROM (SELECT unnest(json_extract(standards, '$.member_assessment.ratings[*]')) AS r FROM marts.mart_parameters)
), long AS (
    SELECT scope_code, year, year_complete, score, 'rating' AS scale,
           coalesce(rating, 'not_assessed') AS value, coalesce(rating_name, '未评定') AS value_name
    FROM scoped
    UNION ALL
    SELECT scope_code, year, year_complete, score, 'review_grade',
           coalesce(review_grade, 'not_assessed'), coalesce(review_grade_name, '未评议')
    FROM scoped
), cells AS (
    SELECT scope_code, year, scale, value, any_value(value_name) AS value_name, any_value(year_complete) AS year_complete,
           count(*) AS members, round(avg(score), 1) AS avg_score
    FROM long GROUP BY ALL
), org_years AS (
    SELECT scope_code, year, scale, sum(members) AS org_members,
           sum(members) FILTER (WHERE value <> 'not_assessed') AS assessed,
           sum(members) FILTER (WHERE scale = 'review_grade' AND value = 'excellent') AS excellent
    FROM cells GROUP BY ALL
)
SELECT
    c.scope_code AS org_code, o.name AS org_name, o.org_type,
    c.year, c.year_complete, c.scale, c.value, c.value_name,
    coalesce(ro.value_order,
             CASE c.value WHEN 'excellent' THEN 1 WHEN 'qualified' THEN 2 WHEN 'basically_qualified' THEN 3
                          WHEN 'unqualified' THEN 4 END, 9) AS value_order,
    c.members,
    y.org_members::BIGINT AS org_members,
    coalesce(y.assessed, 0)::BIGINT AS assessed,
    round(c.members / y.org_members, 4) AS share,
    CASE WHEN c.value <> 'not_assessed' THEN round(c.members / y.assessed, 4) END AS share_of_assessed,
    c.avg_score,
    CASE WHEN c.scale = 'review_grade' THEN coalesce(y.excellent, 0) > y.assessed / 3.0 END AS excellent_over_one_third
FROM cells c
JOIN org_years y USING (scope_code, year, scale)
LEFT JOIN orgs o ON o.org_code = c.scope_code
LEFT JOIN rating_order ro ON c.scale = 'rating' AND ro.value = c.value
ORDER BY c.scope_code, c.year, c.scale, value_order
