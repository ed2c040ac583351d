-- ---
-- description: The development pipeline, one row per person in it on the as-of date (入党申请人, 入党积极分子, 发展对象 and 预备党员 in good standing): their branch, the date of each step, days spent in each stage (to the as-of date for the current one), the deadlines of the 发展党员工作细则 (talk within a month of applying, at least a year as activist before 发展对象, a year of probation) with what is overdue, and the next action with the date it may start and its due date. A step dated after the as-of date or before the step it follows is flagged (dates_impossible, date_problems) and its durations left empty, never printed negative.
-- ---
WITH p AS (
    SELECT as_of,
           (standards->>'$.development.talk_within_months')::INTEGER  AS talk_months,
           (standards->>'$.development.activist_min_months')::INTEGER AS activist_months,
           (standards->>'$.development.probation_months')::INTEGER    AS probation_months,
           (standards->>'$.development.probation_grace_months')::INTEGER AS probation_grace_months
    FROM marts.mart_parameters
), people AS (
    SELECT m.person_key, m.person_no, m.category, m.stage, m.org_code, m.register,
           m.applied_on, m.talked_on, m.activist_on, m.candidate_on, m.probationary_on,
           p.*,
           (m.applied_on + to_months(p.talk_months))::DATE          AS talk_due,
           (m.activist_on + to_months(p.activist_months))::DATE     AS activist_year_end,
           -- probation: a year, plus the 延长预备期 the member register records
           (m.probationary_on + to_months(p.probation_months + coalesce(x.probation_extension_months, 0)))::DATE
               AS probation_end,
           -- 转正 is approved within the grace after probation ends: overdue only after that
           (m.probationary_on + to_months(p.probation_months + coalesce(x.probation_extension_months, 0)
                                          + p.probation_grace_months))::DATE AS conversion_due
    FROM warehouse.dim_party_member m CROSS JOIN p
    LEFT JOIN staging.stg_party_members x ON x.person_no = m.person_no AND m.stage = 'probationary'
    WHERE m.is_current AND m.status = '正常'
      AND (m.stage IN ('applicant', 'activist', 'candidate') OR (m.stage = 'probationary' AND m.register = 'member'))
), judged AS (
    SELECT *,
           CASE stage WHEN 'applicant' THEN applied_on WHEN 'activist' THEN activist_on
                      WHEN 'candidate' THEN candidate_on WHEN 'probationary' THEN probationary_on END AS stage_since,
           (stage = 'applicant' AND talked_on IS NULL AND as_of > talk_due)            AS talk_overdue,
           coalesce(talked_on > talk_due, false)                                     AS talk_late,
           coalesce(candidate_on < activist_year_end, false)                         AS activist_year_short,
           (stage = 'probationary' AND as_of > conversion_due)                       AS probation_overdue,
           -- dates that cannot be true: a step after the as-of date, or before the step it follows
           nullif(concat_ws('; ',
               CASE WHEN applied_on > as_of THEN 'applied_on after as_of' END,
               CASE WHEN activist_on > as_of THEN 'activist_on after as_of' END,
               CASE WHEN candidate_on > as_of THEN 'candidate_on after as_of' END,
               CASE WHEN probationary_on > as_of THEN 'probationary_on after as_of' END,
               CASE WHEN activist_on < applied_on THEN 'activist_on before applied_on' END,
               CASE WHEN candidate_on < activist_on THEN 'candidate_on before activist_on' END,
               CASE WHEN probationary_on < candidate_on THEN 'probationary_on before candidate_on' END), '')
                                                                                     AS date_problems
    FROM people
), spans AS (
    SELECT *,
           as_of - stage_since                                                       AS raw_days_in_stage,
           coalesce(activist_on, CASE WHEN stage = 'applicant' THEN as_of END) - applied_on AS raw_days_as_applicant,
           coalesce(candidate_on, CASE WHEN stage = 'activist' THEN as_of END) - activist_on AS raw_days_as_activist,
           coalesce(probationary_on, CASE WHEN stage = 'candidate' THEN as_of END) - candidate_on
                                                                                     AS raw_days_as_candidate,
           CASE WHEN stage = 'probationary' THEN as_of - probationary_on END         AS raw_days_as_probationary
    FROM judged
)
SELECT
    j.person_key, j.person_no, coalesce(d.name, r.name, v.name) AS name, j.category,
    j.stage, st.name AS stage_name, st."order"::INTEGER AS stage_order,
    j.org_code, o.name AS org_name, o.parent_code, o.branch_kind,
    j.applied_on, j.talked_on, j.activist_on, j.candidate_on, j.probationary_on,
    j.stage_since,
    -- a duration with an impossible end (negative, or a date after the as-of date) is not printed: it is
    -- NULL, and date_problems says which dates are impossible
    CASE WHEN j.raw_days_in_stage >= 0 THEN j.raw_days_in_stage END                 AS days_in_stage,
    CASE WHEN j.raw_days_as_applicant >= 0 AND j.applied_on <= j.as_of AND coalesce(j.activist_on <= j.as_of, true)
         THEN j.raw_days_as_applicant END                                          AS days_as_applicant,
    CASE WHEN j.raw_days_as_activist >= 0 AND j.activist_on <= j.as_of AND coalesce(j.candidate_on <= j.as_of, true)
         THEN j.raw_days_as_activist END                                           AS days_as_activist,
    CASE WHEN j.raw_days_as_candidate >= 0 AND j.candidate_on <= j.as_of
              AND coalesce(j.probationary_on <= j.as_of, true)
         THEN j.raw_days_as_candidate END                                          AS days_as_candidate,
    CASE WHEN j.raw_days_as_probationary >= 0 THEN j.raw_days_as_probationary END   AS days_as_probationary,
    j.date_problems IS NOT NULL                                               AS dates_impossible,
    j.date_problems,
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
         WHEN j.stage = 'probationary' THEN j.conversion_due END              AS next_action_due,
    (j.talk_overdue OR j.probation_overdue)                                   AS overdue,
    CASE WHEN j.talk_overdue THEN j.as_of - j.talk_due
         WHEN j.probation_overdue THEN j.as_of - j.conversion_due END         AS days_overdue
FROM spans j
LEFT JOIN staging.cs_party_stage st ON st.code = j.stage
LEFT JOIN warehouse.dim_party_org o ON o.org_code = j.org_code AND o.is_current
LEFT JOIN warehouse.dim_person d ON d.person_key = j.person_key
LEFT JOIN staging.stg_party_members r ON r.person_no = j.person_no
LEFT JOIN staging.stg_party_development v ON v.person_no = j.person_no
ORDER BY j.org_code, stage_order, j.person_no
