-- meeting_frequency (shared by the meetings_* rules): an organisation that held fewer than $min_meetings
-- meetings of type $meeting_type in a calendar $period (month / quarter / year).
-- Periods checked: complete by as_of and starting on or after $since (null: the first day of the month
-- of the earliest meeting in fact_org_activity, where the activity data begins), and not before the
-- organisation was founded. Organisations: current, active; $applies_to = branch (党支部),
-- branch_with_committee (党支部 with 委员人数 > 0) or group (党小组).
-- record_key: 党组织编码|meeting type|period (2024-03, 2024-Q1, 2024).
WITH bounds AS (
    SELECT coalesce(CAST($since AS DATE),
                    (SELECT CAST(date_trunc('month', min(meeting_date)) AS DATE) FROM warehouse.fact_org_activity))
               AS since,
           CAST($as_of AS DATE) AS as_of,
           CASE $period WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 WHEN 'year' THEN 12 END AS months
), periods AS (
    SELECT CAST(m AS DATE) AS period_start,
           CAST(m + to_months(b.months) AS DATE) AS period_end,   -- exclusive
           CASE $period WHEN 'month' THEN strftime(m, '%Y-%m')
                        WHEN 'quarter' THEN year(m) || '-Q' || quarter(m)
                        ELSE CAST(year(m) AS VARCHAR) END AS period_label
    FROM bounds b, range(CAST(date_trunc('year', b.since) AS TIMESTAMP), CAST(b.as_of AS TIMESTAMP),
                         INTERVAL 1 MONTH) AS t(m)
    WHERE (month(m) - 1) % b.months = 0
      AND CAST(m AS DATE) >= b.since
      AND CAST(m + to_months(b.months) AS DATE) <= b.as_of + 1
), orgs AS (
    SELECT org_code, name, founded_on
    FROM warehouse.dim_party_org
    WHERE is_current AND status = 'active'
      AND CASE $applies_to
              WHEN 'branch' THEN org_type = '党支部'
              WHEN 'branch_with_committee' THEN org_type = '党支部' AND coalesce(committee_size, 0) > 0
              WHEN 'group' THEN org_type = '党小组'
          END
), held AS (
    SELECT o.org_code, o.name, p.period_label, p.period_start, count(a.meeting_id) AS meetings
    FROM orgs o
    JOIN periods p ON o.founded_on IS NULL OR o.founded_on <= p.period_start
    LEFT JOIN warehouse.fact_org_activity a
           ON a.org_code = o.org_code AND a.meeting_type = $meeting_type
          AND a.meeting_date >= p.period_start AND a.meeting_date < p.period_end
    GROUP BY ALL
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code || '|' || $meeting_type || '|' || period_label AS record_key,
       NULL::VARCHAR AS person_key, org_code,
       name || ': ' || meetings || ' ' || $meeting_name || ' in ' || period_label
           || ' (at least ' || $min_meetings || ' a ' || $period || ')' AS detail
FROM held
WHERE meetings < $min_meetings
