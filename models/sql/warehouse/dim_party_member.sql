-- ---
-- description: Party members, people in the development pipeline and members transferred out, as SCD2 — one row per version of a person's party record (category, stage, status, branch, the date of each development stage) with valid_from / valid_to / is_current, built from every party export. Someone missing from a later export gets a closing version (status 'absent_from_export'); a transfer letter gives status 'transferred_out' and keeps the stage at transfer (stage_source says where it came from). Writes cross-system findings about members to quality.reconciliation_issue.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   member_version_key: Key of the version: md5 of 人员编号 and when it was seen.
--   person_key: The person (dim_person.person_key) of the party record; NULL when the number leads to no single person.
--   person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--   category: staff, student or retired: the register's 人员类别, else HR / student affairs.
--   stage: Stage: applicant, activist, candidate (development register), probationary or full (member register).
--   stage_source: Where the stage came from: member, development, previous_version, or hr/student_political_status for a member transferred out.
--   status: 党籍状态 (正常, ...), absent_from_export (closing version) or transferred_out.
--   org_code: 党组织编码 of the person's organisation (the last known for a closing version).
--   register: The register of the version: member, development or transfer.
--   applied_on: 申请入党日期.
--   talked_on: 谈话日期 (development register only).
--   activist_on: 列为积极分子日期.
--   candidate_on: 列为发展对象日期.
--   probationary_on: 入党日期 (admitted as probationary member).
--   full_on: 转正日期.
--   valid_from: When the export holding this version was extracted.
--   valid_to: When the next version was seen; NULL for the current one.
--   is_current: Whether this is the person's latest version.
--   load_id: The raw load of the register's version this row comes from.
-- ---

-- Where each person works or studies, from HR and student affairs: category, status, unit.
CREATE OR REPLACE TEMP TABLE _affiliation AS
SELECT staff_no AS person_no, CASE WHEN staff_status IN ('01', '02') THEN 'retired' ELSE 'staff' END AS category,
       staff_status AS affiliation_status, unit_code, political_status, 'hr' AS system
FROM staging.stg_hr_staff
UNION ALL
SELECT student_no, 'student', enrolment_status, school_code, political_status, 'student'
FROM staging.stg_students;

-- Every version seen of every person in either register (member register, development export).
CREATE OR REPLACE TEMP TABLE _seen AS
SELECT person_no, seen_at, load_id, 'member' AS register, category, member_type AS stage,
       coalesce(standing, '正常') AS status, org_code, applied_on, NULL::DATE AS talked_on, activist_on,
       candidate_on, probationary_on, full_on, false AS is_absence
FROM staging.stg_party_members_history
UNION ALL BY NAME
SELECT d.person_no, d.seen_at, d.load_id, 'development' AS register, a.category, d.stage, '正常' AS status,
       d.org_code, d.applied_on, d.talked_on, d.activist_on, d.candidate_on, NULL::DATE AS probationary_on,
       NULL::DATE AS full_on, false AS is_absence
FROM staging.stg_party_development_history d
LEFT JOIN _affiliation a USING (person_no)
UNION ALL BY NAME
-- Members whose relationship was transferred out (组织关系转接): their last party record here.
SELECT t.person_no, t.seen_at, t.load_id, 'transfer' AS register, a.category, NULL AS stage,
       'transferred_out' AS status, t.from_org_code AS org_code, false AS is_absence
FROM staging.stg_party_transfers t
LEFT JOIN _affiliation a USING (person_no);

-- A later export of the same register without the person: they left it (closing version), unless by
-- then their latest record is in the other register (an activist who became a member moves over).
CREATE OR REPLACE TEMP TABLE _events AS
WITH loads AS (
    SELECT 'member' AS register, load_id, seen_at FROM staging.stg_party_members_loads
    UNION ALL
    SELECT 'development', load_id, seen_at FROM staging.stg_party_development_loads
), firsts AS (
    SELECT person_no, register, min(seen_at) AS first_seen FROM _seen GROUP BY ALL
), absences AS (
    SELECT f.person_no, l.seen_at, l.load_id, f.register, 'absent_from_export' AS status, true AS is_absence
    FROM firsts f JOIN loads l ON l.register = f.register AND l.seen_at > f.first_seen
    WHERE NOT EXISTS (SELECT 1 FROM _seen s WHERE s.person_no = f.person_no AND s.load_id = l.load_id)
), events AS (
    SELECT * FROM _seen
    UNION ALL BY NAME
    SELECT * FROM absences
)
SELECT * EXCLUDE (prev_register) FROM (
    SELECT e.*, last_value(CASE WHEN NOT e.is_absence THEN e.register END IGNORE NULLS) OVER (
               PARTITION BY e.person_no ORDER BY e.seen_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
           AS prev_register
    FROM events e)
WHERE NOT is_absence OR prev_register = register;

CREATE OR REPLACE TABLE warehouse.dim_party_member AS
WITH states AS (
    SELECT *, md5(concat_ws('|', register, category, stage, status, org_code, applied_on, talked_on, activist_on,
                            candidate_on, probationary_on, full_on, is_absence)) AS state_hash
    FROM _events
), changes AS (
    SELECT * FROM (
        SELECT *, lag(state_hash) OVER (PARTITION BY person_no ORDER BY seen_at) AS prev_hash FROM states)
    WHERE prev_hash IS DISTINCT FROM state_hash
), previous AS (  -- an absence carries the last known attributes forward
    SELECT c.*,
           last_value(CASE WHEN NOT c.is_absence THEN c.stage END IGNORE NULLS) OVER w AS known_stage,
           last_value(CASE WHEN NOT c.is_absence THEN c.org_code END IGNORE NULLS) OVER w AS known_org,
           last_value(CASE WHEN NOT c.is_absence THEN c.category END IGNORE NULLS) OVER w AS known_category
    FROM changes c
    WINDOW w AS (PARTITION BY person_no ORDER BY seen_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    md5(p.person_no || '|' || CAST(p.seen_at AS VARCHAR))     AS member_version_key,
    coalesce(b.person_key, dp.person_key)                      AS person_key,
    p.person_no,
    coalesce(p.category, p.known_category, a.category)         AS category,
    -- A member transferred out keeps their stage at transfer (正式/预备): the last the member register
    -- said, else what HR or student affairs held as political status (01 full, 02 probationary) — a
    -- graduate's student record is not updated after leaving, so it is the status they left with.
    coalesce(p.stage, p.known_stage,
             CASE WHEN p.register = 'transfer' THEN CASE a.political_status WHEN '01' THEN 'full'
                                                                             WHEN '02' THEN 'probationary' END END)
                                                               AS stage,
    CASE WHEN p.stage IS NOT NULL THEN p.register
         WHEN p.known_stage IS NOT NULL THEN 'previous_version'
         WHEN p.register = 'transfer' AND a.political_status IN ('01', '02') THEN a.system || '_political_status'
    END                                                        AS stage_source,
    p.status,
    coalesce(p.org_code, p.known_org)                          AS org_code,
    p.register,
    p.applied_on, p.talked_on, p.activist_on, p.candidate_on, p.probationary_on, p.full_on,
    p.seen_at                                                  AS valid_from,
    lead(p.seen_at) OVER (PARTITION BY p.person_no ORDER BY p.seen_at) AS valid_to,
    lead(p.seen_at) OVER (PARTITION BY p.person_no ORDER BY p.seen_at) IS NULL AS is_current,
    p.load_id
FROM previous p
-- one row per number on each side, so that two persons sharing a number cannot duplicate a version: the
-- party record's person where the party registers agree on one, else the one person the number leads to
LEFT JOIN (SELECT record_key, CASE WHEN count(DISTINCT person_key) = 1 THEN min(person_key) END AS person_key
           FROM warehouse.bridge_person_record
           WHERE system IN ('party', 'development') GROUP BY record_key) b ON b.record_key = p.person_no
LEFT JOIN warehouse.person_number dp ON b.person_key IS NULL AND dp.person_no = p.person_no
LEFT JOIN _affiliation a ON a.person_no = p.person_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'dim_party_member';

-- Current members in good standing, with their branch and their HR / student record.
CREATE OR REPLACE TEMP TABLE _current AS
SELECT m.*, o.branch_kind, o.unit_code AS branch_unit, o.org_code IS NOT NULL AS org_known,
       a.system AS affiliation_system, a.affiliation_status, a.unit_code AS person_unit,
       a.political_status AS affiliation_political_status, a.category AS affiliation_category
FROM warehouse.dim_party_member m
LEFT JOIN staging.stg_party_orgs o ON o.org_code = m.org_code
LEFT JOIN _affiliation a ON a.person_no = m.person_no
WHERE m.is_current AND m.status = '正常';

INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
-- HR or student affairs say 中共党员 / 预备党员, but the party system has no current member record.
SELECT 'party_status_without_party_record', d.person_key, a.system || ',party', a.person_no,
       a.system || ' says political status ' || a.political_status || ' but the party system has no current member record',
       json_object('political_status', a.political_status), 'dim_party_member'
FROM _affiliation a
LEFT JOIN warehouse.person_number d ON d.person_no = a.person_no
WHERE a.political_status IN ('01', '02')
  AND NOT EXISTS (SELECT 1 FROM _current c WHERE c.person_no = a.person_no AND c.register = 'member')
  AND NOT EXISTS (SELECT 1 FROM staging.stg_party_transfers t WHERE t.person_no = a.person_no)
UNION ALL
-- A member whose HR / student political status does not read 01 (full) or 02 (probationary).
SELECT 'political_status_disagrees', person_key, affiliation_system || ',party', person_no,
       'party system: ' || stage || '; ' || affiliation_system || ' political status '
           || coalesce(affiliation_political_status, 'NULL'),
       json_object('party_stage', stage, 'political_status', affiliation_political_status), 'dim_party_member'
FROM _current
WHERE register = 'member' AND affiliation_system IS NOT NULL
  AND affiliation_political_status IS DISTINCT FROM CASE stage WHEN 'full' THEN '01' WHEN 'probationary' THEN '02' END
UNION ALL
-- Graduated, left or retired, but still active in a branch of the wrong kind.
SELECT 'graduated_in_student_branch', person_key, 'student,party', person_no,
       'student status ' || affiliation_status || ' but still active in student branch ' || org_code,
       json_object('enrolment_status', affiliation_status, 'org_code', org_code), 'dim_party_member'
FROM _current
WHERE register = 'member' AND affiliation_system = 'student' AND affiliation_status IN ('毕业', '退学')
  AND branch_kind = '学生'
UNION ALL
SELECT 'retiree_in_inservice_branch', person_key, 'hr,party', person_no,
       'HR status ' || affiliation_status || ' (retired) but in ' || branch_kind || ' branch ' || org_code,
       json_object('staff_status', affiliation_status, 'org_code', org_code, 'branch_kind', branch_kind),
       'dim_party_member'
FROM _current
WHERE register = 'member' AND affiliation_category = 'retired' AND branch_kind IN ('教工', '机关')
UNION ALL
-- A party record with no HR or student person behind it.
SELECT 'party_record_without_person', person_key, 'party', person_no,
       register || ' record ' || person_no || ' matches no HR or student record',
       json_object('register', register, 'org_code', org_code), 'dim_party_member'
FROM _current
WHERE affiliation_system IS NULL
UNION ALL
-- A branch code that is not an organisation of the party system.
SELECT 'unknown_party_org', person_key, 'party', person_no,
       register || ' record ' || person_no || ' is in 党组织编码 ' || coalesce(org_code, 'NULL') || ', which is not an organisation',
       json_object('org_code', org_code), 'dim_party_member'
FROM _current
WHERE NOT org_known
UNION ALL
-- In another department's branch: a teaching school's member in another school's branch or a 机关 branch.
SELECT 'member_in_other_department_branch', person_key, affiliation_system || ',party', person_no,
       'works or studies in unit ' || person_unit || ' but is in branch ' || org_code || ' of unit ' || branch_unit,
       json_object('person_unit', person_unit, 'branch_unit', branch_unit, 'branch_kind', branch_kind),
       'dim_party_member'
FROM _current
WHERE org_known AND person_unit IS NOT NULL AND affiliation_category <> 'retired'
  AND ((branch_kind IN ('教工', '学生') AND person_unit <> branch_unit)
       OR (branch_kind = '机关' AND person_unit LIKE '1%'));
