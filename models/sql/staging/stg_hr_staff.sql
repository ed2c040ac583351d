-- ---
-- description: HR staff, one row per 工号, normalised and coded.
-- source: hr.staff
-- key: [gh]
-- required: [xm]
-- updated_at: updated_at
-- columns:
--   staff_no: 工号 (gh), the staff member's number in HR.
--   name: 姓名 (xm), normalised (name_clean).
--   id_number: [restricted] 公民身份号码 (sfzjh), normalised (full-width digits, 15-digit numbers upgraded).
--   id_valid: Whether id_number is a valid GB 11643 number (check character and birth date).
--   gender: GB/T 2261.1 gender code.
--   birth_date: [restricted] 出生日期 (csrq), parsed.
--   ethnicity: GB 3304 ethnicity code.
--   political_status: GB/T 4762 political status code.
--   education: GB/T 4658 education code (xl).
--   education_level: The education code's level (education.csv).
--   title_code: GB/T 8561 professional title code (zcdm).
--   title: 职称 (zc) as HR writes it.
--   title_level: The title's level (title.csv: senior, deputy senior, ...).
--   unit_code: 单位号 (dwh) of the staff member's department.
--   unit_name: 单位名称 (dwmc).
--   staff_category: 教职工类别 code (jzglb; staff_category.csv).
--   staff_status: 当前状态 code (dqzt; staff_status.csv: in post, 01 退休, 02 离休, ...).
--   hire_date: 入职日期 (rzrq), parsed.
--   phone: [restricted] 手机号 (sjhm), a mainland mobile number or NULL.
--   source_updated_at: When the source system last changed the record, as it reports it.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- 人事系统 staff, one row per 工号: normalised values and national codes.
SELECT
    trim(c.gh)                                   AS staff_no,
    name_clean(c.xm)                             AS name,
    id_normalize(c.sfzjh)                        AS id_number,
    id_is_valid(id_normalize(c.sfzjh))       AS id_valid,
    g.code                                       AS gender,
    parse_date_any(c.csrq)                       AS birth_date,
    e.code                                       AS ethnicity,
    ps.code                                      AS political_status,
    nullif(trim(c.xl), '')                       AS education,
    ed.level                                     AS education_level,
    nullif(trim(c.zcdm), '')                     AS title_code,
    nullif(trim(c.zc), '')                       AS title,
    tt.level                                     AS title_level,
    trim(c.dwh)                                  AS unit_code,
    trim(c.dwmc)                                 AS unit_name,
    nullif(trim(c.jzglb), '')                    AS staff_category,
    nullif(trim(c.dqzt), '')                     AS staff_status,
    parse_date_any(c.rzrq)                       AS hire_date,
    phone_clean(c.sjhm)                          AS phone,
    c.updated_at                                 AS source_updated_at,
    c._load_id                                   AS load_id,
    c._row_number                                AS _row_number,
    CASE
        WHEN c._duplicate THEN 'duplicate_row'
        WHEN g.code IS NULL THEN 'unmapped_code'
        WHEN c.zzmm IS NOT NULL AND ps.code IS NULL THEN 'unmapped_code'
        WHEN c.mz IS NOT NULL AND e.code IS NULL THEN 'unmapped_code'
        WHEN nullif(trim(c.xl), '') IS NOT NULL AND ed.code IS NULL THEN 'unmapped_code'
        WHEN nullif(trim(c.zcdm), '') IS NOT NULL AND tt.code IS NULL THEN 'unmapped_code'
    END                                          AS _reject_rule,
    CASE
        WHEN c._duplicate THEN '工号 ' || c.gh || ' appears more than once in load ' || c._load_id
        WHEN g.code IS NULL THEN 'xbm ' || coalesce(c.xbm, 'NULL') || ' has no gender mapping'
        WHEN c.zzmm IS NOT NULL AND ps.code IS NULL THEN 'zzmm ' || c.zzmm || ' has no political-status mapping'
        WHEN c.mz IS NOT NULL AND e.code IS NULL THEN 'mz ' || c.mz || ' has no ethnicity mapping'
        WHEN nullif(trim(c.xl), '') IS NOT NULL AND ed.code IS NULL THEN 'xl ' || c.xl || ' is not a GB/T 4658 education code'
        ELSE 'zcdm ' || c.zcdm || ' is not a GB/T 8561 title code'
    END                                          AS _reject_detail,
    c.gh                                         AS _record_key
FROM current c
LEFT JOIN staging.code_map g  ON g.system = 'hr' AND g.field = 'gender' AND g.source_value = trim(c.xbm)
LEFT JOIN staging.code_map ps ON ps.system = 'hr' AND ps.field = 'political_status' AND ps.source_value = trim(c.zzmm)
LEFT JOIN staging.cs_ethnicity e ON e.name = trim(c.mz) OR e.name = trim(c.mz) || '族'
LEFT JOIN staging.cs_education ed ON ed.code = trim(c.xl)
LEFT JOIN staging.cs_title tt ON tt.code = trim(c.zcdm)
