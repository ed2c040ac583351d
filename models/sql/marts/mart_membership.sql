-- ---
-- description: One row per person who has been a party member (正式 or 预备) of the college in the party exports, with when they were on the college's roll — the spell the dues, learning and assessment marts measure. on_roll_from is the later of admission (入党日期; for members known only from a transfer letter, their first dues month) and joining the college (HR hire date or enrolment); on_roll_until is the transfer-out date. on_roll says whether they are a member in good standing on the as-of date.
-- ---
WITH p AS (
    SELECT as_of FROM marts.mart_parameters
), cur AS (
    SELECT * FROM warehouse.dim_party_member WHERE is_current
), reg AS (  -- the member-register versions: the latest stage, category, branch and stage dates
    SELECT person_no,
           arg_max(stage, valid_from)       AS stage,
           arg_max(category, valid_from)    AS category,
           arg_max(org_code, valid_from)    AS org_code,
           max(probationary_on)             AS probationary_on,
           max(full_on)                     AS full_on
    FROM warehouse.dim_party_member
    WHERE register = 'member' AND status <> 'absent_from_export'
    GROUP BY person_no
), transfer AS (
    SELECT person_no, max(out_date) AS out_date, arg_max(letter_no, out_date) AS letter_no
    FROM warehouse.fact_relation_transfer GROUP BY person_no
), first_dues AS (
    SELECT person_no, min(month) AS first_month FROM warehouse.fact_dues_payment GROUP BY person_no
), affiliation AS (
    SELECT staff_no AS person_no, hire_date AS joined_on, 'hr' AS system FROM staging.stg_hr_staff
    UNION ALL
    SELECT student_no, enrolled_on, 'student' FROM staging.stg_students
), names AS (
    SELECT person_no, name FROM staging.stg_party_members
), spells AS (
    SELECT
        c.person_key,
        c.person_no,
        coalesce(d.name, n.name)                                                  AS name,
        coalesce(r.category, c.category)                                          AS category,
        coalesce(r.stage, c.stage)                                                AS stage,
        c.org_code,
        c.status,
        c.register                                                                AS current_register,
        coalesce(r.probationary_on, f.first_month)                                AS member_from,
        CASE WHEN r.probationary_on IS NOT NULL THEN 'admission_date'
             WHEN f.first_month IS NOT NULL THEN 'first_dues_month' END           AS member_from_source,
        r.full_on,
        a.joined_on                                                               AS joined_college_on,
        CASE WHEN c.status = 'transferred_out' THEN t.out_date END                AS on_roll_until,
        CASE WHEN c.status = 'transferred_out' THEN t.letter_no END               AS transfer_letter_no
    FROM cur c
    LEFT JOIN reg r USING (person_no)
    LEFT JOIN transfer t USING (person_no)
    LEFT JOIN first_dues f USING (person_no)
    LEFT JOIN affiliation a USING (person_no)
    LEFT JOIN warehouse.dim_person d ON d.person_key = c.person_key
    LEFT JOIN names n USING (person_no)
    WHERE r.person_no IS NOT NULL OR c.register = 'transfer'
)
SELECT
    s.person_key, s.person_no, s.name, s.category, s.stage, s.org_code, s.status, s.current_register,
    s.member_from, s.member_from_source, s.full_on, s.joined_college_on,
    greatest(s.member_from, s.joined_college_on)                                  AS on_roll_from,
    s.on_roll_until, s.transfer_letter_no,
    (s.current_register = 'member' AND s.status = '正常' AND s.member_from <= p.as_of)  AS on_roll,
    -- counted in the dues, learning and assessment calendars: in good standing or transferred out
    (s.status IN ('正常', 'transferred_out') AND s.member_from IS NOT NULL)          AS in_calendars
FROM spells s, p
ORDER BY s.person_no
