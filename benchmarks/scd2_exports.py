"""SCD2 dimensions against the number of party exports: how ``dim_party_member`` and ``dim_party_org`` grow
when the party registers have been exported many times (a college exporting daily), the campus fixed.

On a copy of a built warehouse (``hub demo`` leaves one), the latest member, development and organisation
exports are re-sent ``N - 1`` more times (a new load id and a day later each, 1% of the members moved to
another branch and 1% of the organisations renamed per export, so that versions change), the three snapshot
staging models are rebuilt (their ``_history`` holds one row per key per export), and each SCD2 model is
built and timed (wall and the process's CPU seconds, DuckDB's threads included). Then the daily step: one
more export of each register (1% changed again), the snapshot staging models rebuilt, and ``dim_party_member``
built incrementally (models/incremental_scd2.py: only the people whose rows changed) and whole on the same
data.

Usage::

    HUB_VAR_DIR=/tmp/stg-var .venv/bin/hub demo --scale 1
    .venv/bin/python benchmarks/scd2_exports.py /tmp/stg-var/warehouse.duckdb --exports 1 10 30 100
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.warehouse import connect  # noqa: E402
from models.build import build_staging, build_warehouse  # noqa: E402
from models.incremental_scd2 import build_scd2  # noqa: E402

EXPORTS = {"party__members": ("党组织编码", "stg_party_members"),
           "party__development": ("党组织编码", "stg_party_development"),
           "party__orgs": ("党组织名称", "stg_party_orgs")}


def _resend(con, table: str, column: str, n: int, start: int = 1) -> None:
    """Exports start+1..n of the raw table: its latest load again, a day later each, 1% of the rows
    changed."""
    raw = f'raw."{table}"'
    cols = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {raw})").fetchall()]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _last AS SELECT * FROM {raw} "
                f"WHERE _load_id = (SELECT arg_max(_load_id, _extracted_at) FROM {raw})")
    for i in range(start, n):
        select = ", ".join(
            f"_load_id || '-x{i}' AS _load_id" if c == "_load_id" else
            f"_extracted_at + INTERVAL {i} DAY AS _extracted_at" if c == "_extracted_at" else
            f'CASE WHEN hash(_row_number, {i}) % 100 = 0 THEN "{c}" || \'x\' ELSE "{c}" END AS "{c}"' if c == column
            else f'"{c}"' for c in cols)
        con.execute(f"INSERT INTO {raw} SELECT {select} FROM _last")


def _timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path, help="a built warehouse.duckdb (copied, never changed)")
    parser.add_argument("--exports", type=int, nargs="+", default=[1, 10, 30])
    args = parser.parse_args()
    print("| exports | member history rows | dim_party_member rows | wall / CPU s | org history rows "
          "| dim_party_org rows | wall / CPU s | next export: snapshot staging CPU s | dim_party_member "
          "incremental CPU s (people touched) | whole CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.exports:
            path = Path(tmp) / "w.duckdb"
            shutil.copyfile(args.warehouse, path)
            con = connect(path)
            for table, (column, model) in EXPORTS.items():
                _resend(con, table, column, n)
                build_staging(con, model)
            out = [str(n)]
            for dim, history in (("dim_party_member", "stg_party_members_history"),
                                 ("dim_party_org", "stg_party_orgs_history")):
                rows, wall, cpu = _timed(build_warehouse, con, dim, secret="benchmark")
                hist = con.execute(f"SELECT count(*) FROM staging.{history}").fetchone()[0]
                out += [f"{hist:,}", f"{rows:,}", f"{wall:.2f} / {cpu:.2f}"]
            build_scd2(con, "dim_party_member", secret="benchmark", full=True)  # the state a daily run starts from
            staging_cpu = 0.0
            for table, (column, model) in EXPORTS.items():  # the next day's export
                _resend(con, table, column, n + 1, start=n)
                staging_cpu += _timed(build_staging, con, model)[2]
            stats, _, inc_cpu = _timed(build_scd2, con, "dim_party_member", secret="benchmark")
            assert stats["mode"] == "incremental", stats
            _, _, whole_cpu = _timed(build_warehouse, con, "dim_party_member", secret="benchmark")
            out += [f"{staging_cpu:.2f}", f"{inc_cpu:.2f} ({stats['keys_touched']['person_no touched']:,})",
                    f"{whole_cpu:.2f}"]
            con.close()
            path.unlink()
            print("| " + " | ".join(out) + " |", flush=True)

if __name__ == "__main__":
    main()
