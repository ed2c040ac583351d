-- 党员组织关系转移数据 (zt_dyzzgxzysj): one row per 组织关系转接 letter (介绍信编号) in
-- warehouse.fact_relation_transfer. lxrq (离校日期): the student system's 毕业日期 of a graduate who has one,
-- else the letter's 转出日期 (staff, or a student without a graduation date): the relationship leaves with
-- the member. zzgxqx is the receiving organisation's name as the letter gives it (转入党组织名称). xm is the
-- person's survivor name (warehouse.dim_person). dyfzztm is the member's stage at transfer (正式/预备,
-- warehouse.dim_party_member), which the receiving committee needs to follow a 预备党员's probation.
WITH stage AS (
    SELECT person_no, arg_max(stage, valid_from) AS stage
    FROM warehouse.dim_party_member
    WHERE register = 'transfer' AND stage IN ('full', 'probationary')
    GROUP BY person_no
)
SELECT
    t.letter_no                                       AS _key,
    p.name                                            AS xm,
    t.person_no                                       AS rybh,
    strftime(coalesce(s.graduated_on, t.out_date), '%Y%m%d') AS lxrq,
    t.to_org_name                                     AS zzgxqx,
    st.stage                                          AS dyfzztm
FROM warehouse.fact_relation_transfer t
LEFT JOIN warehouse.dim_person p ON p.person_key = t.person_key
LEFT JOIN staging.stg_students s ON s.student_no = t.person_no AND s.enrolment_status = '毕业'
LEFT JOIN stage st ON st.person_no = t.person_no
