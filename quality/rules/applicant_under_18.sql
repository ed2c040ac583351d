-- applicant_under_18: 入党申请人 younger than $min_age_years on the application date.
-- Birth date: from the ID number when it is valid (GB 11643 positions 7-14), else dim_person.birth_date.
-- One row per person (人员编号) whose 申请入党日期 is before their 18th birthday.
WITH development AS (
    SELECT person_no,
           any_value(person_key)                          AS person_key,
           any_value(org_code)                            AS org_code,
           min(event_date) FILTER (WHERE event = 'applied') AS applied_on
    FROM warehouse.fact_development_event
    GROUP BY person_no
), born AS (
    SELECT d.*,
           coalesce(CASE WHEN p.has_valid_id THEN try_strptime(substr(p.id_number, 7, 8), '%Y%m%d')::DATE END,
                    p.birth_date) AS birth_date
    FROM development d
    JOIN warehouse.dim_person p ON p.person_key = d.person_key
    WHERE d.applied_on IS NOT NULL
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       person_no AS record_key, person_key, org_code,
       '申请入党日期 ' || applied_on || ' at age ' || date_sub('year', birth_date, applied_on)
           || ', before turning ' || $min_age_years || ' on '
           || CAST(birth_date + to_years(CAST($min_age_years AS INTEGER)) AS DATE) AS detail
FROM born
WHERE birth_date IS NOT NULL
  AND applied_on < birth_date + to_years(CAST($min_age_years AS INTEGER))
