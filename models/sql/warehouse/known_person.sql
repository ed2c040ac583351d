-- ---
-- description: Every 人员编号 (工号 or 学号) that HR or the student system holds, in staging or quarantined there for a row-level defect (the person exists; the record is what is wrong). The facts keep a record only when its person is in this table and report the others in quality.reconciliation_issue as orphan_reference; built once here so that every fact uses the same definition.
-- columns:
--   person_no: A 工号 (HR) or 学号 (student system) that the system holds, in staging or quarantined there.
-- ---
SELECT staff_no AS person_no FROM staging.stg_hr_staff
UNION
SELECT student_no FROM staging.stg_students
UNION
SELECT trim(record_key) FROM quality.quarantine
WHERE stage = 'staging' AND ((source = 'hr' AND entity = 'staff') OR (source = 'student' AND entity = 'students'))
