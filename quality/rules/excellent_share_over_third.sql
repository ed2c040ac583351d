-- excellent_share_over_third: an organisation's 民主评议 of a year with more than $max_excellent_share
-- (a fraction a/b) of those assessed graded 优秀. Compared in integers: excellent * b > assessed * a.
WITH share AS (
    SELECT CAST(split_part($max_excellent_share, '/', 1) AS BIGINT) AS num,
           CAST(coalesce(nullif(split_part($max_excellent_share, '/', 2), ''), '1') AS BIGINT) AS den
), graded AS (
    SELECT org_code, year, count(*) AS assessed, count(*) FILTER (WHERE grade = 'excellent') AS excellent
    FROM warehouse.fact_assessment
    GROUP BY org_code, year
)
SELECT $rule AS rule, $severity AS severity, $entity AS entity,
       org_code || '|' || year AS record_key, NULL::VARCHAR AS person_key, org_code,
       '民主评议 ' || year || ': ' || excellent || ' of ' || assessed || ' 优秀, more than '
           || $max_excellent_share AS detail
FROM graded, share
WHERE excellent * share.den > assessed * share.num
