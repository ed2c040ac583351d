-- ---
-- description: One row per party development milestone of a person (applied, talked, activist, candidate, probationary, full) with its date and the person's organisation, from the member register and the development pipeline export. A person whose 党组织编码 is not an organisation, or whose 人员编号 neither HR nor the student system holds, is kept out (dim_party_member reports it in quality.reconciliation_issue).
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   org_code: 党组织编码 of the person's organisation in the register the event came from.
--   event: applied, talked, activist, candidate, probationary or full.
--   event_order: The event's place in the stages, 1 (applied) to 6 (full).
--   event_date: Date of the milestone.
--   source: members (the member register wins) or development (the pipeline export).
-- ---
-- Sources: members (申请入党日期 applied, 列为积极分子日期 activist, 列为发展对象日期 candidate, 入党日期
-- probationary, 转正日期 full) and the pipeline (申请入党日期, 谈话日期 talked, 列为积极分子日期, 列为发展对象日期).
-- The member register has no talk date. A milestone without a date is not an event. If a person is in
-- both exports, the member register wins for the milestones both hold. event_order follows the stages.
CREATE OR REPLACE TEMP TABLE _fact_development_event AS
WITH person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
), people AS (
    SELECT 'members' AS source, 1 AS priority, person_no, org_code,
           applied_on, NULL::DATE AS talked_on, activist_on, candidate_on, probationary_on, full_on
    FROM staging.stg_party_members
    UNION ALL
    SELECT 'development', 2, person_no, org_code,
           applied_on, talked_on, activist_on, candidate_on, NULL::DATE, NULL::DATE
    FROM staging.stg_party_development
), events AS (
    SELECT source, priority, person_no, org_code, event, event_date
    FROM people
    UNPIVOT (event_date FOR event IN (applied_on AS 'applied', talked_on AS 'talked', activist_on AS 'activist',
                                       candidate_on AS 'candidate', probationary_on AS 'probationary',
                                       full_on AS 'full'))
    QUALIFY row_number() OVER (PARTITION BY person_no, event ORDER BY priority) = 1
)
SELECT
    e.person_no,
    p.person_key,
    e.org_code,
    e.event,
    CASE e.event WHEN 'applied' THEN 1 WHEN 'talked' THEN 2 WHEN 'activist' THEN 3 WHEN 'candidate' THEN 4
                 WHEN 'probationary' THEN 5 WHEN 'full' THEN 6 END AS event_order,
    e.event_date,
    e.source,
    kp.person_no IS NULL                               AS _unknown_person,
    ko.org_code IS NULL                                AS _unknown_org
FROM events e
LEFT JOIN warehouse.known_person kp ON kp.person_no = e.person_no
LEFT JOIN warehouse.known_org ko ON ko.org_code = e.org_code
LEFT JOIN person_lookup p ON p.person_no = e.person_no;

CREATE OR REPLACE TABLE warehouse.fact_development_event AS
SELECT * EXCLUDE (_unknown_person, _unknown_org)
FROM _fact_development_event
WHERE NOT _unknown_person AND NOT _unknown_org
ORDER BY person_no, event_order;

-- Records kept out here are reported once, by dim_party_member (party_record_without_person,
-- unknown_party_org).
DELETE FROM quality.reconciliation_issue WHERE model = 'fact_development_event';

DROP TABLE _fact_development_event;
