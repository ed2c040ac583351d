-- ---
-- description: Members below the required online study hours, one row per member and calendar year in which their hours (minutes on the platform / 60) fall short of the hours required for the months they were on roll (learning.required_hours_per_year × months / 12, counting months within the learning data and up to the as-of date), with the shortfall. From the breakdown of the member assessment.
-- ---
SELECT
    a.year, a.person_key, a.person_no, a.name, a.org_code, a.org_name, a.category, a.stage, a.member_status,
    a.study_months, a.required_study_hours, a.study_hours,
    round(a.required_study_hours - a.study_hours, 2) AS shortfall_hours,
    round(a.study_hours / a.required_study_hours, 4) AS share_of_required,
    a.completed_courses,
    a.year_complete
FROM marts.mart_member_assessment a
WHERE a.required_study_hours > 0 AND a.study_hours < a.required_study_hours
ORDER BY a.year, a.org_code, a.person_no
