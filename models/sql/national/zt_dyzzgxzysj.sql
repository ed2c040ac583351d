-- 党员组织关系转移数据 (zt_dyzzgxzysj): one row per 组织关系转接 letter (介绍信编号) in
-- warehouse.fact_relation_transfer. lxrq (离校日期) is the letter's 转出日期: the hub has no leaving date of
-- its own, and the relationship leaves with the member. zzgxqx is the receiving organisation's name as the
-- letter gives it (转入党组织名称). xm is the person's survivor name (warehouse.dim_person).
SELECT
    t.letter_no                                       AS _key,
    p.name                                            AS xm,
    t.person_no                                       AS rybh,
    strftime(t.out_date, '%Y%m%d')                    AS lxrq,
    t.to_org_name                                     AS zzgxqx
FROM warehouse.fact_relation_transfer t
LEFT JOIN warehouse.dim_person p ON p.person_key = t.person_key
