"""Incremental staging benchmark: for each incremental staging model (models/incremental.py), on a copy of a
built warehouse (``hub demo`` leaves one), the cost of taking in a new raw load of about 1% of the model's
raw rows incrementally beside a full rebuild of the same data, and whether the two give the same tables.

Per model: a full build first (its watermark set), then a new raw load of ``--percent`` of the raw rows
(a random sample of the latest load's rows, re-sent with a new load id and a later extraction time, one
value column changed on half of them), then the incremental build (timed), then a full rebuild on a second
copy holding the same raw rows (timed), then the staging table and the model's quarantine, superseded,
value-finding and reconciliation rows compared by ``EXCEPT ALL`` both ways. Times are wall seconds and
the process's CPU seconds (DuckDB's threads included: on a shared machine the steadier figure).

Usage::

    HUB_VAR_DIR=/tmp/stg-var .venv/bin/hub demo --scale 1
    .venv/bin/python benchmarks/staging_incremental.py /tmp/stg-var/warehouse.duckdb --percent 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.raw_zone import q  # noqa: E402
from hub.warehouse import connect  # noqa: E402
from models.build import STAGING_MODELS, build_staging  # noqa: E402
from models.incremental import INCREMENTAL_STAGING, build_staging_incremental  # noqa: E402
from models.plausibility import load_checks  # noqa: E402

AS_OF = date(2025, 6, 30)  # fixed, so that a past_date check does not move with the data between builds


def _timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _new_load(con, name: str, percent: float) -> int:
    """A new raw load of ``percent`` of the raw rows: sampled from the latest load, half with a changed value."""
    m = STAGING_MODELS[name]
    raw = f"raw.{q(m.raw_table)}"
    cols = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {raw})").fetchall()]
    keys = set(m.primary_key)
    value = next(c for c in cols if not c.startswith("_") and c not in keys)
    select = ", ".join(
        "'bench-' || _load_id AS _load_id" if c == "_load_id" else
        "_extracted_at + INTERVAL 1 DAY AS _extracted_at" if c == "_extracted_at" else
        f"CASE WHEN _row_number % 2 = 0 THEN {q(c)} || 'x' ELSE {q(c)} END AS {q(c)}" if c == value else q(c)
        for c in cols)
    con.execute(f"""INSERT INTO {raw} SELECT {select} FROM (
        SELECT * FROM {raw} WHERE _load_id = (SELECT arg_max(_load_id, _extracted_at) FROM {raw})
        USING SAMPLE {percent}% (bernoulli, 17))""")
    return con.execute(f"SELECT count(*) FROM {raw} WHERE starts_with(_load_id, 'bench-')").fetchone()[0]


def _differences(a, b_path: Path, name: str) -> int:
    m = STAGING_MODELS[name]
    a.execute(f"ATTACH '{b_path}' AS other (READ_ONLY)")
    tables = [(f"staging.{q(name)}", "true"),
              ("quality.quarantine", f"source = '{m.source}' AND entity = '{m.entity}'"),
              ("quality.superseded", f"model = '{name}'"), ("quality.value_finding", f"model = '{name}'"),
              ("quality.reconciliation_issue", f"model = '{name}'")]
    drop = {"quality.superseded": " EXCLUDE (superseded_at)", "quality.value_finding": " EXCLUDE (found_at)",
            "quality.reconciliation_issue": " EXCLUDE (found_at)"}
    diff = 0
    for table, where in tables:
        cols = drop.get(table, "")
        one = f"SELECT *{cols} FROM {table} WHERE {where}"
        two = f"SELECT *{cols} FROM other.{table} WHERE {where}"
        if table == "quality.quarantine":
            one, two = (s.replace("SELECT *", "SELECT * EXCLUDE (quarantined_at)") for s in (one, two))
        diff += a.execute(f"SELECT count(*) FROM (({one}) EXCEPT ALL ({two}))").fetchone()[0]
        diff += a.execute(f"SELECT count(*) FROM (({two}) EXCEPT ALL ({one}))").fetchone()[0]
    a.execute("DETACH other")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path, help="a built warehouse.duckdb (copied, never changed)")
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--models", nargs="*", default=sorted(INCREMENTAL_STAGING))
    args = parser.parse_args()
    checks = load_checks()
    print("| model | raw rows | new load rows | keys touched | incremental wall / CPU s | full wall / CPU s "
          "| rows differing |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            inc_path, full_path = Path(tmp) / "inc.duckdb", Path(tmp) / "full.duckdb"
            shutil.copyfile(args.warehouse, inc_path)
            con = connect(inc_path)
            build_staging_incremental(con, name, full=True, checks=checks, as_of=AS_OF)
            rows = _new_load(con, name, args.percent)
            total = con.execute(f"SELECT count(*) FROM raw.{q(STAGING_MODELS[name].raw_table)}").fetchone()[0]
            con.execute("CHECKPOINT")
            con.close()
            shutil.copyfile(inc_path, full_path)
            con = connect(inc_path)
            stats, inc_wall, inc_cpu = _timed(build_staging_incremental, con, name, checks=checks,
                                                as_of=AS_OF)
            other = connect(full_path)
            _, full_wall, full_cpu = _timed(build_staging, other, name, checks=checks, as_of=AS_OF)
            other.close()
            diff = _differences(con, full_path, name)
            con.close()
            print(f"| {name} | {total:,} | {rows:,} | {stats['keys_touched']:,} ({stats['mode']}) | "
                  f"{inc_wall:.2f} / {inc_cpu:.2f} | {full_wall:.2f} / {full_cpu:.2f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
