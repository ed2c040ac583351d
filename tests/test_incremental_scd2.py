"""The party members' SCD2 dimension built incrementally (models/incremental_scd2.py) equals a whole build,
table by table (``warehouse.dim_party_member`` and its rows of ``quality.reconciliation_issue``), after a
sequence of exports on a copy of the small campus's warehouse: a member export with people gone, moved,
promoted and new; a development export with a stage change; lookups that change (a political status in
HR, a person_key); nothing new (skipped); an export the same as the one before (no one touched); and an
export older than those taken in (whole)."""

from __future__ import annotations

from collections import Counter

import pytest

from hub.warehouse import connect
from models.build import build_warehouse
from models.incremental_scd2 import build_scd2

SECRET = "incremental-scd2-test"
NAME = "dim_party_member"
SQL = {"dim": f"SELECT * FROM warehouse.{NAME}",
       "issues": "SELECT * EXCLUDE (found_at, \"values\"), CAST(\"values\" AS VARCHAR) "
                 f"FROM quality.reconciliation_issue WHERE model = '{NAME}'"}


def _export(register: str, load: str, days: int, edits: list[str]) -> list[str]:
    """A new export of a register: the latest one again (``days`` after it, or before when negative), with
    ``edits`` (SQL on the temporary table ``_x``) applied."""
    history, loads = f"staging.stg_party_{register}_history", f"staging.stg_party_{register}_loads"
    latest = f"(SELECT load_id FROM {loads} ORDER BY seen_at DESC LIMIT 1)"
    return [f"CREATE OR REPLACE TEMP TABLE _x AS SELECT * REPLACE ('{load}' AS load_id, "
            f"seen_at + INTERVAL ({days}) DAY AS seen_at) FROM {history} WHERE load_id = {latest}",
            *edits,
            f"INSERT INTO {loads} SELECT '{load}', max(seen_at) + INTERVAL ({days}) DAY FROM {loads}",
            f"INSERT INTO {history} BY NAME SELECT * FROM _x"]


def _nth(register: str, n: int) -> str:
    """The person_no of the n-th person of the register's export being edited."""
    return f"(SELECT person_no FROM _x ORDER BY person_no LIMIT 1 OFFSET {n})"


STEPS = [
    ([], "full"),
    (_export("members", "M2", 30, [
        f"DELETE FROM _x WHERE person_no IN ({_nth('members', 0)}, {_nth('members', 1)})",      # gone
        f"UPDATE _x SET org_code = 'X-ORG' WHERE person_no = {_nth('members', 2)}",               # moved
        f"UPDATE _x SET member_type = 'full', full_on = DATE '2026-06-01' WHERE person_no = {_nth('members', 3)}",
        "INSERT INTO _x BY NAME SELECT * REPLACE ('NEW-1' AS person_no) FROM _x LIMIT 1"]),     # new
     "incremental"),
    (_export("development", "D2", 30, [
        f"UPDATE _x SET stage = 'candidate', candidate_on = DATE '2026-06-01' WHERE person_no = {_nth('d', 0)}",
        f"DELETE FROM _x WHERE person_no = {_nth('d', 1)}"]), "incremental"),
    (["UPDATE staging.stg_hr_staff SET political_status = '13' WHERE staff_no = "
      "(SELECT min(person_no) FROM warehouse.dim_party_member WHERE is_current AND register = 'member' "
      " AND person_no IN (SELECT staff_no FROM staging.stg_hr_staff))",
      "UPDATE warehouse.person_number SET person_key = 'changed-key' WHERE person_no = "
      "(SELECT max(person_no) FROM warehouse.dim_party_member WHERE is_current AND person_key IS NOT NULL)"],
     "incremental"),
    ([], "skipped"),
    (_export("members", "M3", 30, []), "incremental"),                                          # no one changed
    (_export("members", "M0", -400, []), "full"),                                               # older
]


@pytest.fixture
def pair(tmp_path, copy_campus_warehouse):
    inc = connect(copy_campus_warehouse(tmp_path / "incremental.duckdb"))
    full = connect(copy_campus_warehouse(tmp_path / "full.duckdb"))
    inc.execute("DELETE FROM meta.scd2_state")  # the fixture's build kept its state: start with none
    yield inc, full
    inc.close()
    full.close()


def _rows(con, sql: str) -> Counter:
    return Counter(map(repr, con.execute(sql).fetchall()))


def test_incremental_scd2_equals_a_whole_build_after_a_sequence_of_exports(pair):
    inc, full = pair
    modes, touched = [], []
    for n, (changes, _mode) in enumerate(STEPS):
        for c in pair:
            for s in changes:
                c.execute(s)
        stats = build_scd2(inc, NAME, secret=SECRET)
        build_warehouse(full, NAME, secret=SECRET)
        modes.append(stats["mode"])
        touched.append((stats["keys_touched"] or {}).get("person_no touched"))
        for what, sql in SQL.items():
            got, want = _rows(inc, sql), _rows(full, sql)
            assert got == want, f"after step {n}: {what}: {sum((got - want).values())} rows only incremental, " \
                                f"{sum((want - got).values())} only whole"
    assert modes == [mode for _, mode in STEPS]
    # the member export touched the 2 gone, the moved, the promoted and the new person, no one else
    assert touched[1] == 5 and touched[2] == 2 and touched[3] == 2 and touched[5] == 0, touched
    versions = inc.execute(f"SELECT count(*) FILTER (WHERE status = 'absent_from_export'), "
                           f"count(*) FILTER (WHERE person_no = 'NEW-1') FROM warehouse.{NAME}").fetchone()
    assert versions[0] >= 2 and versions[1] >= 1
    assert inc.execute("SELECT count(*) FROM quality.reconciliation_issue WHERE model = ?", [NAME]).fetchone()[0]


def test_a_full_rebuild_is_asked_for_and_the_sql_is_part_of_the_state(pair):
    inc, _ = pair
    assert build_scd2(inc, NAME, secret=SECRET)["mode"] == "full"
    assert build_scd2(inc, NAME, secret=SECRET)["mode"] == "skipped"
    assert build_scd2(inc, NAME, secret=SECRET, full=True)["reason"] == "full rebuild requested"
    inc.execute("UPDATE meta.scd2_state SET fingerprint = 'other' WHERE model = ?", [NAME])
    assert build_scd2(inc, NAME, secret=SECRET)["reason"].startswith("model SQL or the code sets it reads changed")


def test_a_changed_staging_model_under_the_histories_rebuilds_it_whole(pair, monkeypatch):
    """The histories are rewritten for every export when their staging model's SQL changes: whole."""
    from dataclasses import replace

    from models import build as build_module

    inc, _ = pair
    assert build_scd2(inc, NAME, secret=SECRET)["mode"] == "full"
    assert build_scd2(inc, NAME, secret=SECRET)["mode"] == "skipped"
    model = build_module.STAGING_MODELS["stg_party_development"]
    monkeypatch.setitem(build_module.STAGING_MODELS, "stg_party_development",
                        replace(model, sql=model.sql + "\n-- a change"))
    assert build_scd2(inc, NAME, secret=SECRET)["reason"].startswith("model SQL or the code sets it reads changed")
