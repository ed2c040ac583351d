-- ---
-- description: One row per real person across HR, student and party systems (birthplace area from the ID number per GB/T 2260). person_key is HMAC-SHA256 (keyed by HUB_PERSON_KEY_SECRET) of the normalised ID number (or, for a person with no valid ID, of their source record); attributes survive by the field-level source priority in models/codesets/survivorship.csv. Also builds warehouse.bridge_person_record (every source record -> its person) and warehouse.person_number (工号/学号 -> person) and writes identity findings to quality.reconciliation_issue.
-- materialize: script
-- writes: [quality.reconciliation_issue, warehouse.bridge_person_record, warehouse.person_number]
-- columns:
--   person_key:
--   id_number:
--   has_valid_id: Whether any of the person's records holds a valid GB 11643 ID number.
--   name:
--   gender:
--   birth_date:
--   ethnicity:
--   phone:
--   political_status:
--   staff_no:
--   student_no:
--   birth_area_code: GB/T 2260 area code of birth registration: the ID number's first six digits.
--   source_systems: Registers holding a record of the person (hr, student, party, development).
--   in_party_system:
--   source_records: Number of source records linked to the person.
--   birth_area_name: Name of birth_area_code (area_code.csv); NULL for a code not in the list.
--   warehouse.bridge_person_record:
--     person_key: The person the record belongs to.
--     system: The register of the record: hr, student, party (the member register) or development (the pipeline export).
--     record_key: The record's key in that register (工号, 学号 or 人员编号).
--     person_no: The 工号/学号 the record carries.
--     link_rule: How it was linked: id_number, number_name_gender (no valid ID; one person with the number, name and gender) or unlinked (stands alone).
--   warehouse.person_number:
--     person_no: A 工号 or 学号 some record carries; one row each.
--     person_key: The one person the number leads to; NULL when it leads to several.
-- ---

-- Every person record in every system, with the number the systems share (工号 / 学号 = 人员编号).
CREATE OR REPLACE TEMP TABLE _person_record AS
SELECT 'hr' AS system, staff_no AS record_key, staff_no AS person_no, id_number, id_valid, name, gender,
       birth_date, ethnicity, phone, political_status, staff_no, NULL::VARCHAR AS student_no
FROM staging.stg_hr_staff
UNION ALL BY NAME
SELECT 'student' AS system, student_no AS record_key, student_no AS person_no, id_number, id_valid, name, gender,
       birth_date, ethnicity, phone, political_status, NULL AS staff_no, student_no
FROM staging.stg_students
UNION ALL BY NAME
SELECT 'party' AS system, person_no AS record_key, person_no, id_number, id_valid, name, gender, birth_date,
       ethnicity, phone, CASE member_type WHEN 'full' THEN '01' WHEN 'probationary' THEN '02' END AS political_status,
       CASE WHEN category IN ('staff', 'retired') THEN person_no END AS staff_no,
       CASE WHEN category = 'student' THEN person_no END AS student_no
FROM staging.stg_party_members
UNION ALL BY NAME
SELECT 'development' AS system, person_no AS record_key, person_no, id_number, id_valid, name, gender,
       NULL::DATE AS birth_date, NULL AS ethnicity, NULL AS phone, NULL AS political_status, NULL AS staff_no,
       NULL AS student_no
FROM staging.stg_party_development;

-- Identity. A valid ID number is the person. A record whose ID is invalid joins a person only by a
-- strict rule: another system's record with the same shared number, the same name and gender, and no
-- contradicting birth date, leading to exactly one person. Anything weaker is a candidate for review.
CREATE OR REPLACE TEMP TABLE _linked AS
WITH valid AS (
    SELECT *, id_number AS cluster FROM _person_record WHERE id_valid
), matched AS (
    SELECT i.system, i.record_key, min(v.cluster) AS cluster, count(DISTINCT v.cluster) AS persons
    FROM _person_record i
    JOIN valid v ON v.person_no = i.person_no AND v.system <> i.system AND v.name = i.name
                AND v.gender = i.gender
                AND (i.birth_date IS NULL OR v.birth_date IS NULL OR v.birth_date = i.birth_date)
    WHERE NOT i.id_valid
    GROUP BY ALL
)
SELECT v.* EXCLUDE (cluster), v.cluster, 'id_number' AS link_rule FROM valid v
UNION ALL BY NAME
SELECT i.*, CASE WHEN m.persons = 1 THEN m.cluster ELSE 'record:' || i.system || ':' || i.record_key END AS cluster,
       CASE WHEN m.persons = 1 THEN 'number_name_gender' ELSE 'unlinked' END AS link_rule
FROM _person_record i LEFT JOIN matched m USING (system, record_key)
WHERE NOT i.id_valid;

CREATE OR REPLACE TABLE warehouse.bridge_person_record AS
SELECT upper(substr(sha256($hmac_opad || unhex(sha256($hmac_ipad || encode(cluster)))), 1, 32)) AS person_key, system, record_key, person_no,
       link_rule
FROM _linked;

-- Who a shared number (工号 / 学号 = 人员编号) belongs to, where it names exactly one person: how facts
-- that carry only a number find their person.
CREATE OR REPLACE TABLE warehouse.person_number AS
SELECT person_no, CASE WHEN count(DISTINCT person_key) = 1 THEN min(person_key) END AS person_key
FROM warehouse.bridge_person_record
WHERE person_no IS NOT NULL
GROUP BY person_no;

-- Field-level survivorship: for each attribute, the value from the most trusted system that has one.
CREATE OR REPLACE TEMP TABLE _priority AS
SELECT system,
       coalesce(max(p) FILTER (WHERE field = 'name'), 99)             AS p_name,
       coalesce(max(p) FILTER (WHERE field = 'gender'), 99)           AS p_gender,
       coalesce(max(p) FILTER (WHERE field = 'birth_date'), 99)       AS p_birth_date,
       coalesce(max(p) FILTER (WHERE field = 'ethnicity'), 99)        AS p_ethnicity,
       coalesce(max(p) FILTER (WHERE field = 'phone'), 99)            AS p_phone,
       coalesce(max(p) FILTER (WHERE field = 'political_status'), 99) AS p_political_status
FROM (SELECT field, system, CAST(priority AS INTEGER) AS p FROM staging.cs_survivorship)
GROUP BY system;

CREATE OR REPLACE TEMP TABLE _keyed AS
SELECT upper(substr(sha256($hmac_opad || unhex(sha256($hmac_ipad || encode(l.cluster)))), 1, 32)) AS person_key, l.*,
       coalesce(p.p_name, 99) AS p_name, coalesce(p.p_gender, 99) AS p_gender,
       coalesce(p.p_birth_date, 99) AS p_birth_date, coalesce(p.p_ethnicity, 99) AS p_ethnicity,
       coalesce(p.p_phone, 99) AS p_phone, coalesce(p.p_political_status, 99) AS p_political_status
FROM _linked l LEFT JOIN _priority p USING (system);

CREATE OR REPLACE TABLE warehouse.dim_person AS
SELECT
    person_key,
    max(id_number) FILTER (WHERE id_valid)             AS id_number,
    bool_or(id_valid)                                  AS has_valid_id,
    arg_min(name, p_name)                              AS name,
    arg_min(gender, p_gender)                          AS gender,
    coalesce(arg_min(birth_date, p_birth_date),
             id_birth_date(max(id_number) FILTER (WHERE id_valid))) AS birth_date,
    arg_min(ethnicity, p_ethnicity)                    AS ethnicity,
    arg_min(phone, p_phone)                            AS phone,
    arg_min(political_status, p_political_status)      AS political_status,
    min(staff_no)                                      AS staff_no,
    max(student_no)                                    AS student_no,
    substr(max(id_number) FILTER (WHERE id_valid), 1, 6) AS birth_area_code,
    list_sort(list_distinct(list(system)))             AS source_systems,
    bool_or(system IN ('party', 'development'))        AS in_party_system,
    count(*)                                           AS source_records
FROM _keyed
GROUP BY person_key;

-- Where the ID number was first issued (GB/T 2260; codes retired since stay valid in old numbers).
CREATE OR REPLACE TABLE warehouse.dim_person AS
SELECT p.*, a.name AS birth_area_name
FROM warehouse.dim_person p LEFT JOIN staging.cs_area_code a ON a.code = p.birth_area_code;

DELETE FROM quality.reconciliation_issue WHERE model = 'dim_person';

-- Every conflicting value, with each system's value (political status is reported as a cross-system
-- finding by dim_party_member, where its meaning is known).
INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
WITH long AS (
    UNPIVOT (SELECT person_key, system, record_key, name, gender, CAST(birth_date AS VARCHAR) AS birth_date,
                    ethnicity, phone FROM _keyed)
    ON name, gender, birth_date, ethnicity, phone INTO NAME field VALUE value
)
SELECT 'conflicting_value', l.person_key, string_agg(DISTINCT l.system, ',' ORDER BY l.system), NULL,
       l.field || ' differs between systems; kept ' || coalesce(CAST(any_value(d.survivor) AS VARCHAR), 'NULL'),
       json_group_object(l.system || ':' || l.record_key, l.value), 'dim_person'
FROM long l
JOIN (UNPIVOT (SELECT person_key, name, gender, CAST(birth_date AS VARCHAR) AS birth_date, ethnicity, phone
               FROM warehouse.dim_person)
      ON name, gender, birth_date, ethnicity, phone INTO NAME field VALUE survivor) d
  USING (person_key, field)
GROUP BY l.person_key, l.field
HAVING count(DISTINCT l.value) > 1;

-- ID numbers that fail GB 11643, and whether the record could still be placed.
INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT 'invalid_id_number', person_key, system, record_key,
       CASE link_rule WHEN 'unlinked' THEN 'ID number fails GB 11643; record stands alone until reviewed'
                      ELSE 'ID number fails GB 11643; linked by shared number, name and gender' END,
       json_object('id_number', mask_id(id_number), 'name', name), 'dim_person'
FROM _keyed WHERE NOT id_valid;

-- The record's own birth date and gender against the ID number (positions 7-14 and 17).
INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT CASE WHEN birth_date IS DISTINCT FROM id_birth_date(id_number) AND birth_date IS NOT NULL
            THEN 'id_birth_date_mismatch' ELSE 'id_gender_mismatch' END,
       person_key, system, record_key, 'the record disagrees with its ID number',
       json_object('birth_date', birth_date, 'id_birth_date', id_birth_date(id_number), 'gender', gender,
                   'id_gender', id_gender(id_number)), 'dim_person'
FROM _keyed
WHERE id_valid AND ((birth_date IS NOT NULL AND birth_date <> id_birth_date(id_number))
                    OR (gender IN ('1', '2') AND gender <> id_gender(id_number)));

-- Different persons who may be one: same name, birth date and gender. Reported, never merged.
INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
SELECT 'identity_candidate', a.person_key, array_to_string(list_distinct(a.source_systems || b.source_systems), ','),
       b.person_key, 'same name, birth date and gender as person ' || b.person_key || '; review before merging',
       json_object('name', a.name, 'birth_date', a.birth_date, 'other_person_key', b.person_key), 'dim_person'
FROM warehouse.dim_person a
JOIN warehouse.dim_person b ON a.name = b.name AND a.birth_date = b.birth_date AND a.gender = b.gender
                           AND a.person_key < b.person_key;
