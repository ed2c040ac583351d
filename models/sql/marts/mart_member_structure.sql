-- ---
-- description: Member structure: for every organisation (党委, 党总支, 党支部 — a member counts in their branch and in every organisation above it — and 党小组, whose members are derived from 党小组会 attendance) and each dimension (category, stage, gender, ethnicity, age_band, education, title_level, party_standing), the members in good standing with each value and their share of the organisation's members, on the as-of date. A member in a 党组织编码 that is not an organisation counts under that code and in the 党委, and unknown_org_members says how many of org_members they are: the same total and the same flag as mart_org_tree and zt_dzzqkjcsj.
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
), scoped AS (  -- each member once per organisation that counts them
    SELECT r.*, c.ancestor_code AS scope_code FROM marts.mart_member_roster r JOIN closure c USING (org_code)
    UNION ALL
    SELECT r.*, unnest([r.org_code, (SELECT org_code FROM root)]) AS scope_code
    FROM marts.mart_member_roster r WHERE r.org_code NOT IN (SELECT org_code FROM orgs) OR r.org_code IS NULL
    UNION ALL  -- a 党小组's members: derived from 党小组会 attendance (mart_member_roster.group_code)
    SELECT r.*, r.group_code FROM marts.mart_member_roster r WHERE r.group_code IN (SELECT org_code FROM orgs)
), long AS (
    SELECT scope_code, 'category' AS dimension, category AS value, category_name AS value_name,
           CASE category WHEN 'staff' THEN 1 WHEN 'student' THEN 2 WHEN 'retired' THEN 3 END AS value_order
    FROM scoped
    UNION ALL SELECT scope_code, 'stage', stage, stage_name, CASE stage WHEN 'full' THEN 1 ELSE 2 END FROM scoped
    UNION ALL SELECT scope_code, 'gender', gender, gender_name, TRY_CAST(gender AS INTEGER) FROM scoped
    UNION ALL SELECT scope_code, 'ethnicity', ethnicity, ethnicity_name, TRY_CAST(ethnicity AS INTEGER) FROM scoped
    UNION ALL SELECT scope_code, 'age_band', age_band, age_band, NULL FROM scoped
    UNION ALL SELECT scope_code, 'education', education, education, NULL FROM scoped
    UNION ALL SELECT scope_code, 'title_level', coalesce(title_level, '学生'), coalesce(title_level, '学生（不适用）'),
                     CASE coalesce(title_level, '学生') WHEN '高级' THEN 1 WHEN '中级' THEN 2 WHEN '初级' THEN 3
                          WHEN '无职称' THEN 4 ELSE 5 END FROM scoped
    UNION ALL SELECT scope_code, 'party_standing', standing_band, standing_band, NULL FROM scoped
), bands AS (  -- the configured order of the bands
    SELECT 'age_band' AS dimension, b->>'label' AS value, row_number() OVER () AS value_order
    FROM (SELECT unnest(json_extract(standards, '$.structure.age_bands[*]')) AS b FROM marts.mart_parameters)
    UNION ALL
    SELECT 'party_standing', b->>'label', row_number() OVER ()
    FROM (SELECT unnest(json_extract(standards, '$.structure.standing_bands[*]')) AS b FROM marts.mart_parameters)
    UNION ALL SELECT 'party_standing', '预备党员', 0
), counts AS (
    SELECT scope_code, dimension, coalesce(value, 'unknown') AS value,
           coalesce(any_value(value_name), '未知') AS value_name, any_value(value_order) AS value_order,
           count(*) AS members
    FROM long GROUP BY ALL
), totals AS (
    SELECT scope_code, count(*) AS org_members,
           count(*) FILTER (WHERE r_unknown) AS unknown_org_members
    FROM (SELECT scope_code, org_code IS NULL OR org_code NOT IN (SELECT org_code FROM orgs) AS r_unknown FROM scoped)
    GROUP BY ALL
)
SELECT
    c.scope_code AS org_code, o.name AS org_name, o.org_type,
    c.dimension, c.value, c.value_name,
    coalesce(b.value_order, c.value_order, dense_rank() OVER (PARTITION BY c.scope_code, c.dimension ORDER BY c.value))
        AS value_order,
    c.members,
    t.org_members,
    t.unknown_org_members,
    round(c.members / t.org_members, 4) AS share
FROM counts c
JOIN totals t USING (scope_code)
LEFT JOIN orgs o ON o.org_code = c.scope_code
LEFT JOIN bands b ON b.dimension = c.dimension AND b.value = c.value
ORDER BY c.scope_code, c.dimension, value_order, c.value
