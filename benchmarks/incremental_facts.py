"""Full against incremental builds of fact_course_grade and fact_student_term_gpa after ~1% new grades.

    python -m benchmarks.incremental_facts WAREHOUSE.duckdb [--work DIR]

On a copy of a built warehouse (e.g. ``hub demo --scale 1``'s), a new raw load of the grades like the
pipeline benchmark's *changed* case (benchmarks/pipeline.py: 0.5% of the grades again as 补考 and 0.5%
corrected, by one point) is staged incrementally; then one copy builds the two facts whole
(models.build.build_warehouse) and the other incrementally (models/incremental_facts.py). Prints the wall
and CPU seconds of each (this process's CPU: DuckDB's threads included) and whether the two copies' tables
(the facts and the fact's reconciliation issues) are equal by EXCEPT ALL both ways.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from hub.warehouse import connect
from models.build import build_warehouse
from models.incremental import build_staging_incremental
from models.incremental_facts import build_fact

FACTS = ("fact_course_grade", "fact_student_term_gpa")
SECRET = "bench"  # the two facts hash nothing with it


def change_grades(con) -> int:
    """A raw load with ~1% of the grades new or corrected (the newest version of each, ids from 200)."""
    (top,) = con.execute("SELECT max(TRY_CAST(id AS BIGINT)) FROM raw.academic__grades").fetchone()
    con.execute("CREATE OR REPLACE TEMP TABLE _bench_latest AS SELECT * FROM raw.academic__grades "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _extracted_at DESC, _row_number DESC) = 1")
    n = con.execute("SELECT count(*) FROM _bench_latest").fetchone()[0]
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _load AS
        SELECT * REPLACE (CAST({top} + row_number() OVER (ORDER BY id) AS VARCHAR) AS id, '60' AS cj, '补考' AS ksxz)
        FROM _bench_latest WHERE TRY_CAST(id AS BIGINT) % 200 = 7 LIMIT {max(1, n // 200)}""")
    con.execute("""INSERT INTO _load SELECT * REPLACE (
            CAST(least(100, CAST(cj AS INTEGER) + 1) AS VARCHAR) AS cj)
        FROM _bench_latest WHERE TRY_CAST(id AS BIGINT) % 200 = 11 AND regexp_full_match(cj, '[0-9]+')""")
    con.execute("""UPDATE _load SET _load_id = 'bench-incremental-facts', _row_number = r.n,
            _extracted_at = now(), updated_at = strftime(now(), '%Y-%m-%d %H:%M:%S')
        FROM (SELECT id AS i, row_number() OVER (ORDER BY id) AS n FROM _load) r WHERE r.i = _load.id""")
    con.execute("INSERT INTO raw.academic__grades BY NAME SELECT * FROM _load")
    con.execute("DROP TABLE _bench_latest")
    return con.execute("SELECT count(*) FROM _load").fetchone()[0]


def timed(fn, *args):
    cpu0, t0 = sum(os.times()[:2]), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0, sum(os.times()[:2]) - cpu0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/incremental-facts-bench"))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    inc_path, full_path = args.work / "incremental.duckdb", args.work / "full.duckdb"
    shutil.copyfile(args.warehouse, inc_path)
    con = connect(inc_path)
    # the facts' state as a run leaves it (a warehouse built before them: one whole build first)
    for name in FACTS:
        build_fact(con, name, secret=SECRET)
    rows = change_grades(con)
    staged, wall, cpu = timed(build_staging_incremental, con, "stg_academic_grades")
    print(f"raw load: {rows:,} grade rows; staging {staged['mode']} ({staged['keys_touched']:,} keys) "
          f"{wall:.1f} s, {cpu:.1f} CPU s")
    con.execute("CHECKPOINT")
    con.close()
    shutil.copyfile(inc_path, full_path)

    results = {}
    for label, path, build in (
            ("full", full_path, lambda c, n: build_warehouse(c, n, secret=SECRET)),
            ("incremental", inc_path, lambda c, n: build_fact(c, n, secret=SECRET))):
        con = connect(path)
        for name in FACTS:
            out, wall, cpu = timed(build, con, name)
            results[(label, name)] = (wall, cpu)
            detail = "" if label == "full" else \
                f" {out['mode']}: {out['reason']}, -{out['rows_deleted']:,} +{out['rows_inserted']:,}"
            print(f"{label:12} {name:24} {wall:6.2f} s {cpu:6.2f} CPU s{detail}")
        con.execute("CHECKPOINT")
        con.close()
    for label in ("full", "incremental"):
        print(f"{label:12} both facts {sum(results[(label, n)][0] for n in FACTS):.2f} s, "
              f"{sum(results[(label, n)][1] for n in FACTS):.2f} CPU s")

    con = connect(inc_path)
    con.execute(f"ATTACH '{full_path}' AS ref (READ_ONLY)")
    equal = True
    for table, where in (("warehouse.fact_course_grade", ""), ("warehouse.fact_student_term_gpa", ""),
                         ("quality.reconciliation_issue", "WHERE model = 'fact_course_grade'")):
        cols = "* EXCLUDE (found_at)" if table.startswith("quality") else "*"
        mine, theirs = f"SELECT {cols} FROM {table} {where}", f"SELECT {cols} FROM ref.{table} {where}"
        a = con.execute(f"SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})").fetchone()[0]
        b = con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {mine})").fetchone()[0]
        n = con.execute(f"SELECT count(*) FROM ({mine})").fetchone()[0]
        equal &= a == b == 0
        print(f"{table}: {n:,} rows, only incremental {a}, only full {b}")
    con.close()
    print("equal" if equal else "DIFFERENT")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
