-- ---
-- description: The party organisation tree (党委/党总支/党支部/党小组) with member counts.
-- ---
-- The 党委 / 党总支 / 党支部 / 党小组 tree with member counts (members in good standing, by type).
WITH members AS (
    SELECT org_code,
           count(*) FILTER (WHERE member_type = 'full')         AS full_members,
           count(*) FILTER (WHERE member_type = 'probationary') AS probationary_members
    FROM staging.stg_party_members
    WHERE standing IS NULL OR standing = '正常'
    GROUP BY org_code
)
SELECT
    o.org_code,
    o.name,
    o.org_type,
    o.parent_code,
    p.name                                 AS parent_name,
    o.branch_kind,
    o.unit_code,
    o.secretary_name,
    o.secretary_no,
    o.founded_on,
    o.elected_on,
    o.term_end,
    coalesce(o.committee_size, 0)          AS committee_size,
    coalesce(m.full_members, 0)            AS full_members,
    coalesce(m.probationary_members, 0)    AS probationary_members
FROM staging.stg_party_orgs o
LEFT JOIN staging.stg_party_orgs p ON p.org_code = o.parent_code
LEFT JOIN members m ON m.org_code = o.org_code
