"""Quality-gate benchmark: every expectation suite, run by Great Expectations on one DataFrame per table,
by GX on chunked DataFrames, as the equivalent DuckDB SQL, and as the hub runs it (``auto``: GX on one
DataFrame up to ``HUB_QUALITY_GX_MAX_ROWS`` rows, SQL above).

For each scale and engine one fresh child process opens the benchmark warehouse and runs the whole gate
(all suites of ``quality/expectations``), and the parent records

* **evaluate s**: wall time inside the child from the first suite to the last, with the seconds of the
  largest suites; **import s**: importing GX beforehand (every engine renders Data Docs with it, and a
  Dagster run pays it once),
* **docs s / record s**: rendering the results as GX Data Docs (a fresh site in a temporary folder) and
  appending them to ``quality.check_result`` (the same work whatever the engine),
* **peak RSS**: the child's kernel high-water mark of resident memory (``VmHWM``), cross-checked by
  polling its process tree with psutil every 0.1 s; a child that passes ``--mem-cap-gb`` is killed and
  reported as such (the machine is shared),
* **CPU s** and **others**: the child's user + system CPU (``os.wait4``) and the mean number of cores the
  rest of the machine kept busy meanwhile (noise),
* **failed**: expectations that failed, which must be the same for every engine (a check on the engines).

Warehouses: ``var/bench/quality/scale-<S>/warehouse.duckdb``, built by ``build`` from the generated
campus cached under ``var/bench/scale-<S>/`` (generated if absent, seed 20261) through the asset graph,
as the tests build theirs (tests/campus_graph.py): every raw, staging and warehouse asset of the real
Definitions materialised in one run (REST sources served in-process on loopback), asset checks left out.
``build --only-biggest`` materialises just ``fact_course_grade`` and ``fact_activity_attendance`` and
the assets they are built from, raw tables included, for a short scale-20 run.

Usage::

    .venv/bin/python benchmarks/quality.py build --scale 1
    .venv/bin/python benchmarks/quality.py build --scale 20
    .venv/bin/python benchmarks/quality.py run --scales 1 20 --out docs/benchmarks-quality.md

psutil comes with the ``bench`` extra (``pip install psutil``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from measure import machine_base, peak_rss_bytes, replace_block, run_measured, warm_page_cache

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / "var" / "bench"
DEFAULT_SEED = 20261
ENGINES = ("gx", "gx_chunked", "sql", "auto")
ENGINE_LABEL = {"gx": "(a) GX, one DataFrame per table", "gx_chunked": "(b) GX, chunked DataFrames",
                "sql": "(c) DuckDB SQL", "auto": "chosen: GX ≤ 250k rows, SQL above"}
RESULT_PREFIX = "QUALITY_RESULT "
MARK_START = "<!-- quality:results:start -->"
MARK_END = "<!-- quality:results:end -->"
BIG_SUITES = ("raw.academic__grades", "warehouse.fact_course_grade", "raw.activity__attendance",
              "warehouse.fact_activity_attendance")


def warehouse_path(scale: float) -> Path:
    return BENCH_DIR / "quality" / f"scale-{scale:g}" / "warehouse.duckdb"


# --------------------------------------------------------------------------- building the warehouse


def ensure_campus(scale: float, seed: int) -> Path:
    """The generated campus for ``scale`` under var/bench (shared with benchmarks/ingest.py)."""
    from campus_sim.generate import GENERATOR_VERSION, generate

    out = BENCH_DIR / f"scale-{scale:g}"
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if m.get("scale") == scale and m.get("seed") == seed and m.get("version") == GENERATOR_VERSION:
            print(f"scale {scale:g}: reusing {out.relative_to(ROOT)}", flush=True)
            return out
    print(f"scale {scale:g}: generating into {out.relative_to(ROOT)} …", flush=True)
    generate(out, scale, seed)
    return out


def build(scale: float, seed: int, only_biggest: bool) -> Path:
    """The benchmark warehouse, materialised through the asset graph as the tests build theirs
    (tests/campus_graph.py: the real Definitions, the campus served on loopback), asset checks left out."""
    import dagster as dg

    from hub.keys import DEMO_KEYS, MODE_VAR
    from tests.campus_graph import materialise, served_campus

    # the demo's keys, accepted only in a demo run: the benchmark's warehouse is the simulated campus's
    os.environ.setdefault(MODE_VAR, "demo")
    for key, value in DEMO_KEYS.items():
        os.environ.setdefault(key, value)
    campus = ensure_campus(scale, seed)
    target = warehouse_path(scale)
    work = target.parent
    if target.exists():
        raise SystemExit(f"{target} exists: remove {work} to rebuild it")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if only_biggest:  # grades and attendance, and only what they are built from
        selection = dg.AssetSelection.assets(["warehouse", "fact_course_grade"],
                                             ["warehouse", "fact_activity_attendance"]).upstream()
    else:
        selection = dg.AssetSelection.key_prefixes(["raw"], ["staging"], ["warehouse"])
    with served_campus(campus, work):
        result = materialise(selection, warehouse=target, checks=False)
    built = sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())
    print(f"built {target} in {time.perf_counter() - started:.0f} s: {len(built)} assets "
          f"({', '.join(b for b in built if not b.startswith('raw/'))} and their raw tables)", flush=True)
    return target


# --------------------------------------------------------------------------- the child: one gate


def child(engine: str, db: Path, chunk_rows: int) -> None:
    from hub.warehouse import connect
    from quality.expectations import build_data_docs, load_suites, record_results, run_suite

    suites = list(load_suites().values())
    con = connect(db)
    present = {f"{s}.{t}" for s, t in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()}
    suites = [s for s in suites if s.table in present]
    t0 = time.perf_counter()
    from quality.expectations import _GxRunner

    runner = _GxRunner(None)  # imports GX: every engine needs it for Data Docs; timed on its own
    import_s = time.perf_counter() - t0
    started = time.perf_counter()
    results = []
    for s in suites:  # progress on stderr: the parent names the suite a killed child was on
        print(f"suite {s.name}", file=sys.stderr, flush=True)
        results.append(run_suite(con, s, engine=engine, runner=runner, chunk_rows=chunk_rows, run_id="bench"))
    evaluate_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="hub-quality-docs-") as tmp:
        t0 = time.perf_counter()
        build_data_docs(results, Path(tmp) / "quality")
        docs_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute("BEGIN TRANSACTION")  # measured, then rolled back: the benchmark leaves no history behind
    record_results(con, results)
    record_s = time.perf_counter() - t0
    con.execute("ROLLBACK")
    con.close()
    out = {
        "evaluate_s": evaluate_s, "import_s": import_s, "docs_s": docs_s, "record_s": record_s,
        "suites": len(results), "expectations": sum(len(r.outcomes) for r in results),
        "rows": sum(r.rows or 0 for r in results),
        "failed": sorted(f"{r.suite.name}:{o.expectation.id}" for r in results for o in r.failed),
        "per_suite": {r.suite.name: {"s": round(r.seconds, 3), "rows": r.rows} for r in results},
        "peak_rss_bytes": peak_rss_bytes(),
    }
    print(RESULT_PREFIX + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- the parent: measuring


@dataclass
class Run:
    scale: float
    engine: str
    chunk_rows: int
    ok: bool = False
    evaluate_s: float = 0.0
    import_s: float = 0.0
    docs_s: float = 0.0
    record_s: float = 0.0
    process_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    tree_peak_rss_mb: float = 0.0
    other_cores: float = 0.0
    rows: int = 0
    expectations: int = 0
    failed: list[str] = field(default_factory=list)
    per_suite: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def measure(scale: float, engine: str, chunk_rows: int, timeout: float, mem_cap_gb: float) -> Run:
    db = warehouse_path(scale)
    run = Run(scale, engine, chunk_rows)
    with tempfile.TemporaryDirectory(prefix=f"hub-quality-{engine}-") as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "_child", "--engine", engine, "--db", str(db),
               "--chunk-rows", str(chunk_rows)]
        env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "true",
               "HUB_VAR_DIR": tmp}
        child = run_measured(cmd, cwd=ROOT, env=env, prefix=RESULT_PREFIX, timeout=timeout,
                             mem_cap_bytes=mem_cap_gb * 2**30)
    run.process_s, run.cpu_s, run.other_cores = child.wall_s, child.cpu_s, child.other_cores
    run.tree_peak_rss_mb = child.tree_peak_rss_mb
    if child.result is None:
        doing = [ln for ln in child.stderr.splitlines() if ln.startswith("suite ")]
        killed = child.error.startswith("killed")
        run.error = child.error + (f" during {doing[-1].removeprefix('suite ')}" if killed and doing else "")
    else:
        r = child.result
        run.ok = True
        run.evaluate_s, run.import_s = r["evaluate_s"], r["import_s"]
        run.docs_s, run.record_s = r["docs_s"], r["record_s"]
        hwm = r["peak_rss_bytes"]
        run.peak_rss_mb = hwm / 2**20 if hwm else run.tree_peak_rss_mb
        run.rows, run.expectations, run.failed, run.per_suite = r["rows"], r["expectations"], r["failed"], \
            r["per_suite"]
    return run


# --------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    return {**machine_base(["great_expectations", "pandas", "duckdb", "pyarrow"]),
            "duckdb memory_limit": os.environ.get("HUB_DUCKDB_MEMORY_LIMIT", "2GB")}


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _groups(runs: list[Run]) -> list[tuple[Run, list[float], int]]:
    """Per (scale, engine): the run with the median evaluation time (a failed run if none succeeded),
    the evaluation times of the successful runs, and the number of runs."""
    out = []
    for key in dict.fromkeys((r.scale, r.engine) for r in runs):
        mine = [r for r in runs if (r.scale, r.engine) == key]
        good = sorted((r for r in mine if r.ok), key=lambda r: r.evaluate_s)
        out.append((good[(len(good) - 1) // 2] if good else mine[-1], [r.evaluate_s for r in good], len(mine)))
    return out


def render(runs: list[Run], command: str) -> str:
    lines = [MARK_START, "", f"Command: `{command}`", ""]
    env = machine()
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".")
    lines += ["", "Each row is the run with the median evaluation time; with several runs the range follows.", "",
              "| scale | engine | chunk rows | rows checked | expectations | evaluate s | import s | docs s "
              "| record s | peak RSS MB | CPU s | others (cores) | failed |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups = _groups(runs)
    for r, times, n in groups:
        chunk = f"{r.chunk_rows:,}" if r.engine == "gx_chunked" else "—"
        spread = f" ({min(times):.1f}–{max(times):.1f}, {n} runs)" if n > 1 else ""
        if r.ok:
            lines.append(f"| {r.scale:g} | {ENGINE_LABEL[r.engine]} | {chunk} | {r.rows:,} | {r.expectations} | "
                         f"{r.evaluate_s:.1f}{spread} | {r.import_s:.1f} | {r.docs_s:.1f} | {r.record_s:.2f} | "
                         f"{r.peak_rss_mb:,.0f} | "
                         f"{r.cpu_s:.0f} | {r.other_cores:.2f} | {len(r.failed)} |")
        else:
            lines.append(f"| {r.scale:g} | {ENGINE_LABEL[r.engine]} | {chunk} | — | — | **{r.error}** | — | — | — | "
                         f"≥ {r.tree_peak_rss_mb:,.0f} | {r.cpu_s:.0f} | {r.other_cores:.2f} | — |")
    lines += ["", "Seconds of the largest suites (evaluate only):", "",
              "| scale | engine | " + " | ".join(BIG_SUITES) + " | all other suites |",
              "|---:|---|" + "---:|" * (len(BIG_SUITES) + 1)]
    for r, _, _ in groups:
        if not r.ok:
            continue
        big = [r.per_suite.get(s, {}).get("s") for s in BIG_SUITES]
        rest = sum(v["s"] for k, v in r.per_suite.items() if k not in BIG_SUITES)
        lines.append(f"| {r.scale:g} | {r.engine} | " + " | ".join(_fmt(b, ".1f") for b in big) + f" | {rest:.1f} |")
    rows_by_suite = {}
    for r in runs:
        for k, v in r.per_suite.items():
            rows_by_suite[(r.scale, k)] = v["rows"]
    lines += ["", "Rows of those tables: " + "; ".join(
        f"scale {s:g} " + ", ".join(f"{k.split('.', 1)[1]} {rows_by_suite[(s, k)]:,}" for k in BIG_SUITES
                                    if (s, k) in rows_by_suite)
        for s in dict.fromkeys(r.scale for r in runs)) + "."]
    agree = {}
    for r in runs:
        if r.ok:
            agree.setdefault(r.scale, set()).add(tuple(r.failed))
    for scale, sets in agree.items():
        verdict = "the same expectations failed with every engine" if len(sets) == 1 else "ENGINES DISAGREE"
        failed = next(iter(sets)) if len(sets) == 1 else ()
        lines.append(f"- scale {scale:g}: {verdict}" + (f" ({len(failed)}: {', '.join(failed)})" if failed else
                                                         " (none failed)") + ".")
    lines += ["", MARK_END]
    return "\n".join(lines)


def update_doc(path: Path, block: str) -> None:
    replace_block(path, block, MARK_START, MARK_END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the benchmark warehouse of a scale")
    b.add_argument("--scale", type=float, required=True)
    b.add_argument("--seed", type=int, default=DEFAULT_SEED)
    b.add_argument("--only-biggest", action="store_true", help="grades and attendance only (short scale-20 run)")
    r = sub.add_parser("run", help="time the quality gate with each engine")
    r.add_argument("--scales", type=float, nargs="+", default=[1.0])
    r.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    r.add_argument("--chunk-rows", type=int, default=250_000)
    r.add_argument("--repeat", type=int, default=1, help="runs of each engine (the median is reported)")
    r.add_argument("--timeout", type=float, default=3600)
    r.add_argument("--mem-cap-gb", type=float, default=10.0)
    r.add_argument("--out", type=Path, help="write the results into this Markdown file (between markers)")
    r.add_argument("--json", type=Path, default=BENCH_DIR / "quality" / "results.json")
    r.add_argument("--merge", action="store_true",
                   help="keep the other runs in --json and report them all (re-run one engine or scale)")
    c = sub.add_parser("_child")
    c.add_argument("--engine", choices=ENGINES, required=True)
    c.add_argument("--db", type=Path, required=True)
    c.add_argument("--chunk-rows", type=int, required=True)
    args = parser.parse_args(argv)

    if args.cmd == "build":
        build(args.scale, args.seed, args.only_biggest)
        return 0
    if args.cmd == "_child":
        child(args.engine, args.db, args.chunk_rows)
        return 0
    runs: list[Run] = []
    for scale in args.scales:
        db = warehouse_path(scale)
        if not db.is_file():
            raise SystemExit(f"no benchmark warehouse for scale {scale:g}: run `benchmarks/quality.py build "
                             f"--scale {scale:g}` first")
        warm_page_cache(db)
        for engine in args.engines:
            for _ in range(args.repeat):
                run = measure(scale, engine, args.chunk_rows, args.timeout, args.mem_cap_gb)
                runs.append(run)
                state = (f"evaluate {run.evaluate_s:.1f} s, docs {run.docs_s:.1f} s, peak RSS "
                         f"{run.peak_rss_mb:,.0f} MB, {len(run.failed)} failed" if run.ok else run.error)
                print(f"scale {scale:g} {engine}: {state} (others {run.other_cores:.2f} cores)", flush=True)
    if args.merge and args.json.is_file():
        mine = {(r.scale, r.engine) for r in runs}
        kept = [Run(**d) for d in json.loads(args.json.read_text(encoding="utf-8")) if (d["scale"], d["engine"]) not in mine]
        runs = sorted([*kept, *runs], key=lambda r: (r.scale, ENGINES.index(r.engine)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")
    command = ".venv/bin/python benchmarks/quality.py run " + " ".join(sys.argv[2:] if argv is None else argv[1:])
    block = render(runs, command)
    print(block)
    if args.out:
        update_doc(args.out, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
