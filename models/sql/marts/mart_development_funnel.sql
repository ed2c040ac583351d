-- ---
-- description: The development funnel per branch and stage (入党申请人 → 入党积极分子 → 发展对象 → 预备党员 → 正式党员) on the as-of date: people at the stage, how many of them have an overdue step, average days they have been at it, people who entered the stage in the last 12 months, and the median days people of the branch took to leave the stage (from the stage dates of everyone in the party registers). Every branch has a row for every stage, with zeros.
-- ---
WITH p AS (
    SELECT as_of FROM marts.mart_parameters
), stages AS (
    SELECT code AS stage, name AS stage_name, "order"::INTEGER AS stage_order FROM staging.cs_party_stage
), current_people AS (
    SELECT org_code, stage, overdue, days_in_stage, stage_since FROM marts.mart_development_pipeline
    UNION ALL
    SELECT r.org_code, 'full', false, p.as_of - r.full_on, r.full_on
    FROM marts.mart_member_roster r CROSS JOIN p WHERE r.stage = 'full'
), orgs AS (
    SELECT org_code FROM warehouse.dim_party_org WHERE is_current AND status = 'active' AND org_type = '党支部'
    UNION
    SELECT org_code FROM current_people
), steps AS (  -- how long each person took to leave each stage, from the stage dates in the registers
    SELECT org_code, unnest(['applicant', 'activist', 'candidate', 'probationary']) AS stage,
           unnest([activist_on - applied_on, candidate_on - activist_on, probationary_on - candidate_on,
                   full_on - probationary_on]) AS days
    FROM warehouse.dim_party_member
    WHERE is_current AND status = '正常'
), done AS (
    SELECT org_code, stage, median(days) AS median_days_to_leave, count(days) AS people_who_left
    FROM steps WHERE days IS NOT NULL GROUP BY ALL
), now AS (
    SELECT c.org_code, c.stage, count(*) AS people, count(*) FILTER (WHERE c.overdue) AS overdue,
           round(avg(c.days_in_stage), 1) AS avg_days_in_stage,
           count(*) FILTER (WHERE c.stage_since > (p.as_of - INTERVAL 12 MONTH)::DATE
                              AND c.stage_since <= p.as_of) AS entered_last_12_months
    FROM current_people c CROSS JOIN p GROUP BY ALL
)
SELECT
    o.org_code, org.name AS org_name, org.parent_code, org.parent_name, org.branch_kind,
    s.stage, s.stage_name, s.stage_order,
    coalesce(n.people, 0) AS people,
    coalesce(n.overdue, 0) AS overdue,
    n.avg_days_in_stage,
    coalesce(n.entered_last_12_months, 0) AS entered_last_12_months,
    d.median_days_to_leave,
    coalesce(d.people_who_left, 0) AS people_who_left
FROM orgs o
CROSS JOIN stages s
LEFT JOIN warehouse.dim_party_org org ON org.org_code = o.org_code AND org.is_current
LEFT JOIN now n ON n.org_code = o.org_code AND n.stage = s.stage
LEFT JOIN done d ON d.org_code = o.org_code AND d.stage = s.stage
ORDER BY o.org_code, s.stage_order
