"""Incremental facts (models/incremental_facts.py) give the same tables as a full build, table by table
(``warehouse.fact_course_grade``, ``warehouse.fact_student_term_gpa`` and the fact's rows of
``quality.reconciliation_issue``), after a sequence of changes: new and corrected grades, a grade that a
later load quarantines (it leaves the fact), a student who appears later (an orphan grade becomes a fact
row), a quarantined student record (the 学号 is known), a course's credits, a person_number mapping, a
student's mobile (nothing to rebuild), a grade-point scale change (a full build) and nothing new.

The incremental side is built as the assets build it (incremental staging, then the facts incrementally);
the full side with the plain whole builds (models.build.build_staging and build_warehouse)."""

from __future__ import annotations

from collections import Counter

import pytest
from test_incremental_staging import _land  # tests/ is on sys.path under pytest

from hub.warehouse import connect
from models.build import build_staging, build_warehouse, load_code_sets
from models.incremental import build_staging_incremental
from models.incremental_facts import build_fact, data_version

SECRET = "incremental-facts-test"
T = "2025-01-10 10:00:00"


def _grades(*rows) -> list[tuple]:
    """(id, 学号, 课程号, 学年学期, 成绩, 考试性质, updated_at) with row numbers."""
    return [(*r, n) for n, r in enumerate(rows, 1)]


def _setup(con) -> None:
    con.execute("CREATE TABLE staging.stg_students (student_no VARCHAR, name VARCHAR, mobile VARCHAR)")
    con.execute("INSERT INTO staging.stg_students VALUES ('S1', '甲', '13800000001'), ('S2', '乙', '13800000002'), "
                "('S3', '丙', '13800000003'), ('S4', '丁', '13800000004')")
    con.execute("CREATE TABLE staging.stg_academic_courses (course_code VARCHAR, course_name VARCHAR, "
                "course_category VARCHAR, credits DECIMAL(4, 1), teacher VARCHAR)")
    con.execute("INSERT INTO staging.stg_academic_courses VALUES ('C1', '高等数学', '必修', 4, 'T1'), "
                "('C2', '大学英语', '必修', 3, 'T2'), ('C3', '体育', '选修', 1, 'T3')")
    con.execute("CREATE TABLE warehouse.person_number (person_no VARCHAR, person_key VARCHAR)")
    con.execute("INSERT INTO warehouse.person_number VALUES ('S1', 'P1'), ('S2', 'P2'), ('S3', NULL), ('T1', 'P9')")


# Each step: the raw grade load (None: none) and SQL changing the lookups or code sets, on both sides.
STEPS = [
    (_grades(("1", "S1", "C1", "2024-2025-1", "80", "正常考试", T), ("2", "S1", "C2", "2024-2025-1", "良好", "正常考试", T),
             ("3", "S2", "C1", "2024-2025-1", "55", "正常考试", T), ("4", "S3", "C2", "2024-2025-1", "91", "正常考试", T),
             ("5", "S4", "C3", "2024-2025-2", "70", "正常考试", T),
             ("6", "S5", "C1", "2024-2025-1", "66", "正常考试", T),     # S5 unknown: an orphan
             ("7", "S2", "C9", "2024-2025-1", "77", "正常考试", T),     # C9 unknown: an orphan
             ("8", "S6", "C8", "2024-2025-2", "61", "正常考试", T)), []),  # both unknown
    # new and corrected grades, a 补考
    (_grades(("1", "S1", "C1", "2024-2025-1", "86", "正常考试", "2025-02-01 09:00:00"),
             ("9", "S2", "C1", "2024-2025-1", "62", "补考", "2025-02-01 09:00:00"),
             ("10", "S3", "C1", "2024-2025-2", "88", "正常考试", "2025-02-01 09:00:00"),
             ("11", "S5", "C2", "2024-2025-1", "74", "正常考试", "2025-02-01 09:00:00")), []),
    # a grade quarantined (two conflicting versions in one load: it leaves staging and the fact); S5 appears
    (_grades(("4", "S3", "C2", "2024-2025-1", "91", "正常考试", "2025-03-01 09:00:00"),
             ("12", "S3", "C2", "2024-2025-1", "81", "正常考试", "2025-03-01 09:00:00")),
     ["INSERT INTO staging.stg_students VALUES ('S5', '戊', '13800000005')"]),
    # lookups only: C2's credits, S3 now maps to a person, S1 to another, S6's record quarantined at the source
    (None, ["UPDATE staging.stg_academic_courses SET credits = 2 WHERE course_code = 'C2'",
            "UPDATE warehouse.person_number SET person_key = 'P3' WHERE person_no = 'S3'",
            "UPDATE warehouse.person_number SET person_key = 'P1b' WHERE person_no = 'S1'",
            "INSERT INTO quality.quarantine (stage, source, entity, load_id, rule, record_key, detail, original_row) "
            "VALUES ('staging', 'student', 'students', 'X1', 'missing_value', 'S6', 'no name', '{}')"]),
    # a student's mobile changes, and a course's teacher: nothing the facts read
    (None, ["UPDATE staging.stg_students SET mobile = '13900000002' WHERE student_no = 'S2'",
            "UPDATE staging.stg_academic_courses SET teacher = 'T9' WHERE course_code = 'C1'"]),
    # the grade-point scale changes: every grade may move
    (None, ["UPDATE staging.cs_grade_point_scale SET grade_point = '3.9' WHERE min_score = '85'"]),
    # a new grade after the full build
    (_grades(("13", "S4", "C1", "2024-2025-2", "59", "正常考试", "2025-04-01 09:00:00")), []),
    (None, []),  # nothing new
]
WANT_MODES = ["full", "incremental", "incremental", "incremental", "skipped", "full", "incremental", "skipped"]


TABLES = {
    "warehouse.fact_course_grade": "SELECT * FROM warehouse.fact_course_grade",
    "warehouse.fact_student_term_gpa": "SELECT * FROM warehouse.fact_student_term_gpa",
    "quality.reconciliation_issue": "SELECT * EXCLUDE (found_at, \"values\"), CAST(\"values\" AS VARCHAR) "
                                    "FROM quality.reconciliation_issue WHERE model = 'fact_course_grade'",
}


def _differences(inc, full, tables: dict[str, str] = TABLES) -> dict[str, tuple[Counter, Counter]]:
    """Rows only in the incremental side and rows only in the full side, per table, as multisets (EXCEPT ALL
    both ways)."""
    out = {}
    for table, sql in tables.items():
        a, b = Counter(inc.execute(sql).fetchall()), Counter(full.execute(sql).fetchall())
        if a != b:
            out[table] = (a - b, b - a)
    return out


@pytest.fixture
def pair(tmp_path):
    """Two warehouses, incremental and full, with the code sets and the lookups of _setup."""
    cons = tuple(connect(tmp_path / f"{side}.duckdb") for side in ("incremental", "full"))
    for c in cons:
        load_code_sets(c)
        _setup(c)
    yield cons
    for c in cons:
        c.close()


def test_incremental_facts_equal_a_full_build_after_a_sequence_of_changes(pair):
    inc, full = pair
    modes, gpa_modes, seen, versions = [], [], {}, []
    for n, (rows, changes) in enumerate(STEPS, 1):
        for c in pair:
            if rows is not None:
                _land(c, n, rows)
            for sql in changes:
                c.execute(sql)
        build_staging_incremental(inc, "stg_academic_grades")
        stats = build_fact(inc, "fact_course_grade", secret=SECRET)
        gpa = build_fact(inc, "fact_student_term_gpa", secret=SECRET)
        build_staging(full, "stg_academic_grades")
        for name in ("fact_course_grade", "fact_student_term_gpa"):
            build_warehouse(full, name, secret=SECRET)
        modes.append(stats["mode"])
        gpa_modes.append(gpa["mode"])
        versions.append(data_version(inc, "fact_course_grade"))
        assert _differences(inc, full) == {}, f"after step {n} ({stats['mode']}: {stats['reason']})"
        for table, sql in TABLES.items():
            seen[table] = seen.get(table, 0) + inc.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    assert modes == WANT_MODES, modes
    assert gpa_modes == WANT_MODES, gpa_modes
    assert versions[4] == versions[3] and versions[7] == versions[6], "a skipped build keeps its data version"
    assert len(set(versions)) == 6
    assert all(seen.values()), seen
    # the orphans: S5's grades joined the fact in step 3, S6 (quarantined at the source) is known since step 4
    assert inc.execute("SELECT count(*) FROM warehouse.fact_course_grade WHERE student_no = 'S5'").fetchone()[0] == 2
    issues = {r for (r,) in inc.execute("SELECT record_key FROM quality.reconciliation_issue "
                                        "WHERE model = 'fact_course_grade'").fetchall()}
    assert issues == {"S2|C9|2024-2025-1|正常考试", "S6|C8|2024-2025-2|正常考试"}


def test_the_change_log_is_bounded_and_a_pruned_log_rebuilds_whole(pair):
    from models import delta

    inc, _ = pair
    _land(inc, 1, STEPS[0][0])
    build_staging_incremental(inc, "stg_academic_grades")
    assert build_fact(inc, "fact_course_grade", secret=SECRET)["mode"] == "full"
    _land(inc, 2, STEPS[1][0])
    build_staging_incremental(inc, "stg_academic_grades")
    # the fact has not taken in the build yet: its keys are kept; over the cap they are dropped
    assert inc.execute("SELECT count(*) FROM meta.delta_key WHERE model = 'stg_academic_grades'").fetchone()[0] == 4
    delta.prune(inc, "stg_academic_grades", cap=2)
    assert inc.execute("SELECT count(*) FROM meta.delta_key WHERE model = 'stg_academic_grades'").fetchone()[0] == 0
    stats = build_fact(inc, "fact_course_grade", secret=SECRET)
    assert stats["mode"] == "full" and "pruned" in stats["reason"]
    _land(inc, 3, STEPS[2][0])
    build_staging_incremental(inc, "stg_academic_grades")
    assert build_fact(inc, "fact_course_grade", secret=SECRET)["mode"] == "incremental"
    # consumed: nothing of the grades' log is kept beyond the fact's position
    assert inc.execute("SELECT count(*) FROM meta.delta_key WHERE model = 'stg_academic_grades'").fetchone()[0] == 0
    assert build_fact(inc, "fact_course_grade", secret=SECRET, full=True)["reason"] == "full rebuild requested"


def test_the_assets_say_what_they_skipped(tmp_path):
    """Through Dagster: the fact's materialisation says full, incremental or skipped and why, and a skipped
    build keeps the data version."""
    import dagster as dg

    from hub.resources import IdentityResource, RunSettingsResource, WarehouseResource
    from pipelines.warehouse import warehouse_assets

    path = tmp_path / "warehouse.duckdb"
    con = connect(path)
    load_code_sets(con)
    _setup(con)
    _land(con, 1, STEPS[0][0])
    build_staging_incremental(con, "stg_academic_grades")
    con.close()
    keys = [dg.AssetKey(["warehouse", n]) for n in ("fact_course_grade", "fact_student_term_gpa")]
    assets = [a for a in warehouse_assets if set(a.keys) <= set(keys)]

    def run() -> dict[str, tuple[str, str, str]]:
        result = dg.materialize(assets, resources={
            "warehouse": WarehouseResource(path=str(path)), "identity": IdentityResource(person_key_secret=SECRET),
            "run_settings": RunSettingsResource()})
        out = {}
        for event in result.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            version = m.tags.get("dagster/data_version")
            out[m.asset_key.path[-1]] = (m.metadata["build_mode"].value, m.metadata["build_reason"].value, version)
        return out

    first = run()
    assert {n: mode for n, (mode, _, _) in first.items()} == {"fact_course_grade": "full",
                                                               "fact_student_term_gpa": "full"}
    again = run()
    assert all(mode == "skipped" and reason.startswith("no change since build") for mode, reason, _ in again.values())
    assert {n: v for n, (_, _, v) in again.items()} == {n: v for n, (_, _, v) in first.items()}
    con = connect(path)
    con.execute("UPDATE staging.stg_academic_courses SET credits = 5 WHERE course_code = 'C1'")
    con.close()
    changed = run()
    assert changed["fact_course_grade"][:2] == ("incremental", "1 course_code touched")
    assert changed["fact_student_term_gpa"][0] == "incremental"
    assert changed["fact_course_grade"][2] != first["fact_course_grade"][2]


# Facts on a staging table written here, each change logged as an incremental staging build logs it
# (models/delta.py). Per fact: setup SQL, then steps (SQL on both sides, the source keys it touched or None
# for lookup changes only).
ATTENDANCE = (["CREATE TABLE staging.stg_activity_meetings (meeting_id VARCHAR, org_code VARCHAR, meeting_type VARCHAR, "
               "meeting_date DATE, topic VARCHAR)",
               "INSERT INTO staging.stg_activity_meetings VALUES ('M1', 'O1', '支部党员大会', '2025-01-05', 'a'), "
               "('M2', 'O1', '党小组会', '2025-01-12', 'b'), ('M3', 'O2', '党课', '2025-02-01', 'c')",
               "CREATE TABLE staging.stg_activity_attendance (meeting_id VARCHAR, person_no VARCHAR, status VARCHAR, "
               "status_name VARCHAR, checked_in_at TIMESTAMP)",
               "INSERT INTO staging.stg_activity_attendance VALUES ('M1', 'P1', 'present', '出席', '2025-01-05 09:00'), "
               "('M1', 'P2', 'absent', '缺席', NULL), ('M2', 'P1', 'present', '出席', '2025-01-12 09:00'), "
               "('M2', 'X9', 'present', '出席', NULL), ('M9', 'P3', 'present', '出席', NULL)"],
              [([], None),
               (["INSERT INTO staging.stg_activity_attendance VALUES ('M3', 'P3', 'present', '出席', NULL)",
                 "UPDATE staging.stg_activity_attendance SET status = 'leave', status_name = '请假' "
                 "WHERE meeting_id = 'M1' AND person_no = 'P2'",
                 "DELETE FROM staging.stg_activity_attendance WHERE meeting_id = 'M2' AND person_no = 'P1'"],
                [("M3", "P3"), ("M1", "P2"), ("M2", "P1")]),
               (["UPDATE staging.stg_activity_meetings SET meeting_date = '2025-01-06' WHERE meeting_id = 'M1'",
                 "INSERT INTO warehouse.known_person VALUES ('X9')",
                 "UPDATE warehouse.person_number SET person_key = 'K2b' WHERE person_no = 'P2'",
                 "INSERT INTO quality.quarantine (stage, source, entity, load_id, rule, record_key, detail, original_row) "
                 "VALUES ('staging', 'activity', 'meetings', 'X1', 'missing_value', 'M9', 'no date', '{}')"], None),
               (["UPDATE staging.stg_activity_meetings SET topic = 'z'"], None)])  # nothing the fact reads
STUDY = (["CREATE TABLE staging.stg_learning_courses (course_id VARCHAR, kind VARCHAR, kind_name VARCHAR, "
          "title VARCHAR, hours DECIMAL(6, 1), teacher VARCHAR)",
          "INSERT INTO staging.stg_learning_courses VALUES ('L1', 'video', '视频', '党史', 2, 'a'), "
          "('L2', 'text', '图文', '党章', 1, 'b')",
          "CREATE TABLE staging.stg_learning_study_records (record_id VARCHAR, person_no VARCHAR, course_id VARCHAR, "
          "minutes INTEGER, progress DOUBLE, quiz_score DOUBLE, completed BOOLEAN, started_at TIMESTAMP, "
          "started_on DATE, last_active_at TIMESTAMP, last_active_on DATE)",
          "INSERT INTO staging.stg_learning_study_records VALUES "
          "('R1', 'P1', 'L1', 30, 0.5, NULL, false, '2024-09-03 10:00', '2024-09-03', NULL, NULL), "
          "('R2', 'P2', 'L2', 60, 1, 90, true, '2025-01-10 10:00', '2025-01-10', NULL, NULL), "
          "('R3', 'X9', 'L2', 10, 0.1, NULL, false, '2025-03-01 10:00', '2025-03-01', NULL, NULL), "
          "('R6', 'P2', 'L1', 20, 0.3, NULL, false, '2024-12-01 10:00', '2024-12-01', NULL, NULL), "
          "('R4', 'P3', 'L9', 10, 0.1, NULL, false, '2025-03-01 10:00', '2025-03-01', NULL, NULL)"],
         [([], None),
          (["INSERT INTO staging.stg_learning_study_records VALUES "
            "('R5', 'P3', 'L2', 5, 0.2, NULL, false, '2025-04-01 10:00', '2025-04-01', NULL, NULL)",
            "UPDATE staging.stg_learning_study_records SET minutes = 90, completed = true WHERE record_id = 'R1'",
            "DELETE FROM staging.stg_learning_study_records WHERE record_id = 'R2'"], [("R5",), ("R1",), ("R2",)]),
          (["UPDATE staging.stg_learning_courses SET hours = 3 WHERE course_id = 'L1'",
            "INSERT INTO warehouse.known_person VALUES ('X9')",
            "UPDATE warehouse.person_number SET person_key = 'K1b' WHERE person_no = 'P1'",
            "INSERT INTO quality.quarantine (stage, source, entity, load_id, rule, record_key, detail, original_row) "
            "VALUES ('staging', 'learning', 'courses', 'X1', 'missing_value', 'L9', 'no title', '{}')"], None),
          (["UPDATE staging.stg_learning_courses SET teacher = 'z'"], None)])
DUES = (["CREATE TABLE staging.stg_hr_staff (staff_no VARCHAR, name VARCHAR, staff_status VARCHAR)",
         "INSERT INTO staging.stg_hr_staff VALUES ('P1', 'a', '11'), ('P2', 'b', '01')",  # in post; 退休
         "CREATE TABLE staging.stg_party_members (person_no VARCHAR, category VARCHAR)",
         "INSERT INTO staging.stg_party_members VALUES ('P1', 'student'), ('P3', 'retired')",  # HR wins for P1
         "CREATE TABLE staging.stg_students (student_no VARCHAR)",
         "INSERT INTO staging.stg_students VALUES ('P3'), ('X9')",
         "CREATE TABLE warehouse.known_org (org_code VARCHAR)",
         "INSERT INTO warehouse.known_org VALUES ('O1')",
         "CREATE TABLE staging.stg_party_dues (person_no VARCHAR, name VARCHAR, org_code VARCHAR, month DATE, "
         "base DECIMAL(12, 2), due DECIMAL(12, 2), paid DECIMAL(12, 2), paid_on DATE, source_file VARCHAR, "
         "load_id VARCHAR)",
         "INSERT INTO staging.stg_party_dues VALUES "
         "('P1', 'a', 'O1', '2025-01-01', 4000, 40, 40, '2025-01-10', 'd.csv', 'L1'), "
         "('P2', 'b', 'O1', '2025-01-01', 6000, 60, 60, '2025-01-10', 'd.csv', 'L1'), "
         "('P2', 'b', 'O1', '2025-02-01', 6000, 60, 50, '2025-02-10', 'd.csv', 'L1'), "
         "('P3', 'c', 'O1', '2025-01-01', 3000, 15, 15, '2025-01-10', 'd.csv', 'L1'), "
         "('X9', 'x', 'O1', '2025-01-01', NULL, 0.2, 0.2, '2025-01-10', 'd.csv', 'L1'), "  # unknown person
         "('P1', 'a', 'O9', '2025-02-01', 4000, 40, 40, '2025-02-10', 'd.csv', 'L1')"],  # unknown organisation
        [([], None),
         (["INSERT INTO staging.stg_party_dues VALUES ('P3', 'c', 'O1', '2025-02-01', 3000, 15, 15, '2025-02-10', "
           "'e.csv', 'L2')",
           "UPDATE staging.stg_party_dues SET paid = 30, load_id = 'L2' WHERE person_no = 'P1' AND month = '2025-01-01'",
           "DELETE FROM staging.stg_party_dues WHERE person_no = 'P2' AND month = '2025-01-01'"],
          [("P3", "2025-02-01"), ("P1", "2025-01-01"), ("P2", "2025-01-01")]),
         (["UPDATE staging.stg_hr_staff SET staff_status = '01' WHERE staff_no = 'P1'",  # retires: another band
           "INSERT INTO warehouse.known_person VALUES ('X9')",
           "INSERT INTO warehouse.known_org VALUES ('O9')",
           "UPDATE warehouse.person_number SET person_key = 'K2b' WHERE person_no = 'P2'"], None),
         (["UPDATE staging.stg_hr_staff SET name = 'z'"], None)])  # nothing the fact reads
PEOPLE = ["CREATE TABLE warehouse.known_person (person_no VARCHAR)",
          "INSERT INTO warehouse.known_person VALUES ('P1'), ('P2'), ('P3')",
          "CREATE TABLE warehouse.person_number (person_no VARCHAR, person_key VARCHAR)",
          "INSERT INTO warehouse.person_number VALUES ('P1', 'K1'), ('P2', 'K2')"]


@pytest.mark.parametrize(("name", "case"), [("fact_activity_attendance", ATTENDANCE), ("fact_study_record", STUDY),
                                           ("fact_dues_payment", DUES)])
def test_incremental_fact_on_a_logged_staging_table_equals_a_full_build(tmp_path, name, case):
    from models import delta
    from models.incremental_facts import INCREMENTAL_FACTS

    spec = INCREMENTAL_FACTS[name]
    setup, steps = case
    inc, full = connect(tmp_path / "incremental.duckdb"), connect(tmp_path / "full.duckdb")
    sql = {"fact": f"SELECT * FROM warehouse.{name}",
           "issues": "SELECT * EXCLUDE (found_at, \"values\"), CAST(\"values\" AS VARCHAR) "
                     f"FROM quality.reconciliation_issue WHERE model = '{name}'"}
    modes, seen = [], {}
    for c in (inc, full):
        load_code_sets(c)  # the dues' rate bands and staff statuses
        for s in PEOPLE + setup:
            c.execute(s)
    delta.record(inc, spec.producer, spec.source)  # its first (whole) build
    for n, (changes, keys) in enumerate(steps, 1):
        for c in (inc, full):
            for s in changes:
                c.execute(s)
        if keys:
            values = ", ".join("(" + ", ".join(f"'{v}'" for v in k) + ")" for k in keys)
            delta.record(inc, spec.producer, spec.source, keys=f"(VALUES {values}) t({', '.join(spec.key)})",
                         key_columns=spec.key)
        modes.append(build_fact(inc, name, secret=SECRET)["mode"])
        build_warehouse(full, name, secret=SECRET)
        assert _differences(inc, full, sql) == {}, f"after step {n}"
        for table, q in sql.items():
            seen[table] = seen.get(table, 0) + inc.execute(f"SELECT count(*) FROM ({q})").fetchone()[0]
    assert modes == ["full", "incremental", "incremental", "skipped"]
    assert all(seen.values()), seen
    assert inc.execute(f"SELECT count(*) FROM warehouse.{name} WHERE person_no = 'X9'").fetchone()[0] == 1
    inc.close()
    full.close()
