-- ---
-- description: The development pipeline, one row per person in it on the as-of date (入党申请人, 入党积极分子, 发展对象 and 预备党员 in good standing): their branch, the date of each step, days spent in each stage (to the as-of date for the current one), the deadlines of the 发展党员工作细则 (talk within a month of applying, at least a year as activist before 发展对象, a year of probation) with what is overdue, and the next action with the date it may start and its due date.
-- ---
WITH p AS (
    SELECT as_of,
           (standards->>'$.development.talk_within_months')::INTEGER  AS talk_months,
           (standards->>'$.development.activist_min_months')::INTEGER AS activist_months,
           (standards->>'$.development.probation_months')::INTEGER    AS probation_months
    FROM marts.mart_parameters
), people AS (
    SELECT m.person_key, m.person_no, m.category, m.stage, m.org_code, m.register,
           m.applied_on, m.talked_on, m.activist_on, m.candidate_on, m.probationary_on,
           p.*,
           (m.applied_on + to_months(p.talk_months))::DATE          AS talk_due,
           (m.activist_on + to_months(p.activist_months))::DATE     AS activist_year_end,
           (m.probationary_on + to_months(p.probation_months))::DATE AS probation_end
    FROM warehouse.dim_party_member m CROSS JOIN p
    WHERE m.is_current AND m.status = '正常'
      AND (m.stage IN ('applicant', 'activist', 'candidate') OR (m.stage = 'probationary' AND m.register = 'member'))
), judged AS (
    SELECT *,
           CASE stage WHEN 'applicant' THEN applied_on WHEN 'activist' THEN activist_on
                      WHEN 'candidate' THEN candidate_on WHEN 'probationary' THEN probationary_on END AS stage_since,
           (stage = 'applicant' AND talked_on IS NULL AND as_of > talk_due)            AS talk_overdue,
           coalesce(talked_on > talk_due, false)                                     AS talk_late,
           coalesce(candidate_on < activist_year_end, false)                         AS activist_year_short,
           (stage = 'probationary' AND as_of > probation_end)                        AS probation_overdue
    FROM people
)
SELECT
    j.person_key, j.person_no, coalesce(d.name, r.name, v.name) AS name, j.category,
    j.stage, st.name AS stage_name, st."order"::INTEGER AS stage_order,
    j.org_code, o.name AS org_name, o.parent_code, o.branch_kind,
    j.applied_on, j.talked_on, j.activist_on, j.candidate_on, j.probationary_on,
    j.stage_since,
    j.as_of - j.stage_since                                                   AS days_in_stage,
    coalesce(j.activist_on, CASE WHEN j.stage = 'applicant' THEN j.as_of END) - j.applied_on
                                                                              AS days_as_applicant,
    coalesce(j.candidate_on, CASE WHEN j.stage = 'activist' THEN j.as_of END) - j.activist_on
                                                                              AS days_as_activist,
    coalesce(j.probationary_on, CASE WHEN j.stage = 'candidate' THEN j.as_of END) - j.candidate_on
                                                                              AS days_as_candidate,
    CASE WHEN j.stage = 'probationary' THEN j.as_of - j.probationary_on END   AS days_as_probationary,
    j.talk_due, j.talk_overdue, j.talk_late,
    j.activist_year_end, j.activist_year_short,
    j.probation_end, j.probation_overdue,
    CASE WHEN j.stage = 'applicant' AND j.talked_on IS NULL THEN 'talk'
         WHEN j.stage = 'applicant' THEN 'list_as_activist'
         WHEN j.stage = 'activist' THEN 'list_as_candidate'
         WHEN j.stage = 'candidate' THEN 'admit_as_probationary'
         WHEN j.stage = 'probationary' THEN 'convert_to_full' END              AS next_action,
    CASE WHEN j.stage = 'applicant' AND j.talked_on IS NULL THEN '与入党申请人谈话'
         WHEN j.stage = 'applicant' THEN '确定为入党积极分子'
         WHEN j.stage = 'activist' THEN '确定为发展对象（培养教育满一年后）'
         WHEN j.stage = 'candidate' THEN '政治审查、集中培训后接收为预备党员'
         WHEN j.stage = 'probationary' THEN '预备期满讨论转正' END              AS next_action_name,
    CASE WHEN j.stage = 'applicant' AND j.talked_on IS NULL THEN j.applied_on
         WHEN j.stage = 'applicant' THEN j.talked_on
         WHEN j.stage = 'activist' THEN j.activist_year_end
         WHEN j.stage = 'candidate' THEN j.candidate_on
         WHEN j.stage = 'probationary' THEN j.probation_end END               AS next_action_from,
    CASE WHEN j.stage = 'applicant' AND j.talked_on IS NULL THEN j.talk_due
         WHEN j.stage = 'probationary' THEN j.probation_end END               AS next_action_due,
    (j.talk_overdue OR j.probation_overdue)                                   AS overdue,
    CASE WHEN j.talk_overdue THEN j.as_of - j.talk_due
         WHEN j.probation_overdue THEN j.as_of - j.probation_end END          AS days_overdue
FROM judged j
LEFT JOIN staging.cs_party_stage st ON st.code = j.stage
LEFT JOIN warehouse.dim_party_org o ON o.org_code = j.org_code AND o.is_current
LEFT JOIN warehouse.dim_person d ON d.person_key = j.person_key
LEFT JOIN staging.stg_party_members r ON r.person_no = j.person_no
LEFT JOIN staging.stg_party_development v ON v.person_no = j.person_no
ORDER BY j.org_code, stage_order, j.person_no
