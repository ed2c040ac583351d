-- ---
-- description: 民主评议党员 results (one export per year), one row per 人员编号 and 评议年度, the grade coded.
-- source: party.assessments
-- key: [人员编号, 评议年度]
-- required: [党组织编码]
-- disjoint_loads: true
-- columns:
--   person_no: 人员编号 (工号/学号) of the member assessed.
--   name: 姓名, normalised.
--   org_code: 党组织编码 of the member's organisation.
--   year: 评议年度.
--   grade: 评议等次 coded: excellent, qualified, basically_qualified, unqualified.
--   grade_name: 评议等次 as the export writes it.
--   source_file: The export file the row came from.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- Grades 优秀/合格/基本合格/不合格 map to excellent/qualified/basically_qualified/unqualified (map_facts.csv);
-- a grade with no mapping is rejected, never guessed.
WITH v AS (
    SELECT c.*,
           try_cast(trim(c."评议年度") AS INTEGER)                                  AS _year,
           count(DISTINCT hash(c."党组织编码", c."评议等次"))
               OVER (PARTITION BY c."人员编号", c."评议年度")                         AS _versions
    FROM current c
)
SELECT
    trim(v."人员编号")                             AS person_no,
    name_clean(v."姓名")                           AS name,
    trim(v."党组织编码")                            AS org_code,
    v._year                                        AS year,
    g.code                                         AS grade,
    trim(v."评议等次")                              AS grade_name,
    v._file                                        AS source_file,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN v._year IS NULL OR v._year NOT BETWEEN 1921 AND 2100 THEN 'unparseable_value'
        WHEN g.code IS NULL THEN 'unmapped_code'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN '人员编号+评议年度 ' || v."人员编号" || '|' || v."评议年度" || ' has '
                                  || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN '人员编号+评议年度 ' || v."人员编号" || '|' || v."评议年度"
                               || ' appears more than once in load ' || v._load_id
        WHEN v._year IS NULL OR v._year NOT BETWEEN 1921 AND 2100
            THEN '评议年度 ''' || coalesce(v."评议年度", 'NULL') || ''' is not a year'
        ELSE '评议等次 ''' || coalesce(v."评议等次", 'NULL') || ''' has no mapping'
    END                                            AS _reject_detail,
    v."人员编号" || '|' || v."评议年度"               AS _record_key
FROM v
LEFT JOIN staging.code_map g ON g.system = 'party' AND g.field = 'assessment_grade'
                            AND g.source_value = trim(v."评议等次")
