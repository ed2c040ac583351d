-- ---
-- description: Students, one row per 学号, normalised and coded.
-- source: student.students
-- key: [studentNo]
-- required: [name]
-- updated_at: updatedAt
-- columns:
--   student_no: 学号 (studentNo).
--   name: 姓名, normalised.
--   id_number: [restricted] 公民身份号码 (idCard), normalised.
--   id_valid: Whether id_number is a valid GB 11643 number.
--   gender: GB/T 2261.1 gender code.
--   birth_date: [restricted] 出生日期, parsed.
--   ethnicity: GB 3304 ethnicity code.
--   political_status: GB/T 4762 political status code.
--   school_code: 二级学院 code (collegeCode).
--   school_name: 二级学院 name.
--   major: 专业.
--   class_name: 班级.
--   cohort: 年级 (grade), the year of enrolment.
--   enrolment_status: 学籍状态 as sent (在读, 毕业, 休学, ...).
--   enrolled_on: 入学日期.
--   graduated_on: 毕业日期, NULL while enrolled.
--   counsellor_staff_no: 辅导员工号.
--   phone: [restricted] 手机号 (mobile), a mainland mobile number or NULL.
--   source_updated_at: When the source system last changed the record, as it reports it.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- 学工系统 students, one row per 学号.
SELECT
    trim(c.studentNo)                            AS student_no,
    name_clean(c.name)                           AS name,
    id_normalize(c.idCard)                       AS id_number,
    id_is_valid(id_normalize(c.idCard))      AS id_valid,
    g.code                                       AS gender,
    parse_date_any(c.birthDate)                  AS birth_date,
    e.code                                       AS ethnicity,
    ps.code                                      AS political_status,
    trim(c.collegeCode)                          AS school_code,
    trim(c.collegeName)                          AS school_name,
    trim(c.major)                                AS major,
    trim(c.className)                            AS class_name,
    trim(c.grade)                                AS cohort,
    trim(c.status)                               AS enrolment_status,
    parse_date_any(c.enrolDate)                  AS enrolled_on,
    parse_date_any(c.graduateDate)               AS graduated_on,
    nullif(trim(c.counselorNo), '')              AS counsellor_staff_no,
    phone_clean(c.mobile)                        AS phone,
    c.updatedAt                                  AS source_updated_at,
    c._load_id                                   AS load_id,
    c._row_number                                AS _row_number,
    CASE
        WHEN c._duplicate THEN 'duplicate_row'
        WHEN g.code IS NULL THEN 'unmapped_code'
        WHEN c.politicalStatus IS NOT NULL AND ps.code IS NULL THEN 'unmapped_code'
        WHEN c.nation IS NOT NULL AND e.code IS NULL THEN 'unmapped_code'
    END                                          AS _reject_rule,
    CASE
        WHEN c._duplicate THEN '学号 ' || c.studentNo || ' appears more than once in load ' || c._load_id
        WHEN g.code IS NULL THEN 'gender ' || coalesce(c.gender, 'NULL') || ' has no mapping'
        WHEN c.politicalStatus IS NOT NULL AND ps.code IS NULL THEN 'politicalStatus ' || c.politicalStatus || ' has no mapping'
        ELSE 'nation ' || c.nation || ' has no ethnicity mapping'
    END                                          AS _reject_detail,
    c.studentNo                                  AS _record_key
FROM current c
LEFT JOIN staging.code_map g  ON g.system = 'student' AND g.field = 'gender' AND g.source_value = trim(c.gender)
LEFT JOIN staging.code_map ps ON ps.system = 'student' AND ps.field = 'political_status' AND ps.source_value = trim(c.politicalStatus)
LEFT JOIN staging.cs_ethnicity e ON e.name = trim(c.nation) OR e.name = trim(c.nation) || '族'
