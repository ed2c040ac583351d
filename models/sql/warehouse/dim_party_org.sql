-- ---
-- description: The party organisation tree (党委/党总支/党支部/党小组) as SCD2 — one row per version of each organisation (name, type, parent, secretary, founded, term end, committee) from every export, with valid_from / valid_to / is_current; an organisation missing from a later export gets a closing version (status 'dissolved_or_absent'). Current versions carry member counts.
-- materialize: script
-- ---
CREATE OR REPLACE TEMP TABLE _org_events AS
WITH seen AS (
    SELECT org_code, seen_at, load_id, name, org_type, parent_code, branch_kind, unit_code, secretary_name,
           secretary_no, founded_on, elected_on, term_end, committee_size, 'active' AS status
    FROM staging.stg_party_orgs_history
), firsts AS (
    SELECT org_code, min(seen_at) AS first_seen FROM seen GROUP BY ALL
), absences AS (
    SELECT f.org_code, l.seen_at, l.load_id, 'dissolved_or_absent' AS status
    FROM firsts f JOIN staging.stg_party_orgs_loads l ON l.seen_at > f.first_seen
    WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.org_code = f.org_code AND s.load_id = l.load_id)
)
SELECT * FROM seen UNION ALL BY NAME SELECT * FROM absences;

CREATE OR REPLACE TEMP TABLE _org_versions AS
SELECT * EXCLUDE (prev_hash) FROM (
    SELECT *, lag(state_hash) OVER (PARTITION BY org_code ORDER BY seen_at) AS prev_hash FROM (
        SELECT *, md5(concat_ws('|', status, name, org_type, parent_code, branch_kind, unit_code, secretary_name,
                                secretary_no, founded_on, elected_on, term_end, committee_size)) AS state_hash
        FROM _org_events))
WHERE prev_hash IS DISTINCT FROM state_hash;

CREATE OR REPLACE TABLE warehouse.dim_party_org AS
WITH members AS (
    SELECT org_code,
           count(*) FILTER (WHERE stage = 'full')         AS full_members,
           count(*) FILTER (WHERE stage = 'probationary') AS probationary_members
    FROM warehouse.dim_party_member
    WHERE is_current AND register = 'member' AND status = '正常'
    GROUP BY org_code
), versions AS (
    SELECT v.*,
           lead(v.seen_at) OVER (PARTITION BY v.org_code ORDER BY v.seen_at) AS valid_to
    FROM _org_versions v
)
SELECT
    md5(v.org_code || '|' || CAST(v.seen_at AS VARCHAR))  AS org_version_key,
    v.org_code, v.status,
    -- an absence version keeps the last known attributes
    coalesce(v.name, last_value(v.name IGNORE NULLS) OVER w)             AS name,
    coalesce(v.org_type, last_value(v.org_type IGNORE NULLS) OVER w)     AS org_type,
    coalesce(v.parent_code, last_value(v.parent_code IGNORE NULLS) OVER w) AS parent_code,
    p.name                                                AS parent_name,
    coalesce(v.branch_kind, last_value(v.branch_kind IGNORE NULLS) OVER w) AS branch_kind,
    coalesce(v.unit_code, last_value(v.unit_code IGNORE NULLS) OVER w)   AS unit_code,
    v.secretary_name, v.secretary_no,
    sec.person_key                                        AS secretary_person_key,
    v.founded_on, v.elected_on, v.term_end,
    coalesce(v.committee_size, 0)                         AS committee_size,
    CASE WHEN v.valid_to IS NULL THEN coalesce(m.full_members, 0) END          AS full_members,
    CASE WHEN v.valid_to IS NULL THEN coalesce(m.probationary_members, 0) END  AS probationary_members,
    v.seen_at                                             AS valid_from,
    v.valid_to,
    v.valid_to IS NULL                                    AS is_current,
    v.load_id
FROM versions v
LEFT JOIN staging.stg_party_orgs p ON p.org_code = v.parent_code
LEFT JOIN members m ON m.org_code = v.org_code
LEFT JOIN warehouse.dim_person sec ON v.secretary_no IN (sec.staff_no, sec.student_no)
WINDOW w AS (PARTITION BY v.org_code ORDER BY v.seen_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
