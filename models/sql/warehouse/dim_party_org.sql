-- ---
-- description: The party organisation tree (党委/党总支/党支部/党小组) as SCD2 — one row per version of each organisation (name, type, parent, secretary, founded, term end, committee) from every export, with valid_from / valid_to / is_current; an organisation missing from a later export gets a closing version (status 'dissolved_or_absent'). Current versions carry member counts — the one definition every table that shows them uses: members directly in it, and members_rollup over everything below it, the 党委's including members whose 党组织编码 is not an organisation (unknown_org_members); a 党小组's members are derived from 党小组会 attendance (warehouse.member_group), NULL with a note where there is none. Also builds warehouse.member_group.
-- materialize: script
-- writes: [warehouse.member_group]
-- columns:
--   org_version_key: Key of the version: md5 of 党组织编码 and when it was seen.
--   org_code:
--   status: active, or dissolved_or_absent for a closing version (missing from a later export).
--   name:
--   org_type:
--   parent_code:
--   parent_name:
--   branch_kind:
--   unit_code:
--   secretary_name:
--   secretary_no: 书记人员编号 (工号/学号).
--   secretary_person_key: The secretary's person (through warehouse.person_number); NULL when the number leads to no single person.
--   founded_on:
--   elected_on:
--   term_end:
--   committee_size:
--   full_members:
--   probationary_members:
--   valid_from: When the export holding this version was extracted.
--   valid_to: When the next version was seen; NULL for the current one.
--   is_current: Whether this is the organisation's latest version.
--   load_id: The raw load of the export this version comes from.
--   full_members_rollup: Current versions: full members in the organisation and everything below it (the 党委's including unknown_org_members).
--   probationary_members_rollup: Current versions: probationary members in it and everything below it.
--   members_rollup: full_members_rollup + probationary_members_rollup.
--   unknown_org_members: Current versions: members whose 党组织编码 is not an organisation, counted on the 党委's row (0 elsewhere).
--   member_count_note: Why a count is what it is (a 党小组 derived from attendance or unknown, a closed version, members with an unknown organisation).
--   warehouse.member_group:
--     person_key: The member (dim_person.person_key).
--     person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--     group_code: 党组织编码 of the 党小组 of the latest 党小组会 whose roll the member was on.
--     branch_code: The group's 党支部 (its parent).
--     member_org_code: The 党组织编码 the member register gives (the branch).
--     stage: full or probationary.
--     last_group_meeting_on: Date of that latest 党小组会.
--     group_meetings_on_roll: 党小组会 of this group whose roll the member was on.
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

-- 党小组 membership. The party register names a member's 党支部 only; the activity app's 党小组会 rolls
-- (签到, whatever the status: present, excused or absent, the member was on the list) say who is in which
-- group. A current member in good standing belongs to the 党小组 of the latest 党小组会 whose roll they
-- were on. A group with no such member has no derivable membership (NULL, with a note), never 0.
CREATE OR REPLACE TABLE warehouse.member_group AS
WITH groups AS (
    SELECT org_code, parent_code FROM staging.stg_party_orgs WHERE org_type = '党小组'
), rolls AS (
    SELECT a.person_no, a.org_code AS group_code, a.meeting_date,
           row_number() OVER (PARTITION BY a.person_no ORDER BY a.meeting_date DESC, a.meeting_id DESC) AS recency,
           count(*) OVER (PARTITION BY a.person_no, a.org_code) AS group_meetings_on_roll
    FROM warehouse.fact_activity_attendance a JOIN groups g ON g.org_code = a.org_code
    WHERE a.meeting_type = 'group_meeting'
)
SELECT m.person_key, m.person_no, r.group_code, g.parent_code AS branch_code, m.org_code AS member_org_code,
       m.stage, r.meeting_date AS last_group_meeting_on, r.group_meetings_on_roll
FROM rolls r
JOIN groups g ON g.org_code = r.group_code
JOIN warehouse.dim_party_member m ON m.person_no = r.person_no AND m.is_current AND m.register = 'member'
     AND m.status = '正常' AND m.stage IN ('full', 'probationary')
WHERE r.recency = 1
ORDER BY r.group_code, m.person_no;

CREATE OR REPLACE TABLE warehouse.dim_party_org AS
WITH members AS (  -- one row per organisation: register members by branch, derived members by 党小组
    SELECT org_code, sum(full_members)::BIGINT AS full_members,
           sum(probationary_members)::BIGINT AS probationary_members
    FROM (
        SELECT org_code,
               count(*) FILTER (WHERE stage = 'full')         AS full_members,
               count(*) FILTER (WHERE stage = 'probationary') AS probationary_members
        FROM warehouse.dim_party_member
        WHERE is_current AND register = 'member' AND status = '正常'
        GROUP BY org_code
        UNION ALL
        SELECT group_code,
               count(*) FILTER (WHERE stage = 'full'),
               count(*) FILTER (WHERE stage = 'probationary')
        FROM warehouse.member_group
        GROUP BY group_code)
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
    -- a 党小组 without a 党小组会 roll: membership unknown (NULL), not 0
    CASE WHEN v.valid_to IS NULL AND (m.org_code IS NOT NULL OR coalesce(v.org_type, last_value(v.org_type IGNORE NULLS) OVER w) <> '党小组')
         THEN coalesce(m.full_members, 0) END                                  AS full_members,
    CASE WHEN v.valid_to IS NULL AND (m.org_code IS NOT NULL OR coalesce(v.org_type, last_value(v.org_type IGNORE NULLS) OVER w) <> '党小组')
         THEN coalesce(m.probationary_members, 0) END                          AS probationary_members,
    v.seen_at                                             AS valid_from,
    v.valid_to,
    v.valid_to IS NULL                                    AS is_current,
    v.load_id
FROM versions v
LEFT JOIN staging.stg_party_orgs p ON p.org_code = v.parent_code
LEFT JOIN members m ON m.org_code = v.org_code
-- the secretary through warehouse.person_number (one row per number; no person_key when the number leads to
-- several persons): two persons sharing a 工号 must not duplicate an organisation version
LEFT JOIN warehouse.person_number sec ON sec.person_no = v.secretary_no
WINDOW w AS (PARTITION BY v.org_code ORDER BY v.seen_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- Roll-ups on the current versions: an active organisation counts the members directly in it and in every
-- active organisation below it except 党小组 (whose members are already their branch's). The college's
-- 党委 (the active root) also counts the members in good standing whose 党组织编码 is not an active
-- organisation (reconciliation_issue unknown_party_org): they are members of the college, branch unknown.
-- A 党小组's roll-up is its own derived membership; an organisation gone from the latest export counts
-- none (its members, if any still point at it, are in the 党委's unknown_org_members).
CREATE OR REPLACE TEMP TABLE _org_rollup AS
WITH RECURSIVE orgs AS (
    SELECT org_code, org_type, parent_code, full_members, probationary_members
    FROM warehouse.dim_party_org WHERE is_current AND status = 'active'
), root AS (
    SELECT org_code FROM orgs WHERE parent_code IS NULL OR parent_code NOT IN (SELECT org_code FROM orgs)
    ORDER BY org_type = '党委' DESC, org_code LIMIT 1
), tree AS (   -- (organisation, organisation in its subtree); UNION stops on a cycle in bad data
    SELECT org_code AS top, org_code FROM orgs WHERE org_type <> '党小组'
    UNION
    SELECT t.top, o.org_code FROM tree t JOIN orgs o ON o.parent_code = t.org_code AND o.org_type <> '党小组'
), unknown AS (
    SELECT count(*) FILTER (WHERE stage = 'full') AS full_members,
           count(*) FILTER (WHERE stage = 'probationary') AS probationary_members
    FROM warehouse.dim_party_member
    WHERE is_current AND register = 'member' AND status = '正常' AND stage IN ('full', 'probationary')
      AND (org_code IS NULL OR org_code NOT IN (SELECT org_code FROM orgs))
)
SELECT t.top AS org_code,
       (sum(o.full_members) + CASE WHEN t.top IN (SELECT org_code FROM root) THEN any_value(u.full_members) ELSE 0 END)
           ::BIGINT AS full_members_rollup,
       (sum(o.probationary_members)
           + CASE WHEN t.top IN (SELECT org_code FROM root) THEN any_value(u.probationary_members) ELSE 0 END)
           ::BIGINT AS probationary_members_rollup,
       (CASE WHEN t.top IN (SELECT org_code FROM root)
            THEN any_value(u.full_members) + any_value(u.probationary_members) ELSE 0 END)::BIGINT AS unknown_org_members
FROM tree t JOIN orgs o ON o.org_code = t.org_code CROSS JOIN unknown u
GROUP BY t.top
UNION ALL
SELECT org_code, full_members, probationary_members, 0 FROM orgs WHERE org_type = '党小组';

CREATE OR REPLACE TABLE warehouse.dim_party_org AS
SELECT d.*,
       CASE WHEN d.is_current THEN r.full_members_rollup END                      AS full_members_rollup,
       CASE WHEN d.is_current THEN r.probationary_members_rollup END              AS probationary_members_rollup,
       CASE WHEN d.is_current THEN r.full_members_rollup + r.probationary_members_rollup END AS members_rollup,
       CASE WHEN d.is_current THEN coalesce(r.unknown_org_members, 0) END         AS unknown_org_members,
       CASE WHEN NOT d.is_current THEN NULL
            WHEN d.status <> 'active' THEN 'not in the latest export: no members counted'
            WHEN d.org_type = '党小组' AND d.full_members IS NULL
                THEN 'membership unknown: no 党小组会 roll in the activity data'
            WHEN d.org_type = '党小组' THEN 'members derived from 党小组会 attendance (warehouse.member_group)'
            WHEN r.unknown_org_members > 0
                THEN 'includes ' || r.unknown_org_members || ' member(s) whose 党组织编码 is not an organisation'
       END                                                                         AS member_count_note
FROM warehouse.dim_party_org d
LEFT JOIN _org_rollup r ON r.org_code = d.org_code AND d.is_current
ORDER BY d.org_code, d.valid_from;

DROP TABLE _org_rollup;
