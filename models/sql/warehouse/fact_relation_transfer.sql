-- ---
-- description: One row per 组织关系转接 letter (介绍信编号): who, from which organisation, to where, 省内/跨省, out and receipt dates, the receipt deadline and a receipt_overdue flag (receipt due within one month), and how long the letter is valid. Letters of an unknown person or 转出党组织编码 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   letter_no: 介绍信编号.
--   person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   from_org_code: 转出党组织编码.
--   to_org_name: 转入党组织名称.
--   kind: in_province or cross_province.
--   kind_name: 转接类型 as written (省内/跨省).
--   out_date: 转出日期.
--   receipt_date: 回执日期; NULL until the receipt comes.
--   receipt_due_by: out_date + 1 month.
--   receipt_overdue: The receipt came after receipt_due_by, or has not come by the as-of date.
--   letter_valid_until: out_date + 3 months (省内) or 6 months (跨省).
--   source_file: The export file the letter came from.
-- ---
-- receipt_due_by = out_date + 1 month (the receiving committee returns the receipt within one month).
-- receipt_overdue: the receipt came after receipt_due_by, or has not come and receipt_due_by is before the
-- as-of date: HUB_AS_OF when set, else the latest date in the data (the later of the last meeting and the
-- last dues payment, the date the marts use), never the clock, so a rebuild gives the same flags on
-- any day. letter_valid_until = out_date + 3 months (省内) or 6 months (跨省).
CREATE OR REPLACE TEMP TABLE _fact_relation_transfer AS
WITH person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
), as_of AS (
    SELECT coalesce(getvariable('hub_as_of')::DATE,
                    greatest((SELECT max(meeting_date) FROM warehouse.fact_org_activity),
                             (SELECT max(paid_on) FROM warehouse.fact_dues_payment))) AS as_of
)
SELECT
    t.letter_no,
    t.person_no,
    p.person_key,
    t.from_org_code,
    t.to_org_name,
    t.kind,
    t.kind_name,
    t.out_date,
    t.receipt_date,
    CAST(t.out_date + INTERVAL 1 MONTH AS DATE)        AS receipt_due_by,
    coalesce(t.receipt_date, a.as_of) > CAST(t.out_date + INTERVAL 1 MONTH AS DATE) AS receipt_overdue,
    CAST(t.out_date + CASE t.kind WHEN 'cross_province' THEN INTERVAL 6 MONTH ELSE INTERVAL 3 MONTH END AS DATE)
                                                       AS letter_valid_until,
    t.source_file,
    kp.person_no IS NULL                               AS _unknown_person,
    ko.org_code IS NULL                                AS _unknown_org
FROM staging.stg_party_transfers t
LEFT JOIN warehouse.known_person kp ON kp.person_no = t.person_no
LEFT JOIN warehouse.known_org ko ON ko.org_code = t.from_org_code
LEFT JOIN person_lookup p ON p.person_no = t.person_no
CROSS JOIN as_of a;

CREATE OR REPLACE TABLE warehouse.fact_relation_transfer AS
SELECT * EXCLUDE (_unknown_person, _unknown_org)
FROM _fact_relation_transfer
WHERE NOT _unknown_person AND NOT _unknown_org
ORDER BY out_date, letter_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_relation_transfer';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_person('fact_relation_transfer', 'party,hr,student', letter_no,
                            'transfer letter ' || letter_no || ' for 人员编号', 'party.transfers', '人员编号', person_no))
FROM _fact_relation_transfer WHERE _unknown_person
UNION ALL
SELECT unnest(orphan_org('fact_relation_transfer', 'party', letter_no, person_key,
                         'transfer letter ' || letter_no || ' from 转出党组织编码', 'party.transfers', '转出党组织编码',
                         from_org_code))
FROM _fact_relation_transfer WHERE _unknown_org;

DROP TABLE _fact_relation_transfer;
