-- ---
-- description: Party organisations, one row per 党组织编码.
-- source: party.orgs
-- snapshot: true
-- history: true
-- key: [党组织编码]
-- required: [党组织名称]
-- columns:
--   org_code: 党组织编码.
--   name: 党组织名称.
--   org_type: 党组织类别 (党委/党总支/党支部/党小组).
--   parent_code: 上级党组织编码, NULL for the 党委.
--   branch_kind: 支部类型 as the export writes it (教工, 学生, 机关, 离退休); NULL above the 党支部.
--   unit_code: 所属单位: the department the organisation belongs to.
--   secretary_name: 书记姓名, normalised.
--   secretary_no: 书记人员编号 (工号/学号).
--   founded_on: 成立日期.
--   elected_on: 换届日期 (last election).
--   term_end: 届满日期 (end of the committee's term).
--   committee_size: 委员人数.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- 党建系统 organisations (党组织信息 export), one row per 党组织编码.
SELECT
    trim(c."党组织编码")                           AS org_code,
    trim(c."党组织名称")                           AS name,
    trim(c."党组织类别")                           AS org_type,
    nullif(trim(c."上级党组织编码"), '')           AS parent_code,
    nullif(trim(c."支部类型"), '')                 AS branch_kind,
    nullif(trim(c."所属单位"), '')                 AS unit_code,
    name_clean(c."书记姓名")                       AS secretary_name,
    nullif(trim(c."书记人员编号"), '')             AS secretary_no,
    parse_date_any(c."成立日期")                   AS founded_on,
    parse_date_any(c."换届日期")                   AS elected_on,
    parse_date_any(c."届满日期")                   AS term_end,
    try_cast(c."委员人数" AS INTEGER)              AS committee_size,
    c._load_id                                   AS load_id,
    c._row_number                                AS _row_number,
    CASE
        WHEN c._duplicate THEN 'duplicate_row'
        WHEN trim(c."党组织类别") NOT IN ('党委', '党总支', '党支部', '党小组') THEN 'unmapped_code'
    END                                          AS _reject_rule,
    CASE
        WHEN c._duplicate THEN '党组织编码 ' || c."党组织编码" || ' appears more than once in load ' || c._load_id
        ELSE '党组织类别 ' || coalesce(c."党组织类别", 'NULL') || ' is not 党委/党总支/党支部/党小组'
    END                                          AS _reject_detail,
    c."党组织编码"                                 AS _record_key
FROM current c
