-- ---
-- description: Party member register, one row per 人员编号, normalised and coded.
-- source: party.members
-- snapshot: true
-- history: true
-- key: [人员编号]
-- optional_columns: [延长预备期]
-- required: [姓名, 党组织编码]
-- columns:
--   person_no: 人员编号 (工号/学号) of the member.
--   name: 姓名, normalised.
--   id_number: [restricted] 公民身份号码, normalised.
--   id_valid: Whether id_number is a valid GB 11643 number.
--   gender: GB/T 2261.1 gender code.
--   ethnicity: GB 3304 ethnicity code.
--   birth_date: [restricted] 出生日期, parsed.
--   education: 学历 as the register writes it.
--   category: 人员类别 coded: staff, student or retired.
--   org_code: 党组织编码 of the member's organisation.
--   branch_name: 所在党支部 as written in the register.
--   member_type: Membership coded: probationary or full.
--   applied_on: 申请入党日期.
--   activist_on: 列为积极分子日期.
--   candidate_on: 列为发展对象日期.
--   probationary_on: 入党日期 (admitted as probationary member).
--   full_on: 转正日期 (became a full member).
--   probation_extension_months: 延长预备期, months the probation was extended.
--   standing: 党籍状态 as the register writes it.
--   phone: [restricted] 联系电话, a mainland mobile number or NULL.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- 党建系统 member register (党员信息 exports), one row per 人员编号 (学号 or 工号).
SELECT
    trim(c."人员编号")                            AS person_no,
    name_clean(c."姓名")                          AS name,
    id_normalize(c."公民身份号码")                 AS id_number,
    id_is_valid(id_normalize(c."公民身份号码"))    AS id_valid,
    g.code                                       AS gender,
    e.code                                       AS ethnicity,
    parse_date_any(c."出生日期")                   AS birth_date,
    nullif(trim(c."学历"), '')                    AS education,
    cat.code                                     AS category,
    trim(c."党组织编码")                           AS org_code,
    trim(c."所在党支部")                           AS branch_name,
    mt.code                                      AS member_type,
    parse_date_any(c."申请入党日期")               AS applied_on,
    parse_date_any(c."列为积极分子日期")           AS activist_on,
    parse_date_any(c."列为发展对象日期")           AS candidate_on,
    parse_date_any(c."入党日期")                   AS probationary_on,
    parse_date_any(c."转正日期")                   AS full_on,
    -- 延长预备期 (months, 6-12, recorded when the branch extended the probation; empty: none). Older
    -- exports lack the column: NULL.
    try_cast(nullif(trim(c."延长预备期"), '') AS INTEGER) AS probation_extension_months,
    trim(c."党籍状态")                             AS standing,
    phone_clean(c."联系电话")                     AS phone,
    c._load_id                                   AS load_id,
    c._row_number                                AS _row_number,
    CASE
        WHEN c._duplicate THEN 'duplicate_row'
        WHEN g.code IS NULL OR mt.code IS NULL OR cat.code IS NULL THEN 'unmapped_code'
        WHEN c."民族" IS NOT NULL AND e.code IS NULL THEN 'unmapped_code'
    END                                          AS _reject_rule,
    CASE
        WHEN c._duplicate THEN '人员编号 ' || c."人员编号" || ' appears more than once in load ' || c._load_id
        WHEN g.code IS NULL THEN '性别 ' || coalesce(c."性别", 'NULL') || ' has no mapping'
        WHEN mt.code IS NULL THEN '党员类型 ' || coalesce(c."党员类型", 'NULL') || ' has no mapping'
        WHEN cat.code IS NULL THEN '人员类别 ' || coalesce(c."人员类别", 'NULL') || ' has no mapping'
        ELSE '民族 ' || c."民族" || ' has no ethnicity mapping'
    END                                          AS _reject_detail,
    c."人员编号"                                  AS _record_key
FROM current c
LEFT JOIN staging.code_map g   ON g.system = 'party' AND g.field = 'gender' AND g.source_value = trim(c."性别")
LEFT JOIN staging.code_map mt  ON mt.system = 'party' AND mt.field = 'member_type' AND mt.source_value = trim(c."党员类型")
LEFT JOIN staging.code_map cat ON cat.system = 'party' AND cat.field = 'category' AND cat.source_value = trim(c."人员类别")
LEFT JOIN staging.cs_ethnicity e ON e.name = trim(c."民族") OR e.name = trim(c."民族") || '族'
