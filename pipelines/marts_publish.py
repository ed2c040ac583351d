"""The party-work marts (``marts.*``, models/sql/marts/) as published datasets.

One :class:`~hub.publisher.DatasetSpec` per mart, named as the mart, reading every column of it: each
column is described and classified. Aggregates without people in them are ``public``; anything with a
person in it (person_key, 学号/工号, name) or small cells that could point at one is ``internal``. No
dataset carries an ID or phone number; people are identified by ``person_key`` (the keyed hash) and their
学号/工号.

``MART_DATASETS`` holds the specs and ``MART_SOURCES`` maps each dataset to the marts table it reads (the
upstream asset is ``marts/<table>``). docs/analyst-guide.md describes the marts for the people using them.
"""

from __future__ import annotations

from hub.publisher import Column, DatasetSpec

PUBLIC, INTERNAL = "public", "internal"

# Shared descriptions, so that the same column reads the same everywhere.
_C = {
    "person_key": "Keyed hash of the person's ID number (joins the other datasets; not reversible).",
    "person_no": "学号 or 工号 of the person.",
    "name": "Name, normalised.",
    "org_code": "党组织编码 of the organisation (for people: their branch).",
    "org_name": "党组织名称 (empty when the code is not an organisation of the party system).",
    "org_type": "党委 / 党总支 / 党支部 / 党小组.",
    "parent_code": "上级党组织编码.",
    "parent_name": "上级党组织名称.",
    "branch_kind": "教工 / 学生 / 离退休 / 机关.",
    "category": "staff / student / retired.",
    "stage": "applicant / activist / candidate / probationary / full.",
    "stage_name": "入党申请人 / 入党积极分子 / 发展对象 / 预备党员 / 正式党员.",
    "stage_order": "Stage in development order, 1 (applicant) to 5 (full).",
    "member_status": "Party record status: 正常 or transferred_out.",
    "year": "Calendar year.",
    "year_complete": "Whether the year had ended on the as-of date (false: the year so far).",
    "term": "School term 学年学期, YYYY-YYYY-1 (Sep-Jan) or YYYY-YYYY-2 (Feb-Aug).",
}


def _cols(default: str, *cols: tuple) -> tuple[Column, ...]:
    """Columns from (name,) — a shared description — or (name, description[, sensitivity])."""
    out = []
    for c in cols:
        name = c[0]
        description = c[1] if len(c) > 1 else _C[name]
        out.append(Column(name, description, c[2] if len(c) > 2 else default))
    return tuple(out)


def _spec(table: str, description: str, order_by: str, audience: str, columns: tuple[Column, ...]) -> DatasetSpec:
    select = ", ".join(f'"{c.name}"' for c in columns)
    return DatasetSpec(name=table, description=description, query=f"SELECT {select} FROM marts.{table}",
                       order_by=order_by, columns=columns, audience=audience)


MART_DATASETS: tuple[DatasetSpec, ...] = (
    _spec("mart_parameters",
          "The as-of date the party-work marts measure against, the start of each source's data and the "
          "standards (models/assessment_standards.yaml) they applied.",
          "as_of", PUBLIC, _cols(
              PUBLIC,
              ("as_of", "The date every mart measures against: HUB_AS_OF, else the latest date in the data."),
              ("as_of_source", "'HUB_AS_OF' or 'latest date in the data'."),
              ("data_latest_date", "The later of the last meeting date and the last dues payment date."),
              ("dues_from", "First month of the dues data."),
              ("meetings_from", "First month of the meeting data."),
              ("learning_from", "First month of the online study data."),
              ("standards_file", "The standards file the marts applied."),
              ("standards_sha256", "sha256 of that file."),
              ("standards", "The standards as applied (JSON)."))),

    _spec("mart_membership",
          "Everyone who has been a party member of the college, with the spell on the college's roll that the "
          "dues, learning and assessment marts measure.",
          "person_no", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("person_no",), ("name",), ("category",),
              ("stage", "full / probationary (empty for members known only from a transfer letter)."),
              ("org_code",),
              ("status", "Party record status: 正常, 停止党籍, transferred_out, absent_from_export."),
              ("current_register", "Register of the current party record: member or transfer."),
              ("member_from", "Admission (入党日期), or for members known only from a transfer letter their "
                              "first dues month."),
              ("member_from_source", "admission_date or first_dues_month."),
              ("full_on", "转正日期."),
              ("joined_college_on", "HR hire date or student enrolment date."),
              ("on_roll_from", "The later of member_from and joined_college_on."),
              ("on_roll_until", "Transfer-out date (组织关系转出), empty while a member here."),
              ("transfer_letter_no", "介绍信编号 of the transfer out."),
              ("on_roll", "A member in good standing on the as-of date."),
              ("in_calendars", "Counted in the dues, learning and assessment calendars (in good standing or "
                               "transferred out)."))),

    _spec("mart_member_roster",
          "The member roster on the as-of date: every party member in good standing with the attributes the "
          "member structure counts.",
          "org_code, person_no", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("person_no",), ("name",), ("category",),
              ("category_name", "在职教职工 / 学生 / 离退休人员."),
              ("stage", "full / probationary."), ("stage_name", "正式党员 / 预备党员."),
              ("org_code",), ("org_name",), ("org_type",), ("branch_kind",), ("parent_code",), ("parent_name",),
              ("org_known", "False when the 党组织编码 is not an organisation: the member counts in the 党委."),
              ("group_code", "党组织编码 of the member's 党小组, from 党小组会 attendance (empty: none)."),
              ("unit_code", "The unit (二级学院 or department) of the branch."),
              ("gender", "GB/T 2261.1 gender code."), ("gender_name", "男 / 女."),
              ("ethnicity", "GB 3304 ethnic group code."), ("ethnicity_name", "Ethnic group name (壮族 …)."),
              ("age", "Full years of age on the as-of date."),
              ("age_band", "Age band of the standards file."),
              ("education", "学历 as the party register holds it."),
              ("title_level", "Professional title level 高级 / 中级 / 初级 / 无职称 (staff and retirees)."),
              ("title", "Professional title (staff and retirees)."),
              ("staff_category", "教职工类别 code (staff)."), ("staff_category_name", "教职工类别 name."),
              ("cohort", "年级 (students)."),
              ("probationary_on", "入党日期: admission as probationary member."),
              ("full_on", "转正日期."),
              ("standing_years", "党龄: full years since 转正 on the as-of date (empty for probationary members)."),
              ("standing_band", "党龄 band of the standards file, or 预备党员."),
              ("on_roll_from", "On the college's roll since."))),

    _spec("mart_member_structure",
          "Member structure per organisation (branch and every organisation above it): members and shares by "
          "category, stage, gender, ethnicity, age band, education, title level and 党龄.",
          "org_code, dimension, value_order", INTERNAL, _cols(
              INTERNAL, ("org_code",), ("org_name",), ("org_type",),
              ("dimension", "category / stage / gender / ethnicity / age_band / education / title_level / "
                            "party_standing."),
              ("value", "The value (code where there is one)."),
              ("value_name", "The value in words."),
              ("value_order", "Display order of the value within the dimension."),
              ("members", "Members in good standing with this value."),
              ("org_members", "Members in good standing of the organisation."),
              ("unknown_org_members", "Of org_members, those whose 党组织编码 is not an organisation (counted in "
                                      "the 党委)."),
              ("share", "members / org_members."))),

    _spec("mart_org_tree",
          "Party organisations as a tree with secretaries, committees, terms, member counts rolled up and "
          "warnings.",
          "path", INTERNAL, _cols(
              INTERNAL, ("org_code",), ("name", "党组织名称."), ("org_type",),
              ("depth", "Depth in the tree, 0 = 党委."), ("parent_code",), ("parent_name",),
              ("path", "Names from the 党委 down to the organisation."),
              ("branch_kind",), ("unit_code", "The unit the organisation belongs to."),
              ("unit_name", "The unit's name."),
              ("secretary_name", "书记姓名."), ("secretary_person_key", "person_key of the secretary."),
              ("committee_size", "委员人数 (0 = no committee)."),
              ("committee_status", "secretary_only / committee / committee_missing / committee_size_out_of_range "
                                   "/ not_applicable (党小组)."),
              ("founded_on", "成立日期."), ("elected_on", "换届日期 of the current term."),
              ("term_end", "届满日期."), ("term_years", "Length of the term in years."),
              ("days_to_term_end", "Days from the as-of date to the term end (negative: expired)."),
              ("term_status", "in_term / ending_soon / expired / no_term_recorded / not_applicable."),
              ("full_members", "Full members in good standing directly in the organisation (党小组: derived from "
                               "党小组会 attendance; empty when there is none)."),
              ("probationary_members", "Probationary members directly in it."),
              ("members", "Members directly in it."),
              ("full_members_rollup", "Full members in it and everything below it (党小组 not counted twice)."),
              ("probationary_members_rollup", "Probationary members in it and below."),
              ("members_rollup", "Members in it and below: the college's total on the 党委's row, the same in "
                                 "zt_dzzqkjcsj and mart_member_structure."),
              ("unknown_org_members", "Members counted in the 党委 whose 党组织编码 is not an organisation."),
              ("member_count_note", "How the counts were made where it is not plain (derived, unknown, included)."),
              ("branches_below", "党支部 below it."), ("groups_below", "党小组 below it."),
              ("warnings", "Comma-separated warnings (empty when none)."),
              ("warning_count", "Number of warnings."))),

    _spec("mart_development_pipeline",
          "People in the development pipeline with stage dates, days per stage, overdue steps and next actions.",
          "org_code, stage_order, person_no", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("person_no",), ("name",), ("category",), ("stage",), ("stage_name",),
              ("stage_order",), ("org_code",), ("org_name",), ("parent_code",), ("branch_kind",),
              ("applied_on", "申请入党日期."), ("talked_on", "谈话日期."), ("activist_on", "列为积极分子日期."),
              ("candidate_on", "列为发展对象日期."), ("probationary_on", "入党日期 (probationary)."),
              ("stage_since", "Date the current stage began."),
              ("days_in_stage", "Days in the current stage on the as-of date."),
              ("days_as_applicant", "Days from application to activist (to the as-of date if still applicant)."),
              ("days_as_activist", "Days from activist to 发展对象 (to the as-of date if still activist)."),
              ("days_as_candidate", "Days from 发展对象 to probationary (to the as-of date if still 发展对象)."),
              ("days_as_probationary", "Days in probation on the as-of date (probationary members)."),
              ("dates_impossible", "A step is dated after the as-of date or before the step it follows: the "
                                   "durations it enters are left empty, not printed negative."),
              ("date_problems", "Which dates are impossible, '; '-separated (empty when none)."),
              ("talk_due", "Application date + the talk deadline (one month)."),
              ("talk_overdue", "An applicant not yet talked to after the deadline."),
              ("talk_late", "The talk took place after the deadline."),
              ("activist_year_end", "Activist date + the minimum time as activist (one year)."),
              ("activist_year_short", "Listed as 发展对象 before a full year as activist."),
              ("probation_end", "Admission + the probation period (one year, plus a recorded 延长预备期)."),
              ("probation_overdue", "Still probationary after the probation period and the grace for the "
                                    "higher committee's approval (development.probation_grace_months) ended."),
              ("next_action", "talk / list_as_activist / list_as_candidate / admit_as_probationary / "
                              "convert_to_full."),
              ("next_action_name", "The next action in Chinese."),
              ("next_action_from", "Earliest date for the next action."),
              ("next_action_due", "Deadline of the next action (talk, 转正); empty where the rules set none."),
              ("overdue", "A pending step is past its deadline."),
              ("days_overdue", "Days past the deadline."))),

    _spec("mart_development_funnel",
          "The development funnel per branch and stage: people, overdue steps, days in stage, flow.",
          "org_code, stage_order", INTERNAL, _cols(
              INTERNAL, ("org_code",), ("org_name",), ("parent_code",), ("parent_name",), ("branch_kind",),
              ("stage",), ("stage_name",), ("stage_order",),
              ("people", "People at the stage on the as-of date."),
              ("overdue", "Of them, people with an overdue step."),
              ("avg_days_in_stage", "Average days they have been at the stage."),
              ("entered_last_12_months", "Of them, people who entered the stage in the 12 months to the as-of "
                                         "date."),
              ("median_days_to_leave", "Median days the branch's people took to move on from the stage."),
              ("people_who_left", "People behind that median."))),

    _spec("mart_member_assessment",
          "党员考核 per member and year by the standards file, with the breakdown of every component and "
          "deduction.",
          "year, org_code, person_no", INTERNAL, _cols(
              INTERNAL, ("year",), ("person_key",), ("person_no",), ("name",), ("org_code",), ("org_name",),
              ("category",), ("stage", "full / probationary (current)."), ("member_status",),
              ("meetings_expected", "Counted meetings the member was expected at in the year."),
              ("meetings_present", "Of them, present (出席)."), ("meetings_excused", "Excused (请假)."),
              ("meetings_absent", "Absent without leave (缺席)."),
              ("meeting_points", "Points for attendance (empty: not assessed)."),
              ("study_hours", "Online study hours in the year (minutes / 60)."),
              ("study_months", "Months on roll within the learning data up to the as-of date."),
              ("required_study_hours", "Required hours × study_months / 12."),
              ("completed_courses", "Study records completed in the year."),
              ("study_points", "Points for study hours (empty: not assessed)."),
              ("dues_months_due", "Months of the year for which dues were due."),
              ("dues_months_on_time", "Of them, paid by the deadline."),
              ("dues_months_unpaid", "Of them, unpaid on the as-of date."),
              ("dues_payments_below_rate", "Payments of the year below the rate band."),
              ("dues_points", "Points for dues paid on time (empty: not assessed)."),
              ("review_grade", "民主评议 grade code."), ("review_grade_name", "优秀 / 合格 / 基本合格 / 不合格."),
              ("review_points", "Points for the 民主评议 grade (empty: no grade)."),
              ("points_available", "Points of the components that could be assessed."),
              ("points_earned", "Points earned in them."),
              ("deduct_absences", "Deduction for absences without leave."),
              ("deduct_unpaid_dues", "Deduction for unpaid months."),
              ("deduct_below_rate", "Deduction for payments below the rate band."),
              ("deductions", "All deductions."),
              ("score", "max(0, 100 × earned / available − deductions), 1 decimal."),
              ("rating", "excellent / good / qualified / unqualified (bands of the standards file)."),
              ("rating_name", "优秀 / 良好 / 合格 / 不合格."),
              ("year_complete",))),

    _spec("mart_assessment_distribution",
          "Distribution of 党员考核 ratings and 民主评议 grades per organisation and year.",
          "org_code, year, scale, value_order", INTERNAL, _cols(
              INTERNAL, ("org_code",), ("org_name",), ("org_type",), ("year",), ("year_complete",),
              ("scale", "rating (党员考核 score band) or review_grade (民主评议)."),
              ("value", "Rating or grade code; not_assessed when there is none."),
              ("value_name", "The value in Chinese."),
              ("value_order", "Display order."),
              ("members", "Members with this value."),
              ("org_members", "Members assessed or not in the organisation and year."),
              ("assessed", "Members with a value on this scale."),
              ("share", "members / org_members."),
              ("share_of_assessed", "members / assessed."),
              ("avg_score", "Average 党员考核 score of these members."),
              ("excellent_over_one_third", "民主评议: 优秀 above one third of those assessed."))),

    _spec("mart_learning_course",
          "Learning effect per online course and term: completion, hours, quiz scores and the trend.",
          "course_id, term", PUBLIC, _cols(
              PUBLIC, ("course_id", "学习平台 course id."), ("term",), ("course_title", "Course title."),
              ("course_kind", "online_course / micro_lecture / web_lecture."),
              ("course_kind_name", "在线课程 / 微党课 / 网络讲座."),
              ("course_hours", "Nominal hours of the course."),
              ("learners", "People who started the course in the term."),
              ("records", "Study records."), ("completed_records", "Completed records."),
              ("completion_rate", "completed_records / records."),
              ("study_hours", "Hours studied (minutes / 60)."),
              ("hours_per_learner", "study_hours / learners."),
              ("avg_progress", "Average progress, 0-100."),
              ("quiz_takers", "Records with a quiz score."),
              ("avg_quiz_score", "Average quiz score."),
              ("quiz_pass_rate", "Share of quiz scores at or above the pass mark."),
              ("completion_rate_change", "Change in completion rate from the course's previous term."),
              ("avg_quiz_score_change", "Change in average quiz score from the previous term."))),

    _spec("mart_learning_branch",
          "Learning effect per party branch and term: participation, completion, hours, quiz scores and the "
          "trend.",
          "org_code, term", PUBLIC, _cols(
              PUBLIC, ("org_code",), ("org_name",), ("parent_code",), ("branch_kind",), ("term",),
              ("learners", "People of the branch (members and pipeline) who studied in the term."),
              ("member_learners", "Of them, members."),
              ("members_on_roll", "Members on the branch's roll during the term."),
              ("member_participation", "member_learners / members_on_roll."),
              ("records", "Study records."), ("completed_records", "Completed records."),
              ("completion_rate", "completed_records / records."),
              ("study_hours", "Hours studied (minutes / 60)."),
              ("hours_per_learner", "study_hours / learners."),
              ("quiz_takers", "Records with a quiz score."),
              ("avg_quiz_score", "Average quiz score."),
              ("quiz_pass_rate", "Share of quiz scores at or above the pass mark."),
              ("completion_rate_change", "Change in completion rate from the previous term."),
              ("hours_per_learner_change", "Change in hours per learner from the previous term."))),

    _spec("mart_learning_shortfall",
          "Members below the required online study hours, per year, with the shortfall.",
          "year, org_code, person_no", INTERNAL, _cols(
              INTERNAL, ("year",), ("person_key",), ("person_no",), ("name",), ("org_code",), ("org_name",),
              ("category",), ("stage", "full / probationary (current)."), ("member_status",),
              ("study_months", "Months on roll within the learning data up to the as-of date."),
              ("required_study_hours", "Required hours × study_months / 12."),
              ("study_hours", "Hours studied (minutes / 60)."),
              ("shortfall_hours", "required_study_hours − study_hours."),
              ("share_of_required", "study_hours / required_study_hours."),
              ("completed_courses", "Study records completed in the year."),
              ("year_complete",))),

    _spec("mart_meeting_compliance",
          "三会一课, 主题党日 and 组织生活会 compliance per organisation, period and required kind of meeting.",
          "branch_code, org_code, period_kind, period_start, meeting_type", PUBLIC, _cols(
              PUBLIC, ("org_code", "党组织编码 of the 党支部 or 党小组."), ("org_name",), ("org_type",),
              ("branch_code", "The branch (the group's branch for a 党小组)."),
              ("branch_name", "The branch's name."),
              ("period_kind", "month / quarter / year."),
              ("period_start", "First day of the period."), ("period_end", "Last day of the period."),
              ("period_label", "2026-10, 2026-Q3 or 2026."),
              ("meeting_type", "theme_day / branch_committee / group_meeting / branch_assembly / party_lecture / "
                               "life_meeting."),
              ("meeting_type_name", "主题党日 / 支委会 / 党小组会 / 支部党员大会 / 党课 / 组织生活会."),
              ("min_meetings", "Meetings required in the period."),
              ("held", "Meetings held in the period (up to the as-of date)."),
              ("met", "held >= min_meetings."),
              ("period_complete", "The period had ended on the as-of date."),
              ("status", "met / missed / pending (not met yet, period not over)."))),

    _spec("mart_dues_compliance",
          "Dues per member and month: every month due with its payment (or none), and payments outside them.",
          "person_no, month", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("person_no",), ("name",), ("org_code",), ("org_name",), ("category",),
              ("month", "缴费月份 (first day)."),
              ("deadline", "Last day of the month + the grace days."),
              ("due_month", "The member owed dues for this month."),
              ("status", "paid_on_time / paid_late / unpaid / paid_not_due."),
              ("paid_on", "缴费日期."), ("days_late", "Days after the deadline."),
              ("rate", "Rate of the member's band (empty for the flat student amount)."),
              ("due", "应缴金额 as the party system recorded it."),
              ("expected_due", "What the rate band asks (中组部 2008)."),
              ("paid", "实缴金额."),
              ("shortfall", "expected_due − paid when positive, else 0."),
              ("below_rate", "paid < expected_due."),
              ("due_matches_rate", "The party system's 应缴 equals the band's amount."),
              ("unpaid_run_months", "Unpaid months in a row up to this month (0 when paid)."))),

    _spec("mart_dues_arrears",
          "Dues arrears per member: months due, paid on time, late, unpaid; amounts against the rate band; the "
          "6-month warning.",
          "org_code, person_no", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("person_no",), ("name",), ("org_code",), ("org_name",), ("category",),
              ("member_status",), ("on_roll", "A member in good standing on the as-of date."),
              ("first_due_month", "First month dues were due."), ("last_due_month", "Last month due."),
              ("months_due", "Months dues were due."), ("months_paid", "Of them, paid."),
              ("months_paid_on_time", "Paid by the deadline."), ("months_paid_late", "Paid after it."),
              ("months_unpaid", "Not paid on the as-of date."),
              ("unpaid_months", "The unpaid months, YYYY-MM, comma-separated."),
              ("trailing_unpaid_months", "Unpaid months in a row up to the last month due."),
              ("longest_unpaid_run", "Longest run of unpaid months."),
              ("unpaid_warning", "trailing_unpaid_months reached the warning (6 months: counts as leaving the "
                                 "party without cause)."),
              ("payments_not_due", "Payments for months outside the months due."),
              ("last_paid_month", "Latest month paid."),
              ("latest_rate", "Rate of the latest payment."),
              ("latest_monthly_amount", "The band's monthly amount at the latest payment."),
              ("expected_for_paid_months", "What the band asks for the months paid."),
              ("paid_total", "All paid."),
              ("shortfall_total", "Sum of the shortfalls against the band."),
              ("payments_below_rate", "Payments below the band."),
              ("payments_due_not_matching_rate", "Payments whose recorded 应缴 differs from the band."),
              ("arrears_estimate", "months_unpaid × latest_monthly_amount."),
              ("compliance_status", "arrears / below_rate / late / ok / nothing_due."))),

    _spec("mart_student_standing",
          "Academic standing of student members, activists and 发展对象 against their cohort, with the screen "
          "for failed courses.",
          "org_code, stage_order, student_no", INTERNAL, _cols(
              INTERNAL, ("person_key",), ("student_no", "学号."), ("name",),
              ("stage", "activist / candidate / probationary / full."), ("stage_name",), ("stage_order",),
              ("org_code",), ("org_name",),
              ("school_code", "二级学院 code."), ("school_name", "二级学院 name."), ("major", "专业."),
              ("class_name", "班级."), ("cohort", "年级."), ("enrolment_status", "学籍状态."),
              ("terms", "Terms with grades up to the as-of date."),
              ("credits", "Credits attempted."), ("credits_earned", "Credits earned."),
              ("gpa", "Overall GPA: term GPAs weighted by credits."),
              ("latest_term", "Latest term with grades."), ("latest_term_gpa", "GPA of that term."),
              ("failed_courses", "Courses failed (counted per term, after make-ups of the term)."),
              ("failed_courses_outstanding", "Courses with no passing attempt yet."),
              ("cohort_students", "Students of the same 年级 and 二级学院 with grades."),
              ("cohort_avg_gpa", "Their average GPA."), ("cohort_median_gpa", "Their median GPA."),
              ("cohort_share_with_failed", "Share of them with a failed course."),
              ("gpa_vs_cohort", "gpa − cohort_avg_gpa."),
              ("gpa_percentile", "Percentile of the GPA in the cohort (0-100)."),
              ("screened", "The stage is one the standards file screens."),
              ("screen_flag", "Screened and more failed courses than allowed: for the branch to review."),
              ("screen_reason", "Why the flag is set."))),
)

MART_SOURCES: dict[str, str] = {spec.name: spec.name for spec in MART_DATASETS}
