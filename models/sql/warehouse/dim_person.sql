-- ---
-- description: One row per real person across HR, student and party systems; person_key is a keyed hash of the ID number.
-- ---
-- One row per real person, keyed by a keyed hash of the normalised ID number (the ID itself is not the key).
-- Survivorship: for each attribute, the first non-null value by system priority (HR, then student, then party).
-- $secret is bound by the framework. Candidate matching without an ID and conflict reporting deepen this.
WITH src AS (
    SELECT 'hr' AS system, 1 AS priority, id_number, name, gender, birth_date, ethnicity, phone,
           staff_no, NULL::VARCHAR AS student_no, political_status
    FROM staging.stg_hr_staff
    UNION ALL
    SELECT 'student', 2, id_number, name, gender, birth_date, ethnicity, phone,
           NULL, student_no, political_status
    FROM staging.stg_students
    UNION ALL
    SELECT 'party', 3, id_number, name, gender, birth_date, ethnicity, phone,
           CASE WHEN category IN ('staff', 'retired') THEN person_no END,
           CASE WHEN category = 'student' THEN person_no END,
           CASE member_type WHEN 'full' THEN '01' WHEN 'probationary' THEN '02' END
    FROM staging.stg_party_members
)
SELECT
    upper(substr(sha256($secret || ':' || id_number), 1, 32))  AS person_key,
    id_number,
    arg_min(name, priority)             AS name,
    arg_min(gender, priority)           AS gender,
    coalesce(arg_min(birth_date, priority), id_birth_date(id_number)) AS birth_date,
    arg_min(ethnicity, priority)        AS ethnicity,
    arg_min(phone, priority)            AS phone,
    min(staff_no)                       AS staff_no,
    max(student_no)                     AS student_no,
    arg_min(political_status, priority) AS political_status,
    list_sort(list_distinct(list(system))) AS source_systems,
    bool_or(system = 'party')           AS in_party_system
FROM src
GROUP BY id_number
