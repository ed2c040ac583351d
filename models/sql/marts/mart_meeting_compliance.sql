-- ---
-- description: 三会一课, 主题党日 and 组织生活会 compliance: one row per organisation, period and required kind of meeting — each requirement of the standards file (e.g. 主题党日 monthly and 支委会 monthly per branch with a committee, 党小组会 monthly per group, 支部党员大会 and 党课 quarterly, 组织生活会 yearly) for every month, quarter or year from the start of the meeting data to the as-of date — with the meetings held, whether the minimum was met, and 'pending' for a period not yet over. Groups carry their branch so a branch's compliance includes its groups'.
-- ---
WITH p AS (
    SELECT as_of, meetings_from, standards FROM marts.mart_parameters
), requirements AS (
    SELECT r->>'meeting_type' AS meeting_type, r->>'period' AS period_kind,
           (r->>'min_meetings')::INTEGER AS min_meetings, r->>'applies_to' AS applies_to
    FROM (SELECT unnest(json_extract(standards, '$.meetings.requirements[*]')) AS r FROM p)
), orgs AS (
    SELECT o.org_code, o.name AS org_name, o.org_type, o.founded_on, o.committee_size,
           CASE WHEN o.org_type = '党小组' THEN o.parent_code ELSE o.org_code END AS branch_code,
           CASE WHEN o.org_type = '党小组' THEN o.parent_name ELSE o.name END AS branch_name
    FROM warehouse.dim_party_org o
    WHERE o.is_current AND o.status = 'active' AND o.org_type IN ('党支部', '党小组')
), periods AS (
    SELECT 'month' AS period_kind, unnest(generate_series(p.meetings_from::TIMESTAMP,
                                          date_trunc('month', p.as_of)::TIMESTAMP, INTERVAL 1 MONTH))::DATE AS period_start
    FROM p
    UNION ALL
    SELECT 'quarter', unnest(generate_series(
               (date_trunc('quarter', p.meetings_from - INTERVAL 1 DAY) + INTERVAL 3 MONTH)::TIMESTAMP,
               date_trunc('quarter', p.as_of)::TIMESTAMP, INTERVAL 3 MONTH))::DATE
    FROM p
    UNION ALL
    SELECT 'year', unnest(generate_series(
               (date_trunc('year', p.meetings_from - INTERVAL 1 DAY) + INTERVAL 1 YEAR)::TIMESTAMP,
               date_trunc('year', p.as_of)::TIMESTAMP, INTERVAL 1 YEAR))::DATE
    FROM p
), checks AS (
    SELECT o.*, r.meeting_type, r.period_kind, r.min_meetings, pe.period_start,
           (pe.period_start + CASE r.period_kind WHEN 'month' THEN INTERVAL 1 MONTH
                                                 WHEN 'quarter' THEN INTERVAL 3 MONTH
                                                 ELSE INTERVAL 1 YEAR END - INTERVAL 1 DAY)::DATE AS period_end
    FROM orgs o
    JOIN requirements r ON (r.applies_to = 'branch' AND o.org_type = '党支部')
                        OR (r.applies_to = 'branch_with_committee' AND o.org_type = '党支部' AND o.committee_size > 0)
                        OR (r.applies_to = 'group' AND o.org_type = '党小组')
    JOIN periods pe ON pe.period_kind = r.period_kind
), held AS (
    SELECT c.org_code, c.meeting_type, c.period_kind, c.period_start, count(a.meeting_id) AS held
    FROM checks c CROSS JOIN p
    LEFT JOIN warehouse.fact_org_activity a
           ON a.org_code = c.org_code AND a.meeting_type = c.meeting_type
          AND a.meeting_date BETWEEN c.period_start AND c.period_end AND a.meeting_date <= p.as_of
    GROUP BY ALL
), type_names AS (
    SELECT code, min(source_value) AS name FROM staging.code_map
    WHERE system = 'activity' AND field = 'meeting_type' GROUP BY code
)
SELECT
    c.org_code, c.org_name, c.org_type, c.branch_code, c.branch_name,
    c.period_kind, c.period_start, c.period_end,
    CASE c.period_kind WHEN 'month' THEN strftime(c.period_start, '%Y-%m')
                       WHEN 'quarter' THEN strftime(c.period_start, '%Y') || '-Q' || quarter(c.period_start)
                       ELSE strftime(c.period_start, '%Y') END AS period_label,
    c.meeting_type, t.name AS meeting_type_name,
    c.min_meetings,
    h.held,
    h.held >= c.min_meetings AS met,
    c.period_end <= p.as_of AS period_complete,
    CASE WHEN h.held >= c.min_meetings THEN 'met' WHEN c.period_end <= p.as_of THEN 'missed' ELSE 'pending' END
        AS status
FROM checks c
CROSS JOIN p
JOIN held h USING (org_code, meeting_type, period_kind, period_start)
LEFT JOIN type_names t ON t.code = c.meeting_type
WHERE c.founded_on IS NULL OR c.period_end >= c.founded_on
ORDER BY c.branch_code, c.org_code, c.period_kind, c.period_start, c.meeting_type
