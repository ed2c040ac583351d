-- ---
-- description: Development pipeline (发展党员 export), one row per 人员编号 not yet a member, normalised and coded.
-- source: party.development
-- snapshot: true
-- history: true
-- key: [人员编号]
-- required: [姓名, 党组织编码]
-- columns:
--   person_no: 人员编号 (工号/学号) of the person in development.
--   name: 姓名, normalised.
--   id_number: [restricted] 公民身份号码, normalised.
--   id_valid: Whether id_number is a valid GB 11643 number.
--   gender: GB/T 2261.1 gender code.
--   org_code: 党组织编码 of the branch that develops the person.
--   stage: Development stage coded (applicant, activist, candidate).
--   applied_on: 申请入党日期.
--   talked_on: 谈话日期 (talk after the application).
--   activist_on: 列为积极分子日期.
--   candidate_on: 列为发展对象日期.
--   contact_name: 培养联系人 (the member who mentors), normalised.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
SELECT
    trim(c."人员编号")                            AS person_no,
    name_clean(c."姓名")                          AS name,
    id_normalize(c."公民身份号码")                 AS id_number,
    id_is_valid(id_normalize(c."公民身份号码"))    AS id_valid,
    g.code                                       AS gender,
    trim(c."党组织编码")                           AS org_code,
    st.code                                      AS stage,
    parse_date_any(c."申请入党日期")               AS applied_on,
    parse_date_any(c."谈话日期")                   AS talked_on,
    parse_date_any(c."列为积极分子日期")           AS activist_on,
    parse_date_any(c."列为发展对象日期")           AS candidate_on,
    name_clean(c."培养联系人")                     AS contact_name,
    c._load_id                                   AS load_id,
    c._row_number                                AS _row_number,
    CASE
        WHEN c._duplicate THEN 'duplicate_row'
        WHEN g.code IS NULL OR st.code IS NULL THEN 'unmapped_code'
    END                                          AS _reject_rule,
    CASE
        WHEN c._duplicate THEN '人员编号 ' || c."人员编号" || ' appears more than once in load ' || c._load_id
        WHEN g.code IS NULL THEN '性别 ' || coalesce(c."性别", 'NULL') || ' has no mapping'
        ELSE '发展阶段 ' || coalesce(c."发展阶段", 'NULL') || ' has no mapping'
    END                                          AS _reject_detail,
    c."人员编号"                                  AS _record_key
FROM current c
LEFT JOIN staging.code_map g  ON g.system = 'party' AND g.field = 'gender' AND g.source_value = trim(c."性别")
LEFT JOIN staging.code_map st ON st.system = 'party' AND st.field = 'stage' AND st.source_value = trim(c."发展阶段")
