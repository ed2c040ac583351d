-- ---
-- description: Students, one row per 学号, normalised and coded.
-- source: student.students
-- key: [studentNo]
-- required: [name]
-- updated_at: updatedAt
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
