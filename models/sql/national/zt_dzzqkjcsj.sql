-- 党组织情况基础数据 (zt_dzzqkjcsj): one row per party organisation of the college, its current version in
-- warehouse.dim_party_org (党委, 党总支, 党支部, 党小组; active or dissolved_or_absent).
-- Returns _key (the natural key: 党组织编码) and one column per field of the table; coded fields hold the
-- hub's value, which pipelines/national.py maps to the platform's code through models/codesets/national_*.csv.
-- dzzdyrs: members in good standing (正常, full or probationary, member register) of the organisation and of
-- every organisation under it, so a 党委 or 党总支 counts its whole tree (a 党支部 its own members).
WITH RECURSIVE orgs AS (
    SELECT * FROM warehouse.dim_party_org WHERE is_current
), tree AS (   -- every (organisation, organisation in its subtree) pair; UNION stops on a cycle in bad data
    SELECT org_code AS root, org_code FROM orgs
    UNION
    SELECT t.root, o.org_code FROM tree t JOIN orgs o ON o.parent_code = t.org_code
), members AS (
    SELECT org_code, count(*) AS members
    FROM warehouse.dim_party_member
    WHERE is_current AND register = 'member' AND status = '正常' AND stage IN ('full', 'probationary')
    GROUP BY org_code
), counts AS (
    SELECT t.root AS org_code, coalesce(sum(m.members), 0) AS members
    FROM tree t LEFT JOIN members m ON m.org_code = t.org_code
    GROUP BY t.root
)
SELECT
    o.org_code                                        AS _key,
    o.org_type                                        AS dzzlxm,
    o.name                                            AS dzzmc,
    o.org_code                                        AS dzzbh,
    o.parent_name                                     AS lssjdzzmc,
    o.secretary_name                                  AS dnldxm,
    o.secretary_no                                    AS dnldjgh,
    CASE WHEN o.secretary_name IS NULL AND o.secretary_no IS NULL THEN NULL
         WHEN o.org_type = '党小组' THEN 'group_leader'
         ELSE 'secretary' END                         AS dnldzwm,
    c.members                                         AS dzzdyrs,
    o.status                                          AS dzzzt
FROM orgs o
JOIN counts c USING (org_code)
