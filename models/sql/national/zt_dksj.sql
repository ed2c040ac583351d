-- 党课数据 (zt_dksj): one row per 党课 (meeting_type party_lecture) in warehouse.fact_org_activity.
-- hdxsm (form): 'online' when the place says the lecture was held on line (线上, 网上, 网络, 腾讯会议, 钉钉,
-- 视频会议, 直播), 'offline' for any other place, none when the app recorded no place.
-- cyxss / cyjss: attendees marked present (出席) whom the student system holds / whom HR holds and the
-- student system does not (warehouse.bridge_person_record); retirees count as staff.
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
    CASE WHEN m.place IS NULL THEN NULL
         WHEN regexp_matches(m.place, '线上|网上|网络|腾讯会议|钉钉|视频会议|直播') THEN 'online'
         ELSE 'offline' END                           AS hdxsm,
    m.lecturer                                        AS dkzjr,
    m.title                                           AS hdnr,
    strftime(m.meeting_date, '%Y%m%d')                AS hdksrq,
    strftime(timezone('Asia/Shanghai', m.end_at), '%Y%m%d') AS hdjsrq,
    coalesce(p.students, 0)                           AS cyxss,
    coalesce(p.staff, 0)                              AS cyjss
FROM warehouse.fact_org_activity m
LEFT JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
LEFT JOIN present p USING (meeting_id)
WHERE m.meeting_type = 'party_lecture'
