-- political_status_mismatch: a current member in good standing whose political status does not read
-- $full_code (full) / $probationary_code (probationary) in a system that holds it: HR (stg_hr_staff),
-- student affairs (stg_students) or the person's surviving value (dim_person). One row per member,
-- naming every disagreeing system.
WITH members AS (
    SELECT m.person_no, m.person_key, m.org_code, m.stage,
           CASE m.stage WHEN 'full' THEN $full_code WHEN 'probationary' THEN $probationary_code END AS expected,
           p.political_status AS person_status,
           coalesce(p.staff_no, m.person_no) AS staff_no,
           coalesce(p.student_no, m.person_no) AS student_no,
           p.person_key IS NOT NULL AS has_person
    FROM warehouse.dim_party_member m
    LEFT JOIN warehouse.dim_person p ON p.person_key = m.person_key
    WHERE m.is_current AND m.register = 'member' AND m.status = '正常' AND m.stage IN ('full', 'probationary')
), statuses AS (
    SELECT m.*, 'hr' AS system, h.political_status AS value
    FROM members m JOIN staging.stg_hr_staff h ON h.staff_no = m.staff_no
    UNION ALL
    SELECT m.*, 'student', s.political_status
    FROM members m JOIN staging.stg_students s ON s.student_no = m.student_no
    UNION ALL
    SELECT m.*, 'dim_person', m.person_status
    FROM members m WHERE m.has_person
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       'party stage ' || stage || ' needs political status ' || expected || '; '
           || string_agg(system || ' has ' || coalesce(value, 'none'), ', ' ORDER BY system) AS detail
FROM statuses
WHERE value IS DISTINCT FROM expected
GROUP BY person_no, person_key, org_code, stage, expected
