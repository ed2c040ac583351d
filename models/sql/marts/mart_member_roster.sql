-- ---
-- description: The member roster: one row per party member (正式 or 预备) in good standing on the as-of date, with their branch (org_known false: the 党组织编码 is not an organisation; such members count in the 党委), their 党小组 (group_code, derived from 党小组会 attendance) and the attributes the member structure counts — category, gender, ethnicity, age and age band, education (the party register's 学历), title level (HR, staff and retirees), 党龄 (full years since 转正) and its band.
-- ---
WITH p AS (
    SELECT as_of, standards FROM marts.mart_parameters
), age_bands AS (
    SELECT b->>'label' AS label, (b->>'upper')::INTEGER AS upper, row_number() OVER () AS band_order
    FROM (SELECT unnest(json_extract(standards, '$.structure.age_bands[*]')) AS b FROM p)
), standing_bands AS (
    SELECT b->>'label' AS label, (b->>'upper')::INTEGER AS upper, row_number() OVER () AS band_order
    FROM (SELECT unnest(json_extract(standards, '$.structure.standing_bands[*]')) AS b FROM p)
), members AS (
    SELECT m.*, d.gender, d.ethnicity, d.birth_date,
           r.education, h.title_level, h.title, h.staff_category, h.unit_code AS staff_unit_code,
           s.school_code, s.cohort,
           -- full years on the as-of date
           CASE WHEN d.birth_date IS NOT NULL THEN
               year(p.as_of) - year(d.birth_date)
               - (strftime(p.as_of, '%m%d') < strftime(d.birth_date, '%m%d'))::INTEGER END AS age,
           CASE WHEN m.stage = 'full' AND m.full_on IS NOT NULL THEN
               year(p.as_of) - year(m.full_on)
               - (strftime(p.as_of, '%m%d') < strftime(m.full_on, '%m%d'))::INTEGER END AS standing_years
    FROM marts.mart_membership m
    CROSS JOIN p
    LEFT JOIN warehouse.dim_person d ON d.person_key = m.person_key
    LEFT JOIN staging.stg_party_members r ON r.person_no = m.person_no
    LEFT JOIN staging.stg_hr_staff h ON h.staff_no = m.person_no
    LEFT JOIN staging.stg_students s ON s.student_no = m.person_no
    WHERE m.on_roll
)
SELECT
    m.person_key, m.person_no, m.name,
    m.category,
    CASE m.category WHEN 'staff' THEN '在职教职工' WHEN 'student' THEN '学生' WHEN 'retired' THEN '离退休人员' END
                                                             AS category_name,
    m.stage, st.name                                         AS stage_name,
    m.org_code, o.name AS org_name, o.org_type, o.branch_kind, o.parent_code, o.parent_name,
    -- false: the 党组织编码 is not an active organisation; the member counts in the 党委 (unknown_party_org)
    coalesce(o.status = 'active', false)                     AS org_known,
    g.group_code,
    coalesce(o.unit_code, m.staff_unit_code, m.school_code)  AS unit_code,
    m.gender, g.name                                         AS gender_name,
    m.ethnicity, e.name                                      AS ethnicity_name,
    m.age,
    (SELECT label FROM age_bands b WHERE m.age <= b.upper ORDER BY b.upper LIMIT 1) AS age_band,
    m.education,
    CASE WHEN m.category = 'student' THEN NULL ELSE coalesce(m.title_level, '无职称') END AS title_level,
    CASE WHEN m.category = 'student' THEN NULL ELSE m.title END AS title,
    m.staff_category, sc.name                                AS staff_category_name,
    m.cohort,
    m.member_from                                            AS probationary_on,
    m.full_on,
    m.standing_years,
    CASE WHEN m.stage = 'probationary' THEN '预备党员'
         ELSE (SELECT label FROM standing_bands b WHERE m.standing_years <= b.upper ORDER BY b.upper LIMIT 1)
    END                                                      AS standing_band,
    m.on_roll_from
FROM members m
LEFT JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
LEFT JOIN warehouse.member_group g ON g.person_no = m.person_no
LEFT JOIN staging.cs_party_stage st ON st.code = m.stage
LEFT JOIN staging.cs_gender g ON g.code = m.gender
LEFT JOIN staging.cs_ethnicity e ON e.code = m.ethnicity
LEFT JOIN staging.cs_staff_category sc ON sc.code = m.staff_category
ORDER BY m.org_code, m.person_no
