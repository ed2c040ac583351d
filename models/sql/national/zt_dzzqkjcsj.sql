-- 党组织情况基础数据 (zt_dzzqkjcsj): one row per party organisation of the college, its current version in
-- warehouse.dim_party_org (党委, 党总支, 党支部, 党小组; active or dissolved_or_absent).
-- Returns _key (the natural key: 党组织编码) and one column per field of the table; coded fields hold the
-- hub's value, which pipelines/national.py maps to the platform's code through models/codesets/national_*.csv.
-- dzzdyrs: dim_party_org.members_rollup, the hub's one definition of an organisation's members: members in
-- good standing (正常, full or probationary, member register) of the organisation and of every organisation
-- under it, so a 党委 or 党总支 counts its whole tree and a 党支部 its own members; the 党委 also counts the
-- members whose 党组织编码 is not an organisation (dim_party_org.unknown_org_members). A 党小组's members
-- are derived from 党小组会 attendance, and are NULL (not 0) when there is none (member_count_note says so).
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
    CASE WHEN o.status = 'active' THEN o.members_rollup ELSE 0 END AS dzzdyrs,
    o.status                                          AS dzzzt
FROM warehouse.dim_party_org o
WHERE o.is_current
