"""Ingestion benchmark: the hub's connectors beside dlt, on the same endpoints and tables.

For each scale of the simulated campus, each workload and each tool, one fresh child process loads
the workload into a fresh DuckDB file in a temporary folder, and the parent records

* **load s**: wall time inside the child from opening the destination to closing it (imports and
  interpreter start-up excluded; the child measures it and reports it),
* **rows**: rows in the destination tables afterwards (counted with DuckDB, the same way for both tools),
* **peak RSS**: the child's kernel high-water mark of resident memory (``VmHWM`` in
  ``/proc/self/status``, read by the child as its last act), cross-checked by polling the child's
  process tree with psutil every 0.1 s. Not ``ru_maxrss``: a child starts with its parent's high-water
  mark there (Linux copies it at fork and keeps it across exec), and this parent holds the servers' data,
* **CPU s**: user + system CPU time of the child (``os.wait4``).

Workloads (see ``docs/benchmarks.md``):

``rest``  the student API (cursor pagination, ``X-API-Key``, records at ``items``, next cursor at
          ``next_cursor``, limit 1000) and the learning platform's study records (``Link`` header,
          bearer token, ``per_page`` 5000), served by ``campus_sim.servers.SourceServers`` in this
          (parent) process on loopback, with no injected faults.
``sql``   tables ``jw_kc`` and ``jw_cj`` of the generated ``academic/academic.sqlite``.

Tools: ``hub`` runs ``connectors.load_entity`` for each entity as ``sources.yaml`` declares it (the
child's environment points ``sources.yaml`` at the servers / the SQLite file); ``dlt`` runs dlt's
``rest_api`` source, or its ``sql_database`` source with ``backend="pyarrow"``, into DuckDB, loading
Parquet files (the format dlt's DuckDB page recommends; the pyarrow backend writes Parquet anyway), with
dlt's defaults otherwise (``append``; telemetry off). ``dlt-insert`` (REST only, not run unless asked
for) is dlt with no setting at all: its default DuckDB loader format, large ``INSERT … VALUES`` files.

Generated data is cached under ``var/bench/scale-<S>/`` and reused while its ``manifest.json`` has
the same scale, seed and generator version. Usage::

    .venv/bin/python benchmarks/ingest.py --scales 1 20 --repeat 2 --tools hub dlt dlt-insert \
        --once dlt-insert --out docs/benchmarks.md

``--from-json var/bench/results.json --out docs/benchmarks.md`` rewrites the page from saved runs.

dlt and psutil come with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from measure import machine_base, peak_rss_bytes, replace_block, run_measured, warm_page_cache

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DEFAULT_SEED = 20261
TOOLS = ("hub", "dlt", "dlt-insert")
DEFAULT_TOOLS = ("hub", "dlt")
WORKLOADS = ("rest", "sql")
RESULT_PREFIX = "BENCH_RESULT "
# Hub settings a person may set to try them in the benchmark; every other HUB_* variable is dropped so
# that sources.yaml points at the benchmark's campus only.
PASSED_THROUGH = ("HUB_DUCKDB_MEMORY_LIMIT", "HUB_RAW_MEMORY_LIMIT")
MARK_START = "<!-- bench:results:start -->"
MARK_END = "<!-- bench:results:end -->"

# What each workload reads: the hub's (source, entity) pairs from sources.yaml, and the manifest
# row counts (generator output) that both tools must end up with.
HUB_ENTITIES = {
    "rest": [("student", "students"), ("learning", "study_records")],
    "sql": [("academic", "courses"), ("academic", "grades")],
}
SOURCE_ROWS = {
    "rest": ["student/students.jsonl", "learning/study_records.jsonl"],
    "sql": ["academic/academic.sqlite:jw_kc", "academic/academic.sqlite:jw_cj"],
}


# --------------------------------------------------------------------------- the child: one load


def _count_tables(con: Any, schema: str) -> dict[str, int]:
    """Rows per base table of ``schema`` in the current DuckDB catalog (dlt's own tables left out)."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
        "AND table_catalog = current_database() AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY 1",
        [schema]).fetchall()]
    return {n: con.execute(f'SELECT count(*) FROM "{schema}"."{n}"').fetchone()[0] for n in names}


def child_hub(workload: str, work: Path) -> dict[str, Any]:
    """Load the workload with the hub's connectors, one ``load_entity`` per entity, as the raw assets do."""
    from connectors import load_entity, load_sources
    from hub.settings import Settings
    from hub.warehouse import connect

    settings = Settings.from_env()
    sources = load_sources(settings.sources_file)
    started = time.perf_counter()
    con = connect(work / "warehouse.duckdb")
    loads = []
    for source_name, entity_name in HUB_ENTITIES[workload]:
        source = sources[source_name]
        for r in load_entity(con, work / "raw", source, source.entities[entity_name],
                             landing_memory=settings.raw_memory_limit):
            loads.append({"entity": f"{r.source}.{r.entity}", "status": r.status, "rows_landed": r.rows_landed,
                          "pages": r.pages, "retries": r.retries, "parquet_bytes": r.bytes,
                          "duration_s": round(r.duration_s, 3)})
    con.close()
    load_s = time.perf_counter() - started
    con = connect(work / "warehouse.duckdb", read_only=True)
    tables = _count_tables(con, "raw")
    con.close()
    return {"load_s": load_s, "tables": tables, "loads": loads}


def _dlt_rest_source() -> Any:
    """dlt's ``rest_api`` source over the same two endpoints, configured as the APIs document them."""
    from dlt.sources.rest_api import rest_api_source

    student, learning = os.environ["HUB_XG_URL"], os.environ["HUB_LEARNING_URL"]
    return rest_api_source({
        "client": {"base_url": student.rstrip("/") + "/"},
        "resource_defaults": {"write_disposition": "append"},
        "resources": [
            {
                "name": "students",
                "primary_key": "studentNo",
                "endpoint": {
                    "path": "/api/xg/v1/students",
                    "params": {"limit": 1000},
                    "auth": {"type": "api_key", "name": "X-API-Key", "location": "header",
                             "api_key": os.environ.get("HUB_XG_API_KEY", "sim-xg-key")},
                    "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
                    "data_selector": "items",
                },
            },
            {
                "name": "study_records",
                "primary_key": "record_id",
                "endpoint": {
                    # An absolute URL: this resource lives on another server than the client's base_url.
                    "path": learning.rstrip("/") + "/api/learning/v1/study-records",
                    "params": {"per_page": 5000},
                    "auth": {"type": "bearer",
                             "token": os.environ.get("HUB_LEARNING_TOKEN", "sim-learning-token")},
                    "paginator": {"type": "header_link"},
                    "data_selector": "$",
                },
            },
        ],
    }, name="campus_rest")


def child_dlt(workload: str, work: Path, loader_file_format: str | None = "parquet") -> dict[str, Any]:
    """Load the workload with dlt into a fresh DuckDB file (dataset ``raw``).

    ``loader_file_format=None`` leaves dlt's default for DuckDB (``insert_values``).
    """
    import dlt

    if workload == "rest":
        source = _dlt_rest_source()
    else:
        from dlt.sources.sql_database import sql_database

        source = sql_database(credentials=os.environ["HUB_ACADEMIC_URL"], table_names=["jw_kc", "jw_cj"],
                              backend="pyarrow", chunk_size=50_000)
    db_path = work / "dlt.duckdb"
    started = time.perf_counter()
    pipeline = dlt.pipeline(pipeline_name=f"bench_{workload}", destination=dlt.destinations.duckdb(str(db_path)),
                            dataset_name="raw", pipelines_dir=str(work / "dlt_pipelines"))
    info = pipeline.run(source, loader_file_format=loader_file_format)
    info.raise_on_failed_jobs()
    load_s = time.perf_counter() - started
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    tables = _count_tables(con, "raw")
    con.close()
    normalize = pipeline.last_trace.last_normalize_info
    formats = sorted({job.job_file_info.file_format for package in info.load_packages
                      for jobs in package.jobs.values() for job in jobs})
    return {"load_s": load_s, "tables": tables, "loader_file_formats": formats,
            "normalized_rows": dict(normalize.row_counts) if normalize else {}}


def run_child(tool: str, workload: str, work: Path) -> None:
    if tool == "hub":
        result = child_hub(workload, work)
    else:
        result = child_dlt(workload, work, loader_file_format=None if tool == "dlt-insert" else "parquet")
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the parent: measuring


@dataclass
class Run:
    scale: float
    workload: str
    tool: str
    repeat: int
    ok: bool
    rows: int = 0
    load_s: float = 0.0
    process_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    tree_peak_rss_mb: float = 0.0
    other_cores: float = 0.0  # mean CPU cores busy with other processes during the run: noise
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.load_s if self.load_s else 0.0


def measure(tool: str, workload: str, scale: float, repeat: int, env: dict[str, str], timeout: float) -> Run:
    """Run one child in a fresh temporary folder and measure it (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix=f"hub-bench-{tool}-{workload}-") as tmp:
        work = Path(tmp)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, workload, str(work)]
        child = run_measured(cmd, cwd=work, env=env, prefix=RESULT_PREFIX, timeout=timeout)
    run = Run(scale, workload, tool, repeat, ok=False, process_s=child.wall_s, cpu_s=child.cpu_s,
              tree_peak_rss_mb=child.tree_peak_rss_mb, other_cores=child.other_cores, error=child.error)
    if child.result is not None:
        result = child.result
        run.ok, run.load_s = True, result.pop("load_s")
        hwm = result.pop("peak_rss_bytes")
        run.peak_rss_mb = hwm / 2**20 if hwm else run.tree_peak_rss_mb
        run.rows = sum(result["tables"].values())
        run.detail = result
    return run


# --------------------------------------------------------------------------- data and environment


def ensure_campus(scale: float, seed: int) -> tuple[Path, dict[str, Any]]:
    """The generated campus for ``scale`` under var/bench, generated only if the cache does not match."""
    from campus_sim.generate import GENERATOR_VERSION, generate

    out = BENCH_DIR / f"scale-{scale:g}"
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if (manifest.get("scale") == scale and manifest.get("seed") == seed
                and manifest.get("version") == GENERATOR_VERSION):
            print(f"scale {scale:g}: reusing {out.relative_to(ROOT)}", flush=True)
            return out, manifest
    print(f"scale {scale:g}: generating into {out.relative_to(ROOT)} …", flush=True)
    started = time.perf_counter()
    manifest = generate(out, scale, seed)
    print(f"scale {scale:g}: generated in {time.perf_counter() - started:.0f} s", flush=True)
    return out, manifest


def child_env(source_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The child's environment: ours, plus the variables that point sources.yaml at this campus."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "DLT_", "RUNTIME__")) or k in PASSED_THROUGH}
    env.update(source_env)
    env["HUB_ACADEMIC_URL"] = f"sqlite:///{data_dir / 'academic' / 'academic.sqlite'}"
    env.update({
        "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt: no telemetry
        "DAGSTER_DISABLE_TELEMETRY": "true",
        "PYTHONHASHSEED": "0",
    })
    return env


# --------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    return {
        "hub": _revision(),
        "hub DuckDB memory_limit": os.environ.get("HUB_DUCKDB_MEMORY_LIMIT", "2GB (default)"),
        "hub landing memory_limit": os.environ.get("HUB_RAW_MEMORY_LIMIT", "128MB (default)"),
        **machine_base(["duckdb", "dlt", "pyarrow", "sqlalchemy", "requests"]),
    }


def _revision() -> str:
    """The hub's git commit, marked when connectors/ has uncommitted changes (what was measured)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted connectors/ changes" if git("status", "--porcelain", "connectors") else "")


@dataclass
class Summary:
    scale: float
    workload: str
    tool: str
    runs: int
    failed: list[str]
    rows: int | None
    load_s: float | None
    best_load_s: float | None
    rows_per_s: float | None
    rows_per_cpu_s: float | None
    peak_rss_mb: float | None
    cpu_s: float | None
    process_s: float | None


def summarise(runs: list[Run]) -> list[Summary]:
    """Median (and best load time) of the successful runs of each (scale, workload, tool)."""
    keys = list(dict.fromkeys((r.scale, r.workload, r.tool) for r in runs))
    out = []
    for scale, workload, tool in keys:
        mine = [r for r in runs if (r.scale, r.workload, r.tool) == (scale, workload, tool)]
        good = [r for r in mine if r.ok]
        failed = [r.error or "failed" for r in mine if not r.ok]

        def med(attr: str, good: list[Run] = good) -> float | None:
            return statistics.median(getattr(r, attr) for r in good) if good else None

        out.append(Summary(scale, workload, tool, len(good), failed, good[0].rows if good else None,
                           med("load_s"), min((r.load_s for r in good), default=None), med("rows_per_s"),
                           statistics.median(r.rows / r.cpu_s for r in good) if good else None,
                           med("peak_rss_mb"), med("cpu_s"), med("process_s")))
    return out


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def results_table(summaries: list[Summary]) -> str:
    head = ("| scale | workload | tool | rows | load s | best s | rows/s | peak RSS MB | CPU s | rows/CPU s "
            "| process s | runs |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for s in summaries:
        runs = f"{s.runs}" + (f" (+{len(s.failed)} failed)" if s.failed else "")
        lines.append(f"| {s.scale:g} | {s.workload} | {s.tool} | {_num(s.rows, ',')} | {_num(s.load_s, '.1f')} | "
                     f"{_num(s.best_load_s, '.1f')} | {_num(s.rows_per_s, ',.0f')} | {_num(s.peak_rss_mb, ',.0f')} | "
                     f"{_num(s.cpu_s, '.1f')} | {_num(s.rows_per_cpu_s, ',.0f')} | {_num(s.process_s, '.1f')} | "
                     f"{runs} |")
    return "\n".join(lines)


def row_checks(runs: list[Run], expected: dict[tuple[float, str], int]) -> list[str]:
    """One line per (scale, workload): the row counts each tool loaded against what the source holds."""
    lines = []
    for (scale, workload), want in expected.items():
        got = {tool: sorted({r.rows for r in runs if r.ok and (r.scale, r.workload, r.tool) == (scale, workload, tool)})
               for tool in TOOLS}
        counts = {tool: rows for tool, rows in got.items() if rows}
        same = all(rows == [want] for rows in counts.values())
        shown = ", ".join(f"{tool} {'/'.join(f'{n:,}' for n in rows)}" for tool, rows in counts.items())
        lines.append(f"- scale {scale:g} {workload}: source {want:,} rows; loaded: {shown or 'no successful run'} "
                     f"— {'same rows' if same and counts else 'MISMATCH'}")
    return lines


def render(summaries: list[Summary], checks: list[str], runs: list[Run], saved: dict[str, Any]) -> str:
    """The results block of the markdown page: command, machine, table, row checks, noise, failures."""
    env_info = saved["machine"]
    failures = [f"- scale {r.scale:g} {r.workload} {r.tool} run {r.repeat}: {r.error}" for r in runs if not r.ok]
    rss_gap = [r for r in runs if r.ok and r.tree_peak_rss_mb > r.peak_rss_mb * 1.05]
    parts = [
        MARK_START,
        "<!-- Written by benchmarks/ingest.py; edit the text around this block, not inside it. -->",
        f"Finished {saved['finished_at']}, after {saved['elapsed_s'] / 60:.1f} min, with:",
        "",
        "```",
        saved["command"],
        "```",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in env_info.items()) + ".",
        "",
        "Medians over the runs counted in the last column, except *best s* (the fastest run); *rows/s* is "
        "rows over *load s*; *rows/CPU s* is rows over the child's CPU seconds, the figure that other load "
        "on the machine disturbs least.",
        "",
        results_table(summaries),
        "",
        "Rows loaded by each tool (DuckDB `count(*)` of the destination tables after each run):",
        "",
        *checks,
    ]
    if runs:
        noisiest = max(runs, key=lambda r: r.other_cores)
        parts += ["", f"Noise: other processes kept on average {statistics.mean(r.other_cores for r in runs):.2f} "
                      f"of the {env_info['nproc']} cores busy during a run (at most {noisiest.other_cores:.2f}, "
                      f"scale {noisiest.scale:g} {noisiest.workload} {noisiest.tool} run {noisiest.repeat})."]
    if failures:
        parts += ["", "Runs that did not finish:", "", *failures]
    if rss_gap:
        parts += ["", "Runs whose process tree (psutil polling) peaked above the child's own `VmHWM`:", "",
                  *(f"- scale {r.scale:g} {r.workload} {r.tool}: tree {r.tree_peak_rss_mb:,.0f} MB" for r in rss_gap)]
    parts.append(MARK_END)
    return "\n".join(parts)


def update_doc(path: Path, block: str) -> None:
    """Replace the results block of ``path`` (between the markers), or append one."""
    replace_block(path, block, MARK_START, MARK_END, new_file="# Ingestion benchmark\n\n## Results\n\n")


# --------------------------------------------------------------------------- main


def benchmark(args: argparse.Namespace) -> int:
    from campus_sim.servers import SourceServers
    from hub.settings import Settings

    started = time.perf_counter()
    env_info = machine()
    runs: list[Run] = []
    expected: dict[tuple[float, str], int] = {}
    skip: set[tuple[float, str, str]] = set()

    def series(scale: float, workload: str, env: dict[str, str]) -> None:
        for rep in range(1, args.repeat + 1):
            for tool in args.tools:  # tools alternate, so drift on the machine hits both alike
                if ((scale, workload, tool) in skip or (tool == "dlt-insert" and workload != "rest")
                        or (tool in args.once and rep > 1)):
                    continue
                run = measure(tool, workload, scale, rep, env, args.timeout)
                runs.append(run)
                if run.ok:
                    print(f"  {workload} {tool:<3} run {rep}: {run.rows:>11,} rows  {run.load_s:7.1f} s  "
                          f"{run.rows_per_s:>9,.0f} rows/s  peak RSS {run.peak_rss_mb:6,.0f} MB "
                          f"(tree {run.tree_peak_rss_mb:,.0f})  CPU {run.cpu_s:.1f} s  "
                          f"others {run.other_cores:.2f} cores", flush=True)
                else:
                    print(f"  {workload} {tool:<3} run {rep}: FAILED {run.error}", flush=True)
                    skip.add((scale, workload, tool))  # a timeout would only repeat itself

    for scale in args.scales:
        data_dir, manifest = ensure_campus(scale, args.seed)
        for workload in args.workloads:
            expected[(scale, workload)] = sum(manifest["rows"][name] for name in SOURCE_ROWS[workload])
        if "rest" in args.workloads:
            with SourceServers(data_dir) as servers:  # faults=0: no injected failures
                env = child_env(Settings.from_env().source_env(servers.urls), data_dir)
                series(scale, "rest", env)
        if "sql" in args.workloads:
            warm_page_cache(data_dir / "academic" / "academic.sqlite")
            series(scale, "sql", child_env(Settings.from_env().source_env(), data_dir))

    saved = {
        "command": "python benchmarks/ingest.py " + " ".join(sys.argv[1:]),
        "finished_at": time.strftime("%Y-%m-%d %H:%M %Z"),
        "elapsed_s": time.perf_counter() - started,
        "machine": env_info,
        "expected_rows": [{"scale": sc, "workload": wl, "rows": n} for (sc, wl), n in expected.items()],
        "runs": [asdict(r) for r in runs],
    }
    args.save.parent.mkdir(parents=True, exist_ok=True)
    args.save.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    print(f"\nraw runs in {args.save}")
    return report(saved, args.out)


def report(saved: dict[str, Any], out: Path | None) -> int:
    """Print the summary of saved runs and write it into ``out``; non-zero if a run failed or rows differ."""
    runs = [Run(**r) for r in saved["runs"]]
    expected = {(e["scale"], e["workload"]): e["rows"] for e in saved["expected_rows"]}
    summaries = summarise(runs)
    checks = row_checks(runs, expected)
    print()
    print(results_table(summaries))
    print()
    print("\n".join(checks))
    if out:
        update_doc(out, render(summaries, checks, runs, saved))
        print(f"\nresults written to {out}")
    mismatch = any(line.endswith("MISMATCH") for line in checks)
    return 1 if mismatch or any(not r.ok for r in runs) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # --child TOOL WORKLOAD WORKDIR: one measured load, started by measure() (not for people)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0], help="campus scales (default: 1)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool, workload and scale (default: 2)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(DEFAULT_TOOLS),
                        help="hub, dlt (Parquet loader files) and/or dlt-insert (dlt's default INSERT "
                             "files, REST only); default: hub dlt")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--once", nargs="+", choices=TOOLS, default=[],
                        help="tools run once per scale and workload whatever --repeat says (slow references)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default: {DEFAULT_SEED})")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before one run is killed (default: 900)")
    parser.add_argument("--out", type=Path, help="markdown file whose results block is written or updated")
    parser.add_argument("--save", type=Path, default=BENCH_DIR / "results.json",
                        help="where the raw runs are saved as JSON (default: var/bench/results.json)")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS",
                        help="measure nothing: summarise a saved var/bench/results.json (into --out if given)")
    args = parser.parse_args(argv)
    if args.child:
        tool, workload, work = args.child
        if tool not in TOOLS or workload not in WORKLOADS:
            parser.error(f"--child: unknown tool {tool!r} or workload {workload!r}")
        run_child(tool, workload, Path(work))
        return 0
    if args.from_json:
        return report(json.loads(args.from_json.read_text(encoding="utf-8")), args.out)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
