-- ---
-- description: One row per party dues payment (人员编号, 缴费月份) with the member category, the rate band that applies, the expected amount per the 2008 dues rules and a below_rate flag. Payments of an unknown person or 党组织编码 are kept out and reported in quality.reconciliation_issue as orphan_reference.
-- materialize: script
-- writes: [quality.reconciliation_issue]
-- columns:
--   person_no: 人员编号: the 工号 or 学号 as the source system sends it.
--   person_key: The person (dim_person.person_key) the number leads to; NULL when it leads to none or to several.
--   org_code: 党组织编码 the payment was made in.
--   month: 缴费月份 (first day of the month).
--   member_category: staff, retired or student: the band that applies.
--   category_source: Where member_category came from: hr, party or student.
--   base: 缴费基数 (yuan).
--   rate: Rate of the band (dues_rate.csv); NULL for a fixed amount.
--   due: 应缴金额 as the export states it.
--   paid: 实缴金额.
--   paid_on: 缴费日期.
--   expected_due: The amount due per the 2008 dues rules: round(base x rate, 2) or the fixed amount.
--   below_rate: paid < expected_due.
--   due_matches_rate: due = expected_due.
--   source_file: The export file the payment came from.
-- ---
-- member_category (staff / retired / student) decides the band, taken in this order:
--   1. HR (stg_hr_staff): a status in post (staff_status.csv in_post) -> staff; 01 退休 or 02 离休 -> retired;
--   2. the party register (stg_party_members 人员类别);
--   3. the student system (stg_students) -> student.
-- Bands are models/codesets/dues_rate.csv (in post <=3000 0.5%, <=5000 1%, <=10000 1.5%, above 2%;
-- retirees <=5000 0.5%, above 1%; each band includes its upper bound; students 0.20 yuan a month).
-- expected_due = round(base x rate, 2) (half away from zero), or the fixed amount; NULL when a staff or
-- retiree payment has no 缴费基数. below_rate: paid < expected_due.
CREATE OR REPLACE TEMP TABLE _fact_dues_payment AS
WITH person_lookup AS (
    SELECT person_no, person_key FROM warehouse.person_number
), hr_category AS (
    SELECT h.staff_no AS person_no,
           CASE WHEN s.in_post = 'true' THEN 'staff' WHEN h.staff_status IN ('01', '02') THEN 'retired' END AS category
    FROM staging.stg_hr_staff h
    LEFT JOIN staging.cs_staff_status s ON s.code = h.staff_status
), rates AS (
    SELECT category,
           CAST(nullif(above, '') AS DECIMAL(12, 2))         AS above,
           CAST(nullif(up_to, '') AS DECIMAL(12, 2))         AS up_to,
           CAST(nullif(rate, '') AS DECIMAL(6, 4))           AS rate,
           CAST(nullif(fixed_amount, '') AS DECIMAL(12, 2))  AS fixed_amount
    FROM staging.cs_dues_rate
), categorised AS (
    SELECT d.*,
           coalesce(h.category, m.category, CASE WHEN s.student_no IS NOT NULL THEN 'student' END) AS member_category,
           CASE WHEN h.category IS NOT NULL THEN 'hr' WHEN m.category IS NOT NULL THEN 'party'
                WHEN s.student_no IS NOT NULL THEN 'student' END                                  AS category_source
    FROM staging.stg_party_dues d
    LEFT JOIN hr_category h ON h.person_no = d.person_no
    LEFT JOIN staging.stg_party_members m ON m.person_no = d.person_no
    LEFT JOIN staging.stg_students s ON s.student_no = d.person_no
)
SELECT
    d.person_no,
    p.person_key,
    d.org_code,
    d.month,
    d.member_category,
    d.category_source,
    d.base,
    r.rate,
    d.due,
    d.paid,
    d.paid_on,
    CAST(coalesce(r.fixed_amount, round(d.base * r.rate, 2)) AS DECIMAL(12, 2))  AS expected_due,
    d.paid < coalesce(r.fixed_amount, round(d.base * r.rate, 2))                AS below_rate,
    d.due = coalesce(r.fixed_amount, round(d.base * r.rate, 2))                 AS due_matches_rate,
    d.source_file,
    d.person_no || '|' || strftime(d.month, '%Y-%m')                             AS _record_key,
    kp.person_no IS NULL                                                         AS _unknown_person,
    ko.org_code IS NULL                                                          AS _unknown_org
FROM categorised d
LEFT JOIN rates r ON r.category = d.member_category
                 AND (r.above IS NULL OR d.base > r.above)
                 AND (r.up_to IS NULL OR d.base <= r.up_to)
LEFT JOIN warehouse.known_person kp ON kp.person_no = d.person_no
LEFT JOIN warehouse.known_org ko ON ko.org_code = d.org_code
LEFT JOIN person_lookup p ON p.person_no = d.person_no;

CREATE OR REPLACE TABLE warehouse.fact_dues_payment AS
SELECT * EXCLUDE (_record_key, _unknown_person, _unknown_org)
FROM _fact_dues_payment
WHERE NOT _unknown_person AND NOT _unknown_org
ORDER BY month, org_code, person_no;

DELETE FROM quality.reconciliation_issue WHERE model = 'fact_dues_payment';

INSERT INTO quality.reconciliation_issue BY NAME
SELECT unnest(orphan_person('fact_dues_payment', 'party,hr,student', _record_key, 'dues payment for 人员编号',
                            'party.dues', '人员编号', person_no))
FROM _fact_dues_payment WHERE _unknown_person
UNION ALL
SELECT unnest(orphan_org('fact_dues_payment', 'party', _record_key, person_key, 'dues payment in 党组织编码',
                         'party.dues', '党组织编码', org_code))
FROM _fact_dues_payment WHERE _unknown_org;

DROP TABLE _fact_dues_payment;
