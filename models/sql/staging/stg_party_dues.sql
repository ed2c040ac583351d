-- ---
-- description: Party dues payments (党费缴纳 exports, one file per calendar year), one row per 人员编号 and 缴费月份; amounts as DECIMAL, dates parsed.
-- source: party.dues
-- key: [人员编号, 缴费月份]
-- required: [党组织编码]
-- disjoint_loads: true
-- columns:
--   person_no: 人员编号 (工号/学号) of the payer.
--   name: 姓名, normalised.
--   org_code: 党组织编码 the payment was made in.
--   month: 缴费月份, the first day of the month.
--   base: 缴费基数 (yuan), NULL for students.
--   due: 应缴金额 (yuan) as the export states it.
--   paid: 实缴金额 (yuan).
--   paid_on: 缴费日期.
--   source_file: The export file the row came from.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- Amounts are yuan with two decimals; 缴费基数 is blank for students (flat 0.20 yuan). A value that does
-- not parse is rejected with the field and the value; two different rows for one key are a conflict
-- (both rejected, never guessed); an identical second copy is a duplicate.
WITH v AS (
    SELECT c.*,
           try_strptime(trim(c."缴费月份"), '%Y-%m')                                 AS _month,
           try_cast(replace(trim(c."缴费基数"), ',', '') AS DECIMAL(12, 2))         AS _base,
           try_cast(replace(trim(c."应缴金额"), ',', '') AS DECIMAL(12, 2))         AS _due,
           try_cast(replace(trim(c."实缴金额"), ',', '') AS DECIMAL(12, 2))         AS _paid,
           parse_date_any(c."缴费日期")                                              AS _paid_on,
           count(DISTINCT hash(c."党组织编码", c."缴费基数", c."应缴金额", c."实缴金额", c."缴费日期"))
               OVER (PARTITION BY c."人员编号", c."缴费月份")                         AS _versions
    FROM current c
)
SELECT
    trim(v."人员编号")                             AS person_no,
    name_clean(v."姓名")                           AS name,
    trim(v."党组织编码")                            AS org_code,
    CAST(v._month AS DATE)                         AS month,
    v._base                                        AS base,
    v._due                                         AS due,
    v._paid                                        AS paid,
    v._paid_on                                     AS paid_on,
    v._file                                        AS source_file,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN v._month IS NULL THEN 'unparseable_value'
        WHEN v._base IS NULL AND nullif(trim(v."缴费基数"), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._due IS NULL THEN 'unparseable_value'
        WHEN v._paid IS NULL THEN 'unparseable_value'
        WHEN v._paid_on IS NULL AND nullif(trim(v."缴费日期"), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN '人员编号+缴费月份 ' || v."人员编号" || '|' || v."缴费月份" || ' has '
                                  || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN '人员编号+缴费月份 ' || v."人员编号" || '|' || v."缴费月份"
                               || ' appears more than once in load ' || v._load_id
        WHEN v._month IS NULL THEN '缴费月份 ''' || coalesce(v."缴费月份", 'NULL') || ''' is not YYYY-MM'
        WHEN v._base IS NULL AND nullif(trim(v."缴费基数"), '') IS NOT NULL
            THEN '缴费基数 ''' || v."缴费基数" || ''' is not an amount'
        WHEN v._due IS NULL THEN '应缴金额 ''' || coalesce(v."应缴金额", 'NULL') || ''' is not an amount'
        WHEN v._paid IS NULL THEN '实缴金额 ''' || coalesce(v."实缴金额", 'NULL') || ''' is not an amount'
        ELSE '缴费日期 ''' || v."缴费日期" || ''' is not a date'
    END                                            AS _reject_detail,
    v."人员编号" || '|' || v."缴费月份"               AS _record_key
FROM v
