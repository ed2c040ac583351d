-- ---
-- description: One row per college unit (单位号): the 二级学院 and 机关 units named by HR (dwh/dwmc) and the student system (collegeCode/collegeName), with staff, student and party counts.
-- columns:
--   unit_code: 单位号: HR's dwh, the student system's collegeCode.
--   name: The name HR uses most for the code, else the student system's.
--   kind: 二级学院 (has students or offers courses) or 机关.
--   staff_total: Staff in HR with this unit.
--   staff_in_post: Of them, in post (staff_status.csv in_post).
--   staff_retired: Of them, 01 退休 or 02 离休.
--   students_total: Students of this school in the student system.
--   students_enrolled: Of them, 学籍状态 在读.
--   students_graduated: Of them, 学籍状态 毕业.
--   courses_offered: Courses of the 教务 catalogue taught by the unit (kkdwh).
--   party_branches: 党支部 whose 所属单位 is the unit.
--   party_members: Members in good standing (正常) of the unit's party organisations.
--   source_systems: Systems that name the unit (hr, student).
--   other_names: Every other spelling of the unit's name seen in the systems.
-- ---
-- kind: 二级学院 when the unit has students or offers courses in the academic system (jw_kc kkdwh), else 机关.
-- name: the name HR uses most for the code, else the student system's; every other spelling seen is
-- listed in other_names. Counts are of staging rows: staff by HR status (in post per staff_status.csv;
-- 01 退休 / 02 离休 retired), students by 学籍状态, 党支部 and the members (正常 standing) of the party
-- organisations whose 所属单位 is the unit.
WITH names AS (
    SELECT unit_code, unit_name AS name, 'hr' AS system, 1 AS priority FROM staging.stg_hr_staff
    WHERE unit_code IS NOT NULL AND unit_code <> ''
    UNION ALL
    SELECT school_code, school_name, 'student', 2 FROM staging.stg_students
    WHERE school_code IS NOT NULL AND school_code <> ''
), name_counts AS (
    SELECT unit_code, name, system, priority, count(*) AS uses FROM names GROUP BY ALL
), unit AS (
    SELECT unit_code,
           arg_min(name, (priority, -uses, name))        AS name,
           list_sort(list_distinct(list(system)))        AS source_systems,
           list_sort(list_distinct(list(name)))          AS all_names
    FROM name_counts
    GROUP BY unit_code
), staff AS (
    SELECT h.unit_code,
           count(*)                                                        AS staff_total,
           count(*) FILTER (WHERE s.in_post = 'true')                       AS staff_in_post,
           count(*) FILTER (WHERE h.staff_status IN ('01', '02'))           AS staff_retired
    FROM staging.stg_hr_staff h LEFT JOIN staging.cs_staff_status s ON s.code = h.staff_status
    GROUP BY h.unit_code
), students AS (
    SELECT school_code AS unit_code,
           count(*)                                                        AS students_total,
           count(*) FILTER (WHERE enrolment_status = '在读')                 AS students_enrolled,
           count(*) FILTER (WHERE enrolment_status = '毕业')                 AS students_graduated
    FROM staging.stg_students GROUP BY school_code
), courses AS (
    SELECT unit_code, count(*) AS courses_offered FROM staging.stg_academic_courses GROUP BY unit_code
), party AS (
    SELECT o.unit_code,
           count(DISTINCT o.org_code) FILTER (WHERE o.org_type = '党支部')   AS party_branches,
           count(m.person_no)                                              AS party_members
    FROM staging.stg_party_orgs o
    LEFT JOIN staging.stg_party_members m ON m.org_code = o.org_code AND coalesce(m.standing, '正常') = '正常'
    GROUP BY o.unit_code
)
SELECT
    u.unit_code,
    u.name,
    CASE WHEN coalesce(st.students_total, 0) > 0 OR coalesce(c.courses_offered, 0) > 0
         THEN '二级学院' ELSE '机关' END                   AS kind,
    coalesce(s.staff_total, 0)                            AS staff_total,
    coalesce(s.staff_in_post, 0)                          AS staff_in_post,
    coalesce(s.staff_retired, 0)                          AS staff_retired,
    coalesce(st.students_total, 0)                        AS students_total,
    coalesce(st.students_enrolled, 0)                     AS students_enrolled,
    coalesce(st.students_graduated, 0)                    AS students_graduated,
    coalesce(c.courses_offered, 0)                        AS courses_offered,
    coalesce(p.party_branches, 0)                         AS party_branches,
    coalesce(p.party_members, 0)                          AS party_members,
    u.source_systems,
    list_filter(u.all_names, lambda x: x <> u.name)            AS other_names
FROM unit u
LEFT JOIN staff s ON s.unit_code = u.unit_code
LEFT JOIN students st ON st.unit_code = u.unit_code
LEFT JOIN courses c ON c.unit_code = u.unit_code
LEFT JOIN party p ON p.unit_code = u.unit_code
ORDER BY u.unit_code
