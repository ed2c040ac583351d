"""The facts and the department dimension, built raw -> staging -> warehouse on the small simulated campus
and held against the simulator's ground truth (truth/*.parquet) and its log of injected defects."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter, defaultdict
from datetime import date

import duckdb
import pytest

from hub.warehouse import connect
from models.build import build_staging, load_code_sets

FACTS = ("dim_department", "fact_dues_payment", "fact_org_activity", "fact_activity_attendance",
         "fact_assessment", "fact_study_record", "fact_course_grade", "fact_student_term_gpa",
         "fact_relation_transfer", "fact_development_event")

# The documented grading rules (docs/data-model-facts.md), written out here independently of the CSVs.
WORD_POINTS = {"优秀": 95.0, "良好": 85.0, "中等": 75.0, "及格": 65.0, "不及格": 0.0}
GRADE_POINT_BANDS = ((90, 4.0), (85, 3.7), (82, 3.3), (78, 3.0), (75, 2.7), (72, 2.3), (68, 2.0), (64, 1.5),
                     (60, 1.0))
# The person key the campus warehouse was built with (the graph's IdentityResource reads this variable).
PERSON_SECRET = os.environ["HUB_PERSON_KEY_SECRET"]
TRUTH_EVENTS = {"申请入党": "applied", "谈话": "talked", "列为入党积极分子": "activist", "列为发展对象": "candidate",
                "接收为预备党员": "probationary", "转为正式党员": "full"}


@pytest.fixture(scope="module")
def wh(tmp_path_factory, copy_campus_warehouse):
    """A copy of the small campus's warehouse, built through the asset graph (tests/conftest.py: every
    source loaded through the real connectors and servers, then every staging and warehouse model). A copy:
    a test here adds rows to it."""
    con = connect(copy_campus_warehouse(tmp_path_factory.mktemp("facts") / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture(scope="module")
def truth(campus_dir):
    t = duckdb.connect()
    for path in (campus_dir / "truth").glob("*.parquet"):
        t.execute(f"CREATE VIEW {path.stem} AS SELECT * FROM read_parquet('{path}')")
    t.execute(f"CREATE VIEW defects AS SELECT * FROM read_csv('{campus_dir / 'truth' / 'defects.csv'}', "
              "all_varchar = true)")
    yield t
    t.close()


def _defect_keys(truth, system: str, entity: str, kind: str) -> Counter:
    return Counter(r[0] for r in truth.execute("SELECT record_key FROM defects WHERE system = ? AND entity = ? "
                                               "AND kind = ?", [system, entity, kind]).fetchall())


def _rows(con, sql: str, params=None) -> list[tuple]:
    return sorted(con.execute(sql, params or []).fetchall())


# ---------------------------------------------------------------------------- row-level rules


@pytest.mark.parametrize(("system", "entity"), [("party", "dues"), ("activity", "attendance"),
                                                ("academic", "grades"), ("party", "assessments"),
                                                ("party", "transfers"), ("activity", "meetings"),
                                                ("learning", "study_records"), ("learning", "courses"),
                                                ("academic", "courses")])
def test_duplicates_are_quarantined_exactly_and_nothing_else_is_rejected(wh, truth, system, entity):
    quarantined = wh.execute("SELECT rule, record_key FROM quality.quarantine WHERE stage = 'staging' "
                             "AND source = ? AND entity = ?", [system, entity]).fetchall()
    assert {rule for rule, _ in quarantined} <= {"duplicate_row"}, "clean source values must all parse and map"
    assert Counter(key for _, key in quarantined) == _defect_keys(truth, system, entity, "duplicate_row")


def test_rejects_name_the_field_and_the_value(con):
    """Row rules on hand-made raw rows: duplicate, conflict, unparseable amount, unknown grade word."""
    load_code_sets(con)
    meta = "'L1' AS _load_id, 'party' AS _source, now() AS _extracted_at, NULL AS _row_hash, 'f.csv' AS _file"
    con.execute(f"""CREATE TABLE raw.party__dues AS SELECT *, {meta} FROM (VALUES
        ('1001', '甲', '451000100100', '2024-01', '8000.00', '120.00', '120.00', '20240110', 1),
        ('1001', '甲', '451000100100', '2024-01', '8000.00', '120.00', '120.00', '20240110', 2),
        ('1002', '乙', '451000100100', '2024-01', '8000.00', '120.00', '12,3a', '20240110', 3),
        ('1003', '丙', '451000100100', '2024-01', '8000.00', '120.00', '120.00', '20240110', 4),
        ('1003', '丙', '451000100100', '2024-01', '8000.00', '120.00', '60.00', '20240110', 5),
        ('1004', '丁', '451000100100', '2024-13', '', '0.20', '0.20', '20240110', 6))
        t("人员编号", "姓名", "党组织编码", "缴费月份", "缴费基数", "应缴金额", "实缴金额", "缴费日期", _row_number)""")
    stats = build_staging(con, "stg_party_dues")
    assert stats["rows_accepted"] == 1
    assert stats["rejected_by_rule"] == {"duplicate_row": 1, "unparseable_value": 2, "conflicting_duplicate": 2}
    details = dict(con.execute("SELECT record_key, detail FROM quality.quarantine WHERE rule = 'unparseable_value'"
                               ).fetchall())
    assert "实缴金额" in details["1002|2024-01"] and "12,3a" in details["1002|2024-01"]
    assert "缴费月份" in details["1004|2024-13"] and "2024-13" in details["1004|2024-13"]

    con.execute(f"""CREATE TABLE raw.academic__grades AS SELECT *, {meta} FROM (VALUES
        ('1', '202401010101', 'GB101', '2024-2025-1', '良好', '正常考试', '2025-01-10 10:00:00', 1),
        ('2', '202401010101', 'GB102', '2024-2025-1', '缺考', '正常考试', '2025-01-10 10:00:00', 2),
        ('3', '202401010101', 'GB103', '2024-2025-1', '8O', '正常考试', '2025-01-10 10:00:00', 3),
        ('4', '202401010101', 'GB104', '2024-2025-1', '77', '期中考试', '2025-01-10 10:00:00', 4))
        t(id, xh, kch, xnxq, cj, ksxz, updated_at, _row_number)""")
    stats = build_staging(con, "stg_academic_grades")
    assert stats["rows_accepted"] == 1 and stats["rejected_by_rule"] == {"unmapped_code": 2, "unparseable_value": 1}
    assert con.execute("SELECT score, score_original FROM staging.stg_academic_grades").fetchall() == [(85.0, "良好")]
    details = [d for (d,) in con.execute("SELECT detail FROM quality.quarantine WHERE entity = 'grades'").fetchall()]
    assert any("缺考" in d and "cj" in d for d in details) and any("8O" in d for d in details)
    assert any("ksxz" in d and "期中考试" in d for d in details)


def test_a_re_exported_file_is_not_a_duplicate_of_itself(con):
    """The transfer register is exported whole each time: the second export's rows are the current
    versions, not copies of the first export's rows."""
    load_code_sets(con)
    con.execute("""CREATE TABLE raw.party__transfers AS SELECT * FROM (VALUES
        ('ZJ1', '1001', '甲', '', '451000100100', '中共南宁市委组织部', '省内', '2026-06-01', '', 'L1', 1),
        ('ZJ2', '1002', '乙', '', '451000100100', '中共东莞市委组织部', '跨省', '2026-06-02', '', 'L1', 2),
        ('ZJ1', '1001', '甲', '', '451000100100', '中共南宁市委组织部', '省内', '2026-06-01', '2026-06-20', 'L2', 1),
        ('ZJ2', '1002', '乙', '', '451000100100', '中共东莞市委组织部', '跨省', '2026-06-02', '', 'L2', 2),
        ('ZJ3', '1003', '丙', '', '451000100100', '中共桂林市委组织部', '省内', '2026-06-03', '', 'L2', 3),
        ('ZJ3', '1003', '丙', '', '451000100100', '中共桂林市委组织部', '省内', '2026-06-03', '', 'L2', 4))
        t("介绍信编号", "人员编号", "姓名", "公民身份号码", "转出党组织编码", "转入党组织名称", "转接类型", "转出日期",
          "回执日期", _load_id, _row_number)""")
    con.execute("ALTER TABLE raw.party__transfers ADD COLUMN _extracted_at TIMESTAMPTZ")
    con.execute("ALTER TABLE raw.party__transfers ADD COLUMN _file VARCHAR")
    con.execute("UPDATE raw.party__transfers SET _extracted_at = CASE _load_id WHEN 'L1' THEN TIMESTAMPTZ '2026-07-01' "
                "ELSE TIMESTAMPTZ '2026-08-01' END")
    stats = build_staging(con, "stg_party_transfers")
    assert stats["rejected_by_rule"] == {"duplicate_row": 1} and stats["rows_accepted"] == 3
    assert _rows(con, "SELECT letter_no, receipt_date, load_id FROM staging.stg_party_transfers") == [
        ("ZJ1", date(2026, 6, 20), "L2"), ("ZJ2", None, "L2"), ("ZJ3", None, "L2")]


# ---------------------------------------------------------------------------- dues


def test_dues_payments_equal_the_truth_and_flag_exactly_the_payments_below_rate(wh, truth):
    got = {(p, m): (base, due, paid, paid_on, exp, rate, below) for p, m, base, due, paid, paid_on, exp, rate, below in
           wh.execute("SELECT person_no, strftime(month, '%Y-%m'), base, due, paid, paid_on, expected_due, rate, "
                      "below_rate FROM warehouse.fact_dues_payment").fetchall()}
    want = {(p, m): (base, due, paid, paid_date, rate) for p, m, base, due, paid, paid_date, rate in
            truth.execute("SELECT person_no, month, base, due, paid, paid_date, rate FROM dues").fetchall()}
    assert got.keys() == want.keys()
    below = set()
    for key, (base, due, paid, paid_on, expected, rate, below_rate) in got.items():
        t_base, t_due, t_paid, t_paid_on, t_rate = want[key]
        assert float(paid) == pytest.approx(t_paid) and float(due) == pytest.approx(t_due), key
        assert paid_on == t_paid_on, key
        # The truth's due is the correct amount for the band: expected_due is computed, not copied.
        assert float(expected) == pytest.approx(t_due), key
        if base is not None:
            assert float(base) == pytest.approx(t_base) and float(rate) == pytest.approx(t_rate), key
        if below_rate:
            below.add(f"{key[0]}|{key[1]}")
    assert Counter(below) == _defect_keys(truth, "party", "dues", "dues_below_rate")


def test_facts_carry_the_right_person_key(wh, truth):
    """person_key leads to the dim_person row of the same real person (by ID number in the truth)."""
    ids = dict(truth.execute("SELECT coalesce(staff_no, student_no), id_number FROM persons").fetchall())
    for table, col in (("fact_dues_payment", "person_no"), ("fact_activity_attendance", "person_no"),
                       ("fact_course_grade", "student_no"), ("fact_assessment", "person_no")):
        rows = wh.execute(f"""SELECT f.{col}, d.id_number, d.has_valid_id, f.person_key IS NULL
                              FROM warehouse.{table} f LEFT JOIN warehouse.dim_person d USING (person_key)""").fetchall()
        assert rows and not any(missing for *_, missing in rows), f"{table}: every known person has a key"
        for number, id_number, valid, _ in rows:
            if valid:
                assert id_number == ids[number], (table, number)


# ---------------------------------------------------------------------------- grades and GPA


def test_grades_equal_the_truth_with_points_and_original_values(wh, truth):
    got = _rows(wh, "SELECT student_no, course_code, term, exam_type_name, score_original, score, passed "
                    "FROM warehouse.fact_course_grade")
    want = truth.execute("SELECT student_no, course_code, term, exam_type, result, score FROM grades").fetchall()
    assert len(got) == len(want)
    assert [g[:5] for g in got] == sorted(w[:5] for w in want)
    for student, course, term, exam, original, score, passed in got:
        expected = WORD_POINTS.get(original, None)
        assert score == (expected if expected is not None else float(original)), (student, course, term, exam)
        assert passed == (score >= 60)


def _grade_point(score: float) -> float:
    return next((gp for low, gp in GRADE_POINT_BANDS if score >= low), 0.0)


def test_term_gpa_recomputed_independently_from_the_truth(wh, truth, campus_dir):
    with sqlite3.connect(campus_dir / "academic" / "academic.sqlite") as db:
        credits = dict(db.execute("SELECT kch, xf FROM jw_kc").fetchall())
    # Students with make-ups, retakes and word grades among them, plus the first few by number.
    students = [r[0] for r in truth.execute("""
        (SELECT student_no FROM grades WHERE exam_type = '补考' ORDER BY student_no LIMIT 3)
        UNION (SELECT student_no FROM grades WHERE exam_type = '重修' ORDER BY student_no LIMIT 2)
        UNION (SELECT DISTINCT student_no FROM grades ORDER BY student_no LIMIT 3)""").fetchall()]
    attempts: dict[tuple, list] = defaultdict(list)
    for student, course, term, result, exam in truth.execute(
            "SELECT student_no, course_code, term, result, exam_type FROM grades WHERE list_contains(?, student_no)",
            [students]).fetchall():
        points = WORD_POINTS[result] if result in WORD_POINTS else float(result)
        attempts[(student, term, course)].append(min(points, 60.0) if exam == "补考" else points)
    terms: dict[tuple, dict] = defaultdict(lambda: {"credits": 0.0, "weighted": 0.0, "failed": 0, "courses": 0})
    for (student, term, course), scores in attempts.items():
        counted, t = max(scores), terms[(student, term)]
        t["credits"] += credits[course]
        t["weighted"] += credits[course] * _grade_point(counted)
        t["failed"] += counted < 60
        t["courses"] += 1
    got = {(s, t): (float(gpa), failed, courses, float(cr)) for s, t, gpa, failed, courses, cr in wh.execute(
        "SELECT student_no, term, gpa, failed_courses, courses, credits FROM warehouse.fact_student_term_gpa "
        "WHERE list_contains(?, student_no)", [students]).fetchall()}
    assert got.keys() == terms.keys() and len(got) >= len(students)
    assert any(t["failed"] for t in terms.values()), "the sample must include a failed course"
    for key, t in terms.items():
        gpa, failed, courses, cr = got[key]
        assert gpa == pytest.approx(round(t["weighted"] / t["credits"], 2), abs=0.005), key
        assert (failed, courses, cr) == (t["failed"], t["courses"], pytest.approx(t["credits"])), key


# ---------------------------------------------------------------------------- orphans


@pytest.mark.parametrize(("fact", "reporter", "kind", "system", "entity"), [
    ("fact_course_grade", "fact_course_grade", "orphan_reference", "academic", "grades"),
    ("fact_activity_attendance", "fact_activity_attendance", "orphan_reference", "activity", "attendance"),
    # a member in an unknown organisation is reported once, by dim_party_member
    ("fact_development_event", "dim_party_member", "unknown_party_org", "party", "members")])
def test_orphans_are_found_exactly_and_kept_out_of_the_facts(wh, truth, fact, reporter, kind, system, entity):
    found = Counter(r[0] for r in wh.execute(
        "SELECT record_key FROM quality.reconciliation_issue WHERE kind = ? AND model = ?",
        [kind, reporter]).fetchall())
    injected = _defect_keys(truth, system, entity, "orphan_reference")
    assert injected and found == injected
    key_sql = {"fact_course_grade": "student_no || '|' || course_code || '|' || term || '|' || exam_type_name",
               "fact_activity_attendance": "meeting_id || '|' || person_no",
               "fact_development_event": "person_no"}[fact]
    in_fact = {r[0] for r in wh.execute(f"SELECT {key_sql} FROM warehouse.{fact}").fetchall()}
    assert not in_fact & set(injected)


def test_no_other_fact_reports_orphans_on_clean_references(wh):
    others = wh.execute("""SELECT model, count(*) FROM quality.reconciliation_issue WHERE kind = 'orphan_reference'
                           AND model NOT IN ('fact_course_grade', 'fact_activity_attendance', 'fact_development_event')
                           GROUP BY ALL""").fetchall()
    assert others == []


# ---------------------------------------------------------------------------- activity, party, learning


def test_attendance_and_meetings_equal_the_truth(wh, truth):
    got = _rows(wh, "SELECT meeting_id, person_no, status_name, checked_in_at FROM warehouse.fact_activity_attendance")
    want = _rows(truth, "SELECT meeting_id, person_no, status, checkin_time FROM attendance")
    assert got == want
    got = _rows(wh, "SELECT meeting_id, org_code, meeting_type_name, start_at, end_at, place, title, "
                    "coalesce(lecturer, ''), expected_attendees FROM warehouse.fact_org_activity")
    want = _rows(truth, """SELECT m.meeting_id, org_code, type, start_time, end_time, place, title, coalesce(lecturer, ''),
                                  (SELECT count(*) FROM attendance a WHERE a.meeting_id = m.meeting_id)
                           FROM meetings m""")
    assert got == want


def test_assessments_transfers_and_study_records_equal_the_truth(wh, truth):
    assert _rows(wh, "SELECT person_no, org_code, year, grade_name FROM warehouse.fact_assessment") == \
        _rows(truth, "SELECT person_no, org_code, year, grade FROM assessments")

    got = _rows(wh, "SELECT letter_no, person_no, from_org_code, kind_name, out_date, receipt_date, receipt_overdue "
                    "FROM warehouse.fact_relation_transfer")
    want = truth.execute("SELECT letter_no, person_no, from_org_code, kind, out_date, receipt_date FROM transfers"
                         ).fetchall()

    def one_month_later(d: date) -> date:
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        last = (date(y + (m == 12), m % 12 + 1, 1) - date(y, m, 1)).days
        return date(y, m, min(d.day, last))

    # Judged at the as-of date (HUB_AS_OF unset: the later of the last meeting and the last dues payment),
    # never today, so the flags do not change from one day to the next.
    [(as_of,)] = wh.execute("SELECT greatest((SELECT max(meeting_date) FROM warehouse.fact_org_activity), "
                            "(SELECT max(paid_on) FROM warehouse.fact_dues_payment))").fetchall()
    assert as_of < date.today()
    assert got == sorted((*w, (w[5] or as_of) > one_month_later(w[4])) for w in want)


    got = _rows(wh, "SELECT record_id, person_no, course_id, minutes, progress, quiz_score, completed, started_at "
                    "FROM warehouse.fact_study_record")
    want = _rows(truth, "SELECT record_id, user_no, course_id, minutes, progress, quiz_score, completed, started_at "
                        "FROM study_records")
    assert got == want
    assert wh.execute("SELECT count(*) FROM warehouse.fact_study_record WHERE course_title IS NULL OR term IS NULL "
                      "OR NOT regexp_full_match(term, '[0-9]{4}-[0-9]{4}-[12]')").fetchone()[0] == 0


def test_development_events_agree_with_the_truth(wh, truth):
    got = {(p, e): (d, o) for p, e, d, o in wh.execute(
        "SELECT person_no, event, event_date, org_code FROM warehouse.fact_development_event").fetchall()}
    want = {(p, TRUTH_EVENTS[e]): (d, o) for p, e, d, o in truth.execute(
        "SELECT person_no, event, event_date, org_code FROM development_events WHERE event <> '组织关系转出'").fetchall()}
    assert got and all(want[k] == v for k, v in got.items()), "every event as the truth has it"
    exported = {r[0] for r in wh.execute("SELECT person_no FROM staging.stg_party_members UNION "
                                         "SELECT person_no FROM staging.stg_party_development").fetchall()}
    orphans = set(_defect_keys(truth, "party", "members", "orphan_reference"))
    members = {r[0] for r in wh.execute("SELECT person_no FROM staging.stg_party_members").fetchall()}
    missing = {k for k in want if k[0] in exported - orphans and k not in got}
    assert all(k[1] == "talked" and k[0] in members for k in missing), "only members' talks are not exported"


# ---------------------------------------------------------------------------- departments


def test_departments_are_the_units_of_hr_and_the_student_system_with_their_counts(wh, truth):
    got = {u: rest for u, *rest in wh.execute(
        "SELECT unit_code, kind, name, staff_total, staff_in_post, students_total, party_members "
        "FROM warehouse.dim_department").fetchall()}
    staff = dict(truth.execute("SELECT unit_code, count(*) FROM staff GROUP BY ALL").fetchall())
    in_post = dict(truth.execute("SELECT unit_code, count(*) FROM staff WHERE status LIKE '1%' GROUP BY ALL").fetchall())
    students = dict(truth.execute("SELECT school_code, count(*) FROM students GROUP BY ALL").fetchall())
    names = dict(truth.execute("SELECT unit_code, any_value(unit_name) FROM staff GROUP BY ALL UNION ALL "
                               "SELECT school_code, any_value(school_name) FROM students GROUP BY ALL").fetchall())
    # Members in good standing by their organisation's unit; a member exported with an unknown 党组织编码
    # belongs to no unit.
    members = dict(truth.execute("""
        SELECT o.unit_code, count(*) FROM party_members m JOIN party_orgs o USING (org_code)
        WHERE m.stage IN ('正式党员', '预备党员') AND m.status = '正常'
          AND m.person_no NOT IN (SELECT record_key FROM defects WHERE entity = 'members' AND kind = 'orphan_reference')
        GROUP BY ALL""").fetchall())
    assert got.keys() == staff.keys() | students.keys()
    for unit, (kind, name, n_staff, n_in_post, n_students, n_members) in got.items():
        assert (name, n_staff, n_in_post, n_students, n_members) == \
            (names[unit], staff.get(unit, 0), in_post.get(unit, 0), students.get(unit, 0), members.get(unit, 0)), unit
        assert kind == ("二级学院" if unit in students else "机关"), unit


def test_every_fact_table_is_built(wh):
    for name in FACTS:
        assert wh.execute(f"SELECT count(*) FROM warehouse.{name}").fetchone()[0] > 0, name


def test_a_pending_receipt_is_judged_at_the_as_of_date_never_today(wh):
    """Two letters without a receipt: one due before the as-of date, one due after it but long before today.
    Judged by the clock both would be overdue; judged at the as-of date (the latest date in the data, or
    HUB_AS_OF) only the first is."""
    from datetime import timedelta

    from models.build import build_warehouse
    from models.standards import bind_as_of

    [(as_of,)] = wh.execute("SELECT greatest((SELECT max(meeting_date) FROM warehouse.fact_org_activity), "
                            "(SELECT max(paid_on) FROM warehouse.fact_dues_payment))").fetchall()
    letters = {"T-ASOF-LATE": as_of - timedelta(days=45), "T-ASOF-OPEN": as_of - timedelta(days=10)}
    assert as_of + timedelta(days=25) < date.today(), "the open letter's deadline is past by the clock"
    for letter, out_date in letters.items():
        wh.execute("INSERT INTO staging.stg_party_transfers SELECT * REPLACE (?::VARCHAR AS letter_no, "
                   "?::DATE AS out_date, NULL::DATE AS receipt_date) FROM staging.stg_party_transfers LIMIT 1",
                   [letter, out_date])

    def flags() -> dict:
        build_warehouse(wh, "fact_relation_transfer", secret=PERSON_SECRET)
        return dict(wh.execute("SELECT letter_no, receipt_overdue FROM warehouse.fact_relation_transfer "
                               "WHERE letter_no LIKE 'T-ASOF-%'").fetchall())

    try:
        assert flags() == {"T-ASOF-LATE": True, "T-ASOF-OPEN": False}
        bind_as_of(wh, as_of - timedelta(days=20))  # before the first deadline
        assert flags() == {"T-ASOF-LATE": False, "T-ASOF-OPEN": False}
    finally:
        bind_as_of(wh)
        wh.execute("DELETE FROM staging.stg_party_transfers WHERE letter_no LIKE 'T-ASOF-%'")
        build_warehouse(wh, "fact_relation_transfer", secret=PERSON_SECRET)
