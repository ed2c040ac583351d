-- 党员发展数据 (zt_dyfzsj): one row per person in the party's development pipeline or admitted (入党申请人,
-- 积极分子, 发展对象, 预备党员, 正式党员) whose current party record (warehouse.dim_party_member) is in good
-- standing (正常) in the member register or the development export. The people are those of
-- warehouse.fact_development_event, so a record whose 党组织编码 is not an organisation or whose 人员编号
-- neither HR nor the student system holds stays out here too (dim_party_member reports it).
-- Stage and category from dim_party_member; the milestone dates from fact_development_event; the name is
-- the person's survivor name (warehouse.dim_person).
WITH milestones AS (
    SELECT person_no,
           max(event_date) FILTER (WHERE event = 'activist')     AS activist_on,
           max(event_date) FILTER (WHERE event = 'probationary') AS probationary_on,
           max(event_date) FILTER (WHERE event = 'full')         AS full_on
    FROM warehouse.fact_development_event
    GROUP BY person_no
)
SELECT
    m.person_no                                       AS _key,
    o.org_type                                        AS dzzlxm,
    o.name                                            AS dzzmc,
    m.org_code                                        AS dzzbh,
    m.category                                        AS xdylxm,
    p.name                                            AS xm,
    m.person_no                                       AS rybh,
    m.stage                                           AS dyfzztm,
    strftime(e.activist_on, '%Y%m%d')                 AS cwjjfzrq,
    strftime(e.probationary_on, '%Y%m%d')             AS cwybdyrq,
    strftime(e.full_on, '%Y%m%d')                     AS cwzsdyrq
FROM warehouse.dim_party_member m
JOIN milestones e USING (person_no)
LEFT JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current
LEFT JOIN warehouse.dim_person p ON p.person_key = m.person_key
WHERE m.is_current AND m.register IN ('member', 'development') AND m.status = '正常'
  -- a record that breaks an error-severity business rule (e.g. an applicant under 18) is held back
  AND NOT EXISTS (SELECT 1 FROM quality.rule_violation v WHERE v.severity = 'error' AND v.record_key = m.person_no)
