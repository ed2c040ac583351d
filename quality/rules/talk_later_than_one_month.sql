-- talk_later_than_one_month: the talk with the applicant (谈话日期) more than $talk_within_months month(s)
-- after the application (申请入党日期), or before it. Only development records that carry a talk date.
WITH development AS (
    SELECT person_no,
           any_value(person_key)                            AS person_key,
           any_value(org_code)                              AS org_code,
           min(event_date) FILTER (WHERE event = 'applied') AS applied_on,
           min(event_date) FILTER (WHERE event = 'talked')  AS talked_on
    FROM warehouse.fact_development_event
    GROUP BY person_no
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       CASE WHEN talked_on < applied_on
            THEN '谈话日期 ' || talked_on || ' is before 申请入党日期 ' || applied_on
            ELSE '谈话日期 ' || talked_on || ' is ' || date_diff('day', applied_on, talked_on)
                 || ' days after 申请入党日期 ' || applied_on || ' (due by '
                 || CAST(applied_on + to_months(CAST($talk_within_months AS INTEGER)) AS DATE) || ')'
       END AS detail
FROM development
WHERE applied_on IS NOT NULL AND talked_on IS NOT NULL
  AND (talked_on > applied_on + to_months(CAST($talk_within_months AS INTEGER)) OR talked_on < applied_on)
