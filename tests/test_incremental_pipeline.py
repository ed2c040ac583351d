"""The whole path, incremental against full (issue #17): on the small simulated campus, the real job as
``hub demo`` runs it (hub.demo.run_main_job: a whole first run, then the raw loads and one run of what is
downstream of the tables that changed), after a day of changes at the sources (campus_sim/changes.py:
new and corrected grades, updated students, a new party development export, the latest dues export sent
again with other amounts). A copy of that warehouse is then rebuilt with ``full_rebuild`` (the flag the
launchpad's ``run_settings.full_rebuild`` and ``HUB_FULL_REBUILD`` set), every staging, warehouse and mart
model whole, from the same raw zone. Both give the same tables, table by table: every staging, warehouse
and mart table and the rows the models write to quality.quarantine, quality.superseded,
quality.value_finding and quality.reconciliation_issue (less the times they were written)."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from rich.console import Console

from campus_sim.changes import change_sources
from tests.campus_graph import environment, materialise, served_campus
from tests.conftest import SEED

pytestmark = pytest.mark.slow

MODEL_SCHEMAS = ("staging", "warehouse", "marts")
QUALITY = {"quarantine": "quarantined_at", "superseded": "superseded_at", "value_finding": "found_at",
           "reconciliation_issue": "found_at"}


def _tables(path: Path) -> dict[str, list]:
    """Every model table's rows (a Counter of rows as text) by name."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [f"{s}.{t}" for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
            f"AND schema_name IN {MODEL_SCHEMAS} ORDER BY 1, 2").fetchall()]
        out = {}
        for name in names:
            out[name] = Counter(map(repr, con.execute(f"SELECT * FROM {name}").fetchall()))
        for table, written_at in QUALITY.items():
            out[f"quality.{table}"] = Counter(map(repr, con.execute(
                f'SELECT * EXCLUDE ("{written_at}") FROM quality.{table}').fetchall()))
        return out
    finally:
        con.close()


def _latest(instance: dg.DagsterInstance, path: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(path.split("/")))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_an_incremental_run_after_a_day_of_changes_equals_a_full_rebuild(tmp_path, campus_dir):
    from hub.demo import run_main_job
    from hub.settings import Settings

    campus = tmp_path / "campus"
    shutil.copytree(campus_dir, campus)  # the changes edit the sources: not the shared campus
    out = io.StringIO()
    console = Console(file=out, width=160)
    work = tmp_path / "work"
    with dg.DagsterInstance.ephemeral() as instance:
        with served_campus(campus, work):
            first = run_main_job(Settings.from_env(), console=console, instance=instance)
        assert first.success and not first.blocking_checks, out.getvalue()
        # Two days of changes. The first also moves the as-of date of the past_date checks from none (the
        # first run staged before any fact held a date) to the data's, so students, staff and dues are
        # judged anew, whole; on the second day every model with a change log takes its incremental path.
        dim = {}
        for day in (1, 2):
            changed = change_sources(campus, work / "inbox" / "party", SEED + day, dues=day)
            assert all(changed.values()), changed
            with served_campus(campus, work):  # the servers read the changed sources when they start
                settings = Settings.from_env()
                run = run_main_job(settings, console=console, instance=instance)
            assert run.success and not run.blocking_checks, out.getvalue()
            dim[day] = _latest(instance, "warehouse/dim_party_member")
        # the party members' SCD2: whole on day 1 (the as-of date their staging's past_date checks judge at
        # moved from none to the data's), skipped on day 2 (no new export of theirs, nothing they read)
        assert dim[1]["build_mode"] == "full" and "as-of date" in dim[1]["build_reason"], dim[1]
        assert dim[2]["build_mode"] == "skipped", dim[2]
        for asset in ("staging/stg_academic_grades", "staging/stg_students", "staging/stg_party_dues",
                      "warehouse/fact_course_grade", "warehouse/fact_student_term_gpa",
                      "warehouse/fact_dues_payment"):
            meta = _latest(instance, asset)
            assert meta["build_mode"] == "incremental", (asset, meta["build_mode"], meta["build_reason"])
        assert _latest(instance, "warehouse/fact_dues_payment")["rows_inserted"] >= changed["dues"]
        # the snapshots patched the grade facts from their change log (pipelines/snapshot.py)
        snapshot = _latest(instance, "publish/analyst_snapshot")
        assert snapshot["tables_patched"] >= 2 and snapshot["restricted_tables_patched"] >= 2, snapshot

        incremental = Path(settings.warehouse_path)
        full = tmp_path / "full.duckdb"
        shutil.copyfile(incremental, full)
        with served_campus(campus, work), environment({"HUB_FULL_REBUILD": "1"}):
            result = materialise(dg.AssetSelection.key_prefixes(*([s] for s in MODEL_SCHEMAS)), warehouse=full,
                                 checks=False)
        modes = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata.get("build_mode")
                 for e in result.get_asset_materialization_events()}
        assert modes["staging/stg_party_dues"].value == "full" and modes["warehouse/fact_dues_payment"].value == "full"

    got = _tables(incremental)
    for copy in (settings.snapshot_path, settings.restricted_snapshot_path):  # and hold what the warehouse does
        con = duckdb.connect(str(copy), read_only=True)
        try:
            for fact in ("fact_course_grade", "fact_student_term_gpa"):
                held = Counter(map(repr, con.execute(f"SELECT * FROM warehouse.{fact}").fetchall()))
                assert held == got[f"warehouse.{fact}"], (copy, fact)
        finally:
            con.close()
    want = _tables(full)
    assert set(got) == set(want)
    differ = {name: (sum((got[name] - want[name]).values()), sum((want[name] - got[name]).values()))
              for name in want if got[name] != want[name]}
    assert not differ, f"incremental - full, full - incremental rows per table: {differ}"
    assert sum(map(len, want.values())) > 0 and all(want[f"warehouse.{t}"] for t in (
        "fact_course_grade", "fact_dues_payment", "dim_person", "dim_party_member"))
    # the day's changes are in both: a cross-load finding names the dues export sent twice
    assert any("cross_load_conflict" in row for row in want["quality.reconciliation_issue"])
