-- 党员活动数据 (zt_dyhdsj): one row per meeting of a party organisation in warehouse.fact_org_activity
-- (支部党员大会, 支委会, 党小组会, 主题党日, 组织生活会) other than 党课, which are published in zt_dksj: each
-- meeting is reported once. hdxs (form) is the meeting type. Participants as in zt_dksj.
WITH students AS (
    SELECT DISTINCT person_no FROM warehouse.bridge_person_record WHERE system = 'student'
), staff AS (
    SELECT DISTINCT person_no FROM warehouse.bridge_person_record WHERE system = 'hr'
), present AS (
    SELECT a.meeting_id,
           count(DISTINCT a.person_no) FILTER (WHERE s.person_no IS NOT NULL)                         AS students,
           count(DISTINCT a.person_no) FILTER (WHERE s.person_no IS NULL AND h.person_no IS NOT NULL) AS staff
    FROM warehouse.fact_activity_attendance a
    LEFT JOIN students s ON s.person_no = a.person_no
    LEFT JOIN staff h ON h.person_no = a.person_no
    WHERE a.status = 'present'
    GROUP BY a.meeting_id
)
SELECT
    m.meeting_id                                      AS _key,
    o.name                                            AS dzzmc,
    m.org_code                                        AS dzzbh,
    m.meeting_type                                    AS hdxs,
    m.place                                           AS hddd,
    m.title                                           AS hdnr,
    strftime(m.meeting_date, '%Y%m%d')                AS hdksrq,
    strftime(timezone('Asia/Shanghai', m.end_at), '%Y%m%d') AS hdjsrq,
    coalesce(p.students, 0)                           AS cyxss,
    coalesce(p.staff, 0)                              AS cyjss
FROM warehouse.fact_org_activity m
LEFT JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
LEFT JOIN present p USING (meeting_id)
WHERE m.meeting_type <> 'party_lecture'
