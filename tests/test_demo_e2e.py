"""The demo path end to end at a small scale: simulate, serve, run through Dagster, publish."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from rich.console import Console
from stdnum.iso7064 import mod_11_2

from hub.settings import PROJECT_ROOT, Settings
from hub.warehouse import connect
from tests.conftest import SEED, SMALL_SCALE

pytestmark = pytest.mark.slow

# Alphanumeric boundaries: a run of digits inside a hex key is not a phone number; one after Chinese text is.
ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
                   r"[0-9]{3}[0-9Xx](?![0-9A-Za-z])")
MOBILE_RE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")


def _clear_personal_numbers(value: str) -> list[str]:
    ids = [m.group(0) for m in ID_RE.finditer(value) if mod_11_2.is_valid(m.group(0).upper())]
    return ids + MOBILE_RE.findall(value)


def test_scanner_finds_numbers_in_text_but_not_inside_keys():
    assert _clear_personal_numbers("联系电话13812345678") == ["13812345678"]
    assert _clear_personal_numbers("身份证360426199101010071。") == ["360426199101010071"]
    assert _clear_personal_numbers("4B1F9D0C9E7C25DA538F16269801653E") == []
    assert _clear_personal_numbers("360426199101010072") == []  # fails the checksum: not an ID number


def _env(tmp_path: Path, campus_dir: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    var = tmp_path / "var"
    var.mkdir()
    shutil.copytree(campus_dir, var / "campus")
    return {"HUB_VAR_DIR": str(var), "DAGSTER_HOME": str(home), "HUB_PERSON_KEY_SECRET": "test-secret"}


def _snapshot(warehouse: Path) -> dict[str, tuple]:
    """Row count and an order-independent content hash of every table the demo builds."""
    con = connect(warehouse, read_only=True)
    try:
        out = {}
        for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                         "WHERE schema_name IN ('raw', 'staging', 'warehouse')").fetchall():
            cols = [r[0] for r in con.execute(f'DESCRIBE {schema}."{table}"').fetchall()
                    if r[0] not in ("_load_id", "_extracted_at", "load_id")]
            expr = ", ".join(f'"{c}"' for c in cols)
            out[f"{schema}.{table}"] = con.execute(
                f'SELECT count(*), sum(hash({expr})::HUGEINT) FROM {schema}."{table}"').fetchone()
        quarantine = con.execute("SELECT stage, source, entity, rule, count(*) FROM quality.quarantine "
                                 "GROUP BY ALL ORDER BY ALL").fetchall()
        return {"tables": out, "quarantine": quarantine}
    finally:
        con.close()


def _jsonl_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _source_row_counts(campus: Path) -> dict[str, int]:
    """Rows each campus system holds, counted independently of the connectors (openpyxl, csv, sqlite3)."""
    import csv
    import sqlite3

    import openpyxl

    counts = {
        "hr__staff": _jsonl_rows(campus / "hr" / "staff.jsonl"),
        "student__students": _jsonl_rows(campus / "student" / "students.jsonl"),
        "activity__meetings": _jsonl_rows(campus / "activity" / "meetings.jsonl"),
        "activity__attendance": _jsonl_rows(campus / "activity" / "attendance.jsonl"),
        "learning__courses": _jsonl_rows(campus / "learning" / "courses.jsonl"),
        "learning__study_records": _jsonl_rows(campus / "learning" / "study_records.jsonl"),
    }
    with sqlite3.connect(campus / "academic" / "academic.sqlite") as db:
        counts["academic__courses"] = db.execute("SELECT count(*) FROM jw_kc").fetchone()[0]
        counts["academic__grades"] = db.execute("SELECT count(*) FROM jw_cj").fetchone()[0]
    exports = campus / "party" / "exports"
    patterns = {"party__orgs": "党组织信息*.xlsx", "party__members": "党员信息*.xlsx",
                "party__development": "发展党员*.csv", "party__dues": "党费缴纳_*.csv",
                "party__transfers": "组织关系转接*.xlsx", "party__assessments": "民主评议_*.xlsx"}
    for table, pattern in patterns.items():
        n = 0
        for path in exports.glob(pattern):
            if path.suffix == ".csv":
                n += sum(1 for _ in csv.reader(path.read_text(encoding="gb18030").splitlines())) - 1
            else:
                ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
                n += sum(1 for row in ws.iter_rows(min_row=2, values_only=True) if any(v is not None for v in row))
        counts[table] = n
    return counts


def test_demo_twice_leaves_the_same_warehouse(tmp_path, campus_dir, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    from hub.demo import demo

    for k, v in _env(tmp_path, campus_dir).items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env()
    out = io.StringIO()
    console = Console(file=out, width=160)
    with DagsterInstance.get() as instance:
        first = demo(settings, scale=SMALL_SCALE, seed=SEED, console=console, instance=instance)
        assert first.success, out.getvalue()
        snap1 = _snapshot(settings.warehouse_path)
        catalog1 = json.loads((settings.published_root / "catalog.json").read_text(encoding="utf-8"))

        second = demo(settings, scale=SMALL_SCALE, seed=SEED, console=console, instance=instance)
        assert second.success, out.getvalue()
        assert second.nothing_new and "Nothing new at the sources" in out.getvalue(), \
            "with nothing new only the raw loads run; nothing downstream is shown as rebuilt"
        assert _snapshot(settings.warehouse_path) == snap1, "a rerun must not add, drop or change rows"
        catalog2 = json.loads((settings.published_root / "catalog.json").read_text(encoding="utf-8"))
        assert {k: v["current_version"] for k, v in catalog2["datasets"].items()} == \
               {k: v["current_version"] for k, v in catalog1["datasets"].items()}, "same data, same version"

        runs = instance.get_runs(RunsFilter(job_name="campus_main_job", statuses=[DagsterRunStatus.SUCCESS]))
        assert len(runs) == 2, "both runs are in the instance the UI reads (the second: raw loads only)"
        assert {k.path[0] for k in instance.get_run_by_id(second.run_id).asset_selection} == {"raw", "settings"}

    # A record breaking an error-severity business rule is held back from the national development table.
    con = connect(settings.warehouse_path, read_only=True)
    try:
        held = {r[0] for r in con.execute("SELECT DISTINCT record_key FROM quality.rule_violation "
                                          "WHERE severity = 'error'").fetchall()}
    finally:
        con.close()
    entry = catalog2["datasets"]["zt_dyfzsj"]
    manifest = json.loads((settings.published_root / entry["manifest"]).read_text(encoding="utf-8"))
    published = {r[0] for r in duckdb.sql(
        f"SELECT rybh FROM read_parquet('{settings.published_root / 'zt_dyfzsj' / manifest['version']}/data/*.parquet')"
    ).fetchall()}
    assert held and not held & published and manifest["quality"]["records_held_back"] == len(held)

    tables = snap1["tables"]
    assert tables["raw.hr__staff"][0] == _jsonl_rows(settings.campus_dir / "hr" / "staff.jsonl")
    assert tables["warehouse.dim_person"][0] > 0 and tables["warehouse.dim_party_org"][0] > 0
    assert {"person_directory", "party_organisations", "person_registry_restricted"} <= set(catalog1["datasets"])
    text = out.getvalue()
    assert "Loads in this run" in text and "Quarantined" in text and "Published" in text


def test_cli_demo_with_faults_gets_every_row_once_and_publishes_no_clear_ids(tmp_path, campus_dir):
    env = {**os.environ, **_env(tmp_path, campus_dir)}
    # Output to a file, not a pipe: Dagster's compute-log capture can leave `tail -F` helpers behind for a
    # while, and a pipe they inherited would keep the test waiting after the demo itself has exited.
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "hub.cli", "demo", "--scale", str(SMALL_SCALE), "--seed",
                               str(SEED), "--faults", "0.2"], env=env, cwd=PROJECT_ROOT, stdout=out,
                              stderr=subprocess.STDOUT, text=True, timeout=600)
    output = log.read_text(encoding="utf-8")
    assert proc.returncode == 0, output[-6000:]
    assert "campus_main_job succeeded" in output
    settings = Settings.from_env(env)
    con = connect(settings.warehouse_path, read_only=True)
    try:
        retries = con.execute("SELECT sum(retries) FROM quality.load_audit").fetchone()[0]
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'")
                  .fetchall()]
        counts = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in tables}
    finally:
        con.close()
    assert retries > 0, "with 20% faults the connectors must have retried"
    assert counts == _source_row_counts(settings.campus_dir), "every row of every system exactly once"

    # Personal numbers never leave the warehouse in clear: scan every value of every published file;
    # the only exception is an encrypted dataset, which must be unreadable without its key.
    catalog = json.loads((settings.published_root / "catalog.json").read_text(encoding="utf-8"))
    scanned = 0
    for name, entry in catalog["datasets"].items():
        manifest = json.loads((settings.published_root / entry["manifest"]).read_text(encoding="utf-8"))
        for f in manifest["files"]:
            path = settings.published_root / name / manifest["version"] / f["path"]
            if manifest["encrypted"]:
                with pytest.raises(duckdb.Error):
                    duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
                assert not _clear_personal_numbers(path.read_bytes().decode("latin-1")), f"clear number in {path}"
                continue
            for row in duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall():
                for value in row:
                    if isinstance(value, str):
                        assert not _clear_personal_numbers(value), f"clear ID or mobile number in {path}"
            scanned += 1
    assert scanned >= 2 and any(e["encrypted"] for e in catalog["datasets"].values())
