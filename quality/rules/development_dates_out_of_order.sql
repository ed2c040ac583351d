-- development_dates_out_of_order: a person's development milestones must follow the stages
-- (申请入党 <= 列为积极分子 <= 列为发展对象 <= 接收为预备党员 <= 转为正式党员, each compared with the latest
-- earlier milestone present) and none may be dated after as_of. The talk (谈话) is only checked against
-- as_of here; talk_later_than_one_month checks it against the application. One row per person.
WITH events AS (
    SELECT person_no, person_key, org_code, event, event_order, event_date,
           max(event_date) FILTER (WHERE event <> 'talked') OVER (
               PARTITION BY person_no ORDER BY event_order
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_before
    FROM warehouse.fact_development_event
), problems AS (
    SELECT person_no, person_key, org_code, event_order,
           CASE WHEN event_date > CAST($as_of AS DATE)
                THEN event || ' ' || event_date || ' is after as_of ' || CAST($as_of AS DATE)
                WHEN event <> 'talked' AND event_date < latest_before
                THEN event || ' ' || event_date || ' is before an earlier stage (' || latest_before || ')'
           END AS problem
    FROM events
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, any_value(person_key) AS person_key, any_value(org_code) AS org_code,
       string_agg(problem, '; ' ORDER BY event_order) AS detail
FROM problems
WHERE problem IS NOT NULL
GROUP BY person_no
