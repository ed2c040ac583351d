-- ---
-- description: One row: the as-of date every party-work mart measures against (HUB_AS_OF, else the latest date in the data — the later of the last meeting and the last dues payment), where each source's data window starts, and the standards (models/assessment_standards.yaml, with its sha256) the marts applied. Built from the session settings models.standards.bind_mart_settings sets.
-- ---
WITH latest AS (
    SELECT greatest((SELECT max(meeting_date) FROM warehouse.fact_org_activity),
                    (SELECT max(paid_on) FROM warehouse.fact_dues_payment)) AS data_latest_date
)
SELECT
    coalesce(getvariable('hub_as_of')::DATE, l.data_latest_date)                      AS as_of,
    CASE WHEN getvariable('hub_as_of') IS NULL THEN 'latest date in the data' ELSE 'HUB_AS_OF' END
                                                                                     AS as_of_source,
    l.data_latest_date,
    (SELECT min(month) FROM warehouse.fact_dues_payment)                              AS dues_from,
    (SELECT date_trunc('month', min(meeting_date))::DATE FROM warehouse.fact_org_activity) AS meetings_from,
    (SELECT date_trunc('month', min(started_on))::DATE FROM warehouse.fact_study_record)  AS learning_from,
    getvariable('hub_mart_standards_file')                                             AS standards_file,
    getvariable('hub_mart_standards_sha256')                                           AS standards_sha256,
    coalesce(getvariable('hub_mart_standards'),
             error('the marts need their settings: call models.standards.bind_mart_settings(con) on the '
                   || 'connection before building them'))::JSON                         AS standards
FROM latest l
