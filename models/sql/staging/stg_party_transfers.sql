-- ---
-- description: 组织关系转接 letters (transfers out of the college's organisations), one row per 介绍信编号, kind coded and dates parsed.
-- source: party.transfers
-- key: [介绍信编号]
-- required: [人员编号, 转出党组织编码]
-- key_case_insensitive: true
-- columns:
--   letter_no: 介绍信编号 of the 组织关系转接 letter.
--   person_no: 人员编号 (工号/学号) of the member transferred.
--   name: 姓名, normalised.
--   id_number: [restricted] 公民身份号码, normalised.
--   from_org_code: 转出党组织编码: the college organisation the member leaves.
--   to_org_name: 转入党组织名称: where the member goes.
--   kind: 转接类型 coded: in_province or cross_province.
--   kind_name: 转接类型 as the export writes it (省内/跨省).
--   out_date: 转出日期.
--   receipt_date: 回执日期, NULL until the receipt comes back.
--   source_file: The export file the row came from.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
--   seen_at: When the load that holds this version was extracted.
-- ---
-- 转接类型 省内/跨省 maps to in_province/cross_province (map_facts.csv). 回执日期 is blank until the
-- receiving committee returns the receipt.
WITH v AS (
    SELECT c.*,
           count(DISTINCT hash(c."人员编号", c."公民身份号码", c."转出党组织编码", c."转入党组织名称", c."转接类型", c."转出日期", c."回执日期"))
               OVER (PARTITION BY c."介绍信编号")          AS _versions,
           parse_date_any(c."转出日期")                                              AS _out,
           parse_date_any(c."回执日期")                                              AS _receipt
    FROM current c
)
SELECT
    trim(v."介绍信编号")                            AS letter_no,
    trim(v."人员编号")                             AS person_no,
    name_clean(v."姓名")                           AS name,
    id_normalize(v."公民身份号码")                  AS id_number,
    trim(v."转出党组织编码")                         AS from_org_code,
    trim(v."转入党组织名称")                         AS to_org_name,
    k.code                                         AS kind,
    trim(v."转接类型")                              AS kind_name,
    v._out                                         AS out_date,
    v._receipt                                     AS receipt_date,
    v._file                                        AS source_file,
    v._load_id                                     AS load_id,
    v._extracted_at                                AS seen_at,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN k.code IS NULL THEN 'unmapped_code'
        WHEN v._out IS NULL THEN 'unparseable_value'
        WHEN v._receipt IS NULL AND nullif(trim(v."回执日期"), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN '介绍信编号 ' || v."介绍信编号" || ' has ' || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN '介绍信编号 ' || v."介绍信编号" || ' appears more than once in load ' || v._load_id
        WHEN k.code IS NULL THEN '转接类型 ''' || coalesce(v."转接类型", 'NULL') || ''' has no mapping'
        WHEN v._out IS NULL THEN '转出日期 ''' || coalesce(v."转出日期", 'NULL') || ''' is not a date'
        ELSE '回执日期 ''' || v."回执日期" || ''' is not a date'
    END                                            AS _reject_detail,
    v."介绍信编号"                                  AS _record_key
FROM v
LEFT JOIN staging.code_map k ON k.system = 'party' AND k.field = 'transfer_kind'
                            AND k.source_value = trim(v."转接类型")
