-- 党员干部学习数据 (zt_dygbxxsj): one row per party organisation, online course and school term: the members
-- of the organisation who studied the course on the learning platform that term (warehouse.fact_study_record).
-- A learner counts when their current party record (warehouse.dim_party_member) is in the member register
-- or is a transfer out (they studied while a member here); their organisation is that record's (for a
-- member transferred out, the organisation they left), and it must be an organisation of the party system
-- (a 党组织编码 that is not one is reported by dim_party_member as unknown_party_org). Applicants and
-- activists, and learners with no party record, are not 党员干部 and stay out.
-- dygbxxpxzytjhztm (channel): the course kind. dygbxxpxnrm (content): the course's topic, i.e. its title
-- without the kind prefix (微党课：, 专题讲座：, ...) and without a lecture number suffix (（第2讲）).
-- hdksrq / hdjsrq: the first start and the last activity of those records; cyxss / cyjss: distinct
-- learners whom the student system holds / whom HR holds and the student system does not.
WITH learners AS (
    SELECT m.person_no, m.org_code, o.name AS org_name
    FROM warehouse.dim_party_member m
    JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
    WHERE m.is_current AND m.register IN ('member', 'transfer')
), students AS (
    SELECT DISTINCT person_no FROM warehouse.bridge_person_record WHERE system = 'student'
), staff AS (
    SELECT DISTINCT person_no FROM warehouse.bridge_person_record WHERE system = 'hr'
), records AS (
    SELECT l.org_code, l.org_name, r.course_id, r.term, r.course_kind, r.person_no, r.started_on,
           coalesce(r.last_active_on, r.started_on) AS last_on,
           regexp_replace(regexp_replace(trim(r.course_title),
               '^(微党课|专题讲座|网络讲座|在线课程)[：:]\s*', ''),
               '\s*[（(]第[0-9一二三四五六七八九十百]+讲[）)]$', '')  AS topic,
           s.person_no IS NOT NULL                          AS is_student,
           s.person_no IS NULL AND h.person_no IS NOT NULL  AS is_staff
    FROM warehouse.fact_study_record r
    JOIN learners l USING (person_no)
    LEFT JOIN students s ON s.person_no = r.person_no
    LEFT JOIN staff h ON h.person_no = r.person_no
)
SELECT
    r.org_code || '|' || r.course_id || '|' || r.term AS _key,
    any_value(r.org_name)                             AS dzzmc,
    r.org_code                                        AS dzzbh,
    r.course_kind                                     AS dygbxxpxzytjhztm,
    r.topic                                           AS dygbxxpxnrm,
    strftime(min(r.started_on), '%Y%m%d')             AS hdksrq,
    strftime(max(r.last_on), '%Y%m%d')                AS hdjsrq,
    count(DISTINCT r.person_no) FILTER (WHERE r.is_student) AS cyxss,
    count(DISTINCT r.person_no) FILTER (WHERE r.is_staff)   AS cyjss
FROM records r
GROUP BY r.org_code, r.course_id, r.term, r.course_kind, r.topic
