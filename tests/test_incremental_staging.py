"""Incremental staging (models/incremental.py) gives the same tables as a full build, table by table (the
staging table and the model's rows in quality.quarantine, quality.superseded, quality.value_finding and
quality.reconciliation_issue), after a sequence of raw loads: new grades, corrected grades, duplicates and
conflicts that appear and are resolved, keys that differ only by spaces (ASCII and full-width), two versions
of one key in one load (the older superseded, then replaced by a later load), a missing key value, values the
plausibility checks quarantine or flag; and a code-set or plausibility change that forces a full build."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.build import STAGING_MODELS, build_staging
from models.incremental import build_staging_incremental
from models.plausibility import load_checks
from models.row_rules import conservation

COLS = "t(id, xh, kch, xnxq, cj, ksxz, updated_at, _row_number)"

# Each load: rows (id, 学号, 课程号, 学年学期, 成绩, 考试性质, updated_at, row number).
LOADS = [
    [("1", "S1", "C1", "2024-2025-1", "80", "正常考试", "2025-01-10 10:00:00", 1),
     ("2", "S1", "C2", "2024-2025-1", "良好", "正常考试", "2025-01-10 10:00:00", 2),
     ("3", "S2", "C1", "2024-2025-1", "55", "正常考试", "2025-01-10 10:00:00", 3),
     ("4", "S2", "C1", "2024-2025-1", "55", "正常考试", "2025-01-10 10:00:00", 4),    # duplicate of id 3
     ("5", "S3", "C1", "2024-2025-1", "70", "正常考试", "2025-01-10 10:00:00", 5),
     ("6", "S3", "C1", "2024-2025-1", "71", "正常考试", "2025-01-10 10:00:00", 6),    # conflict with id 5
     ("7", "S4", "C1", "2024-2025-1", "66", "期中考试", "2025-01-10 10:00:00", 7),    # unmapped exam type
     ("8", "S5", "C9", "2024-2025-1", "8O", "正常考试", "2025-01-10 10:00:00", 8)],   # unparseable score
    [("1", "S1", "C1", "2024-2025-1", "82", "正常考试", "2025-02-01 09:00:00", 1),    # corrected
     ("5", "S3", "C1", "2024-2025-1", "70", "正常考试", "2025-02-01 09:00:00", 2),    # conflict resolved
     ("9", "S2", "C1", "2024-2025-1", "58", "补考", "2025-02-01 09:00:00", 3),        # a new grade
     ("10", "S1 ", "C1", "2024-2025-1", "90", "正常考试", "2025-02-01 09:00:00", 4),  # same key, with a space
     ("13", "S7", "C1", "2024-2025-1", "60", "正常考试", "2025-02-01 08:00:00", 5),   # superseded by id 14
     ("14", "S7", "C1", "2024-2025-1", "65", "正常考试", "2025-02-01 09:30:00", 6),
     ("15", " ", "C1", "2024-2025-1", "75", "正常考试", "2025-02-01 09:00:00", 7),    # 学号 blank: missing_value
     ("16", "S8", "C1", "2024-2025-1", "75", "正常考试", "2025-02-30 09:00:00", 8),   # no such date: quarantined
     ("17", "S8", "C\u200b3", "2024-2025-1", "75", "正常考试", "2025-02-01 09:00:00", 9),  # flagged, kept
     ("18", "S9", "C1", "2024-2025-1", "61", "正常考试", "2025-02-01 08:00:00", 10),  # superseded by id 19,
     ("19", "S9", "C1", "2024-2025-1", "62", "正常考试", "2025-02-01 09:00:00", 11),  # and stays so
     ("20", " S10", None, "2024-2025-1", "70", "正常考试", "2025-02-01 09:00:00", 12)],  # no 课程号, spaced 学号
    [("8", "S5", "C9", "2024-2025-1", "80", "正常考试", "2025-03-01 09:00:00", 1),    # fixed at the source
     ("11", "S6", "C2", "2024-2025-2", "不及格", "正常考试", "2025-03-01 09:00:00", 2),
     ("12", "S6", "C2", "2024-2025-2", "不及格", "正常考试", "2025-03-01 09:00:00", 3),  # duplicate
     ("1", "S1", "C1", "2024-2025-1", "84", "正常考试", "2025-03-01 09:00:00", 4),    # the spaced key goes
     ("14", "S7", "C1", "2024-2025-1", "66", "正常考试", "2025-03-01 09:00:00", 5),   # nothing superseded now
     ("3", "S2\u3000", "C1", "2024-2025-1", "56", "正常考试", "2025-03-01 09:00:00", 6),  # full-width space
     ("16", "S8", "C1", "2024-2025-1", "76", "正常考试", "2025-03-01 09:00:00", 7),  # date fixed
     ("21", "S11", None, "2024-2025-1", "70", "正常考试", "2025-03-01 09:00:00", 8)],  # another key with a NULL
    [],  # nothing new
]


def _lit(v) -> str:
    """A SQL literal written out, not repr (which escapes the full-width and zero-width spaces)."""
    if v is None:
        return "NULL"
    return str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"


def _land(con, load_no: int, rows: list[tuple]) -> None:
    meta = (f"'L{load_no}' AS _load_id, 'academic' AS _source, TIMESTAMPTZ '2025-01-01' + INTERVAL {load_no} DAY "
            "AS _extracted_at, NULL AS _row_hash, NULL AS _file")
    values = ", ".join("(" + ", ".join(_lit(v) for v in r) + ")" for r in rows)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' "
                       "AND table_name = 'academic__grades'").fetchone()[0]:
        con.execute(f"CREATE TABLE raw.academic__grades AS SELECT *, {meta} FROM (VALUES {values}) {COLS}")
    elif rows:
        con.execute(f"INSERT INTO raw.academic__grades SELECT *, {meta} FROM (VALUES {values}) {COLS}")


# grades have no plausibility checks in quality/plausibility.yaml; these exercise both severities
PLAUSIBILITY = """stg_academic_grades:
  source_updated_at: {kind: valid_date, raw: updated_at, severity: quarantine}
  course_code:       {kind: text, raw: kch, severity: flag}
"""


def _rows(con, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def _tables(con) -> dict[str, list[tuple]]:
    return {
        "staging.stg_academic_grades": sorted(con.execute(
            "SELECT * FROM staging.stg_academic_grades").fetchall(), key=repr),
        "quality.quarantine": sorted(con.execute(
            "SELECT stage, source, entity, load_id, rule, record_key, detail, CAST(original_row AS VARCHAR) "
            "FROM quality.quarantine WHERE entity = 'grades'").fetchall(), key=repr),
        "quality.superseded": _rows(con, "SELECT * EXCLUDE (superseded_at, original_row), "
                                         "CAST(original_row AS VARCHAR) FROM quality.superseded "
                                         "WHERE model = 'stg_academic_grades'"),
        "quality.value_finding": _rows(con, "SELECT * EXCLUDE (found_at) FROM quality.value_finding "
                                            "WHERE model = 'stg_academic_grades'"),
        "quality.reconciliation_issue": _rows(con, "SELECT * EXCLUDE (found_at, \"values\"), "
                                                   "CAST(\"values\" AS VARCHAR) FROM quality.reconciliation_issue "
                                                   "WHERE model = 'stg_academic_grades'"),
    }


@pytest.fixture
def checks(tmp_path: Path):
    """The plausibility checks of these tests' runs (a run's come from run_settings.plausibility_file)."""
    config = tmp_path / "plausibility.yaml"
    config.write_text(PLAUSIBILITY, encoding="utf-8")
    return load_checks(config)




def test_incremental_equals_full_after_a_sequence_of_loads(pair, checks):
    inc, full = pair
    modes, superseded, seen = [], [], {}
    for n, rows in enumerate(LOADS, 1):
        for c in pair:
            _land(c, n, rows)
        stats = build_staging_incremental(inc, "stg_academic_grades", checks=checks)
        full_stats = build_staging(full, "stg_academic_grades", checks=checks)
        modes.append(stats["mode"])
        superseded.append(stats["rows_superseded"])
        got, want = _tables(inc), _tables(full)
        for table in want:
            assert got[table] == want[table], f"after load {n}: {table} differs"
            seen[table] = seen.get(table, 0) + len(want[table])
        assert full_stats["rows_superseded"] == len(want["quality.superseded"])
        c = conservation(inc, STAGING_MODELS["stg_academic_grades"])
        assert c["latest_raw_versions"] == c["staged"] + c["quarantined"] + c["superseded"], f"after load {n}"
    assert modes == ["full", "incremental", "incremental", "skipped"]
    assert superseded == [0, 2, 0, 0]  # of the keys rebuilt: load 3 leaves S9's (load 2) as it was
    assert all(seen.values()), f"the loads never exercised some table: {seen}"
    accepted = dict(inc.execute("SELECT grade_id, score FROM staging.stg_academic_grades").fetchall())
    assert accepted[5] == 70.0 and 2 in accepted and 8 in accepted and accepted[16] == 76.0
    assert accepted[3] == 56.0  # 'S2　' is S2: the full-width space came off, the key recomputed


def test_a_code_set_change_forces_a_full_build_and_the_flag_too(pair, checks):
    inc, _ = pair
    _land(inc, 1, LOADS[0])
    assert build_staging_incremental(inc, "stg_academic_grades", checks=checks)["mode"] == "full"
    # 期中考试 becomes a known exam type: every key may change, so the next build is full
    inc.execute("INSERT INTO staging.code_map VALUES ('academic', 'exam_type', '期中考试', 'midterm')")
    stats = build_staging_incremental(inc, "stg_academic_grades", checks=checks)
    assert stats["mode"] == "full" and "code sets" in stats["reason"]
    assert inc.execute("SELECT count(*) FROM staging.stg_academic_grades WHERE exam_type = 'midterm'").fetchone()[0] == 1
    assert build_staging_incremental(inc, "stg_academic_grades", checks=checks)["mode"] == "skipped"
    assert build_staging_incremental(inc, "stg_academic_grades", full=True, checks=checks)["mode"] == "full"


def test_a_plausibility_change_forces_a_full_build(pair, tmp_path, checks):
    inc, _ = pair
    _land(inc, 1, LOADS[0])
    assert build_staging_incremental(inc, "stg_academic_grades", checks=checks)["mode"] == "full"
    assert build_staging_incremental(inc, "stg_academic_grades", checks=checks)["mode"] == "skipped"
    # a check's severity changes: every key may be judged differently
    other = tmp_path / "other.yaml"
    other.write_text(PLAUSIBILITY.replace("severity: flag", "severity: quarantine"), encoding="utf-8")
    stats = build_staging_incremental(inc, "stg_academic_grades", checks=load_checks(other))
    assert stats["mode"] == "full" and "plausibility" in stats["reason"]
