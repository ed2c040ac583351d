-- activist_under_one_year: named 发展对象 less than $min_activist_months months after becoming 入党积极分子.
WITH development AS (
    SELECT person_no,
           any_value(person_key)                              AS person_key,
           any_value(org_code)                                AS org_code,
           min(event_date) FILTER (WHERE event = 'activist')  AS activist_on,
           min(event_date) FILTER (WHERE event = 'candidate') AS candidate_on
    FROM warehouse.fact_development_event
    GROUP BY person_no
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       '列为发展对象 ' || candidate_on || ', ' || date_diff('day', activist_on, candidate_on)
           || ' days after 列为积极分子 ' || activist_on || ' (not before '
           || CAST(activist_on + to_months(CAST($min_activist_months AS INTEGER)) AS DATE) || ')' AS detail
FROM development
WHERE activist_on IS NOT NULL AND candidate_on IS NOT NULL
  AND candidate_on < activist_on + to_months(CAST($min_activist_months AS INTEGER))
