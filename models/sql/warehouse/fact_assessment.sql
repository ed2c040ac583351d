-- ---
-- description: One row per 民主评议党员 result (人员编号, 评议年度): organisation and grade (excellent / qualified / basically_qualified / unqualified, with the original 评议等次). Results for an unknown person or 党组织编码 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   org_code: 党组织编码 of the member's organisation in the export.
--   year: 评议年度.
--   grade: excellent, qualified, basically_qualified or unqualified.
--   grade_name: 评议等次 as the export writes it.
--   source_file: The export file the result came from.
-- ---
CREATE OR REPLACE TEMP TABLE _fact_assessment AS
WITH person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
)
SELECT
    a.person_no,
    p.person_key,
    a.org_code,
    a.year,
    a.grade,
    a.grade_name,
    a.source_file,
    a.person_no || '|' || a.year                       AS _record_key,
    kp.person_no IS NULL                               AS _unknown_person,
    ko.org_code IS NULL                                AS _unknown_org
FROM staging.stg_party_assessments a
LEFT JOIN warehouse.known_person kp ON kp.person_no = a.person_no
LEFT JOIN warehouse.known_org ko ON ko.org_code = a.org_code
LEFT JOIN person_lookup p ON p.person_no = a.person_no;

CREATE OR REPLACE TABLE warehouse.fact_assessment AS
SELECT * EXCLUDE (_record_key, _unknown_person, _unknown_org)
FROM _fact_assessment
WHERE NOT _unknown_person AND NOT _unknown_org
ORDER BY year, org_code, person_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_assessment';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_person('fact_assessment', 'party,hr,student', _record_key, '民主评议 ' || year || ' for 人员编号',
                            'party.assessments', '人员编号', person_no))
FROM _fact_assessment WHERE _unknown_person
UNION ALL
SELECT unnest(orphan_org('fact_assessment', 'party', _record_key, person_key,
                         '民主评议 ' || year || ' of ' || person_no || ' in 党组织编码', 'party.assessments', '党组织编码', org_code))
FROM _fact_assessment WHERE _unknown_org;

DROP TABLE _fact_assessment;
