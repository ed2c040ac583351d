-- ---
-- description: Organisation management: one row per current party organisation (党委, 党总支, 党支部, 党小组) with its place in the tree (depth, path), secretary, committee, term (换届/届满 and days left on the as-of date), members in good standing directly in it and rolled up over everything below it (to the 党总支 and the 党委) as warehouse.dim_party_org counts them — the 党委 including members whose 党组织编码 is not an organisation (unknown_org_members), a 党小组's members derived from 党小组会 attendance (NULL, with member_count_note, where there is none), and warnings from the standards file — term expired or ending soon, a branch under the minimum of full members or over the maximum size, a committee missing or out of range, no secretary.
-- ---
WITH RECURSIVE p AS (
    SELECT as_of, standards->'$.organisations' AS s FROM marts.mart_parameters
), orgs AS (
    SELECT * FROM warehouse.dim_party_org WHERE is_current AND status = 'active'
), tree(org_code, depth, path_codes, path_names) AS (
    SELECT org_code, 0, [org_code], [name] FROM orgs
    WHERE parent_code IS NULL OR parent_code NOT IN (SELECT org_code FROM orgs)
    UNION ALL
    SELECT o.org_code, t.depth + 1, list_append(t.path_codes, o.org_code), list_append(t.path_names, o.name)
    FROM tree t JOIN orgs o ON o.parent_code = t.org_code
), below AS (  -- branches and groups at or below each organisation
    SELECT a.org_code,
           count(*) FILTER (WHERE o.org_type = '党支部' AND o.org_code <> a.org_code) AS branches_below,
           count(*) FILTER (WHERE o.org_type = '党小组' AND o.org_code <> a.org_code) AS groups_below
    FROM tree a
    JOIN tree t ON list_contains(t.path_codes, a.org_code)
    JOIN orgs o ON o.org_code = t.org_code
    GROUP BY a.org_code
), base AS (
    SELECT o.org_code, o.name, o.org_type, t.depth, o.parent_code, o.parent_name,
           array_to_string(t.path_names, ' / ') AS path,
           o.branch_kind, o.unit_code, dep.name AS unit_name,
           o.secretary_name, o.secretary_person_key, o.committee_size,
           o.founded_on, o.elected_on, o.term_end,
           CASE WHEN o.elected_on IS NOT NULL AND o.term_end IS NOT NULL
                THEN date_diff('month', o.elected_on, o.term_end) / 12.0 END AS term_years,
           o.term_end - p.as_of AS days_to_term_end,
           -- the counts are dim_party_org's, the one definition (a 党小组's derived from attendance, NULL if none)
           o.full_members, o.probationary_members, o.full_members + o.probationary_members AS members,
           o.full_members_rollup, o.probationary_members_rollup, o.members_rollup, o.unknown_org_members,
           o.member_count_note, r.branches_below, r.groups_below,
           p.as_of, p.s
    FROM orgs o
    JOIN tree t USING (org_code)
    JOIN below r USING (org_code)
    CROSS JOIN p
    LEFT JOIN warehouse.dim_department dep ON dep.unit_code = o.unit_code
), judged AS (
    SELECT *,
           CASE WHEN org_type = '党小组' THEN 'not_applicable'
                WHEN term_end IS NULL THEN 'no_term_recorded'
                WHEN term_end < as_of THEN 'expired'
                WHEN days_to_term_end <= (s->>'term_warning_days')::INTEGER THEN 'ending_soon'
                ELSE 'in_term' END AS term_status,
           CASE WHEN org_type = '党小组' THEN 'not_applicable'
                WHEN org_type = '党支部' AND full_members < (s->>'committee_from_full_members')::INTEGER
                    THEN CASE WHEN committee_size = 0 THEN 'secretary_only' ELSE 'committee' END
                WHEN committee_size = 0 THEN 'committee_missing'
                -- the 3-7 range is the 支部工作条例's, for branch committees
                WHEN org_type = '党支部' AND (committee_size < (s->>'committee_min')::INTEGER
                     OR committee_size > (s->>'committee_max')::INTEGER) THEN 'committee_size_out_of_range'
                ELSE 'committee' END AS committee_status
    FROM base
)
SELECT
    org_code, name, org_type, depth, parent_code, parent_name, path, branch_kind, unit_code, unit_name,
    secretary_name, secretary_person_key, committee_size, committee_status,
    founded_on, elected_on, term_end, term_years, days_to_term_end, term_status,
    full_members, probationary_members, members,
    full_members_rollup, probationary_members_rollup, members_rollup, unknown_org_members, member_count_note,
    branches_below, groups_below,
    nullif(concat_ws(', ',
        CASE WHEN term_status = 'expired' THEN 'term_expired' END,
        CASE WHEN term_status = 'ending_soon' THEN 'term_ending_soon' END,
        CASE WHEN org_type = '党支部' AND full_members < (s->>'branch_min_full_members')::INTEGER
             THEN 'fewer_than_' || (s->>'branch_min_full_members') || '_full_members' END,
        CASE WHEN org_type = '党支部' AND members > (s->>'branch_max_members')::INTEGER
             THEN 'more_than_' || (s->>'branch_max_members') || '_members' END,
        CASE WHEN committee_status IN ('committee_missing', 'committee_size_out_of_range') THEN committee_status END,
        CASE WHEN secretary_name IS NULL OR secretary_name = '' THEN 'no_secretary' END), '') AS warnings,
    (term_status IN ('expired', 'ending_soon'))::INTEGER
      + (org_type = '党支部' AND full_members < (s->>'branch_min_full_members')::INTEGER)::INTEGER
      + (org_type = '党支部' AND members > (s->>'branch_max_members')::INTEGER)::INTEGER
      + (committee_status IN ('committee_missing', 'committee_size_out_of_range'))::INTEGER
      + (secretary_name IS NULL OR secretary_name = '')::INTEGER AS warning_count
FROM judged
ORDER BY path
