"""Staging row rules benchmark: ``build_staging`` as it is (keys normalised, survivorship, row rules,
superseded and findings written) beside the build as it was before the row rules (``current`` partitioned
by the raw key, the model's SQL, quarantine), in the same process, on the same synthetic raw tables.

Raw tables are generated in DuckDB (no campus needed): ``academic.grades`` and ``hr.staff`` with ``--rows``
rows each, 1% of keys sent twice in one load (half of them with a later ``updated_at``), 0.1% with a
trailing space in the key. Each build runs ``--repeat`` times per variant, alternating; the best and the
median wall seconds and the best CPU seconds of the process (DuckDB's threads included: on a shared
machine the steadier figure) are printed.

Usage::

    .venv/bin/python benchmarks/staging_rules.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.raw_zone import q  # noqa: E402
from hub.warehouse import connect  # noqa: E402
from models import build  # noqa: E402


def build_before(con, name: str) -> int:
    """build_staging as it was before models/row_rules.py (the peer)."""
    m = build.STAGING_MODELS[name]
    pk = ", ".join(q(k) for k in m.primary_key)
    raw = build._raw_with_optional(con, m)
    con.execute("BEGIN TRANSACTION")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW current AS
        SELECT * EXCLUDE (_rank), _rank > 1 AS _duplicate FROM (
            SELECT r.*, row_number() OVER (PARTITION BY {pk}, _load_id ORDER BY _row_number) AS _rank
            FROM {raw} r QUALIFY _extracted_at = max(_extracted_at) OVER (PARTITION BY {pk}))""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _model AS {m.sql}")
    con.execute("DELETE FROM quality.quarantine WHERE stage = 'staging' AND source = ? AND entity = ?",
                [m.source, m.entity])
    con.execute(f"""INSERT INTO quality.quarantine (stage, source, entity, load_id, rule, record_key, detail, original_row)
        SELECT 'staging', ?, ?, m.load_id, m._reject_rule, m._record_key, m._reject_detail, to_json(r) FROM _model m
        JOIN raw.{q(m.raw_table)} r ON r._load_id = m.load_id AND r._row_number = m._row_number
        WHERE m._reject_rule IS NOT NULL""", [m.source, m.entity])
    con.execute(f"CREATE OR REPLACE TABLE staging.{name} AS SELECT * EXCLUDE (_reject_rule, _reject_detail, "
                "_record_key, _row_number) FROM _model WHERE _reject_rule IS NULL")
    con.execute("DROP TABLE _model")
    con.execute("COMMIT")
    return con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0]


def make_raw(con, rows: int) -> None:
    meta = ("'L1' AS _load_id, 'x' AS _source, TIMESTAMPTZ '2026-03-01' AS _extracted_at, "
            "CAST(i AS BIGINT) AS _row_number, NULL::VARCHAR AS _row_hash, NULL::VARCHAR AS _file")
    # key k: 1% of keys twice (k = i // 1 for most rows), a trailing space on 0.1%
    key = "CAST(CASE WHEN i % 100 = 1 THEN i - 1 ELSE i END AS VARCHAR) || CASE WHEN i % 1000 = 7 THEN ' ' ELSE '' END"
    updated = "'2026-0' || CAST(1 + (i % 200 = 1)::INTEGER * 2 AS VARCHAR) || '-01 10:00:00'"
    con.execute(f"""CREATE OR REPLACE TABLE raw.academic__grades AS SELECT
        CAST(i AS VARCHAR) AS id, {key} AS xh, 'GB10' || CAST(i % 7 AS VARCHAR) AS kch, '2024-2025-1' AS xnxq,
        CAST(50 + i % 50 AS VARCHAR) AS cj, '正常考试' AS ksxz, {updated} AS updated_at, {meta}
        FROM range(1, {rows} + 1) t(i)""")
    con.execute(f"""CREATE OR REPLACE TABLE raw.hr__staff AS SELECT
        {key} AS gh, '覃明' || CAST(i % 97 AS VARCHAR) AS xm, NULL::VARCHAR AS sfzjh, '1' AS xbm, '1980-01-01' AS csrq,
        '壮族' AS mz, '群众' AS zzmm, '11' AS xl, '012' AS zcdm, '副教授' AS zc, '101' AS dwh, '机电工程学院' AS dwmc,
        '01' AS jzglb, '11' AS dqzt, '2010-09-01' AS rzrq, NULL::VARCHAR AS sjhm, {updated} AS updated_at, {meta}
        FROM range(1, {rows} + 1) t(i)""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        con = connect(Path(tmp) / "w.duckdb")
        build.load_code_sets(con)
        make_raw(con, args.rows)
        for name in ("stg_academic_grades", "stg_hr_staff"):
            times: dict[str, list[float]] = {"before": [], "now": []}
            cpu: dict[str, list[float]] = {"before": [], "now": []}
            for _ in range(args.repeat):
                for variant in ("before", "now"):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    if variant == "before":
                        build_before(con, name)
                    else:
                        build.build_staging(con, name)
                    times[variant].append(time.perf_counter() - started)
                    cpu[variant].append(time.process_time() - started_cpu)
            for variant, ts in times.items():
                print(f"{name:22} {variant:6} rows {args.rows:>9,}  best {min(ts):6.2f} s  median "
                      f"{statistics.median(ts):6.2f} s  CPU {min(cpu[variant]):6.2f} s")
        con.close()


if __name__ == "__main__":
    main()
