-- ---
-- description: One row per 民主评议党员 result (人员编号, 评议年度): organisation and grade (excellent / qualified / basically_qualified / unqualified, with the original 评议等次). Results for an unknown person or 党组织编码 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- ---
CREATE OR REPLACE TEMP TABLE _fact_assessment AS
WITH known_person AS (
    SELECT staff_no AS person_no FROM staging.stg_hr_staff
    UNION
    SELECT student_no FROM staging.stg_students
    UNION
    SELECT trim(record_key) FROM quality.quarantine
    WHERE stage = 'staging' AND ((source = 'hr' AND entity = 'staff') OR (source = 'student' AND entity = 'students'))
), known_org AS (
    SELECT org_code FROM staging.stg_party_orgs
    UNION
    SELECT trim(record_key) FROM quality.quarantine WHERE stage = 'staging' AND source = 'party' AND entity = 'orgs'
), person_lookup AS (
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
LEFT JOIN known_person kp ON kp.person_no = a.person_no
LEFT JOIN known_org ko ON ko.org_code = a.org_code
LEFT JOIN person_lookup p ON p.person_no = a.person_no;

CREATE OR REPLACE TABLE warehouse.fact_assessment AS
SELECT * EXCLUDE (_record_key, _unknown_person, _unknown_org)
FROM _fact_assessment
WHERE NOT _unknown_person AND NOT _unknown_org
ORDER BY year, org_code, person_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_assessment';

INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT 'orphan_reference', NULL, 'party,hr,student', _record_key,
       '民主评议 ' || year || ' for 人员编号 ' || person_no || ', which neither HR nor the student system holds',
       json_object('entity', 'party.assessments', 'field', '人员编号', 'value', person_no,
                   'references', 'hr.staff|student.students'),
       'fact_assessment'
FROM _fact_assessment WHERE _unknown_person
UNION ALL
SELECT 'orphan_reference', person_key, 'party', _record_key,
       '民主评议 ' || year || ' of ' || person_no || ' in 党组织编码 ' || org_code || ', which is not a party organisation',
       json_object('entity', 'party.assessments', 'field', '党组织编码', 'value', org_code, 'references', 'party.orgs'),
       'fact_assessment'
FROM _fact_assessment WHERE _unknown_org;

DROP TABLE _fact_assessment;
