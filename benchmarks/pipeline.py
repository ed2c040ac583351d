"""Benchmark of the whole path: ``campus_main_job`` (raw to publish) per stage, at several campus scales.

For each scale the simulated campus is generated beforehand (cached under ``var/bench/scale-<S>/``, shared
with benchmarks/ingest.py) and served by this process (``campus_sim.servers.SourceServers``, no faults).
Every measured run is **one fresh child process** that executes the Dagster job in process, as ``hub
demo`` does, against its own var folder and Dagster instance:

* ``full``: a fresh var folder (empty raw zone, warehouse and instance), the whole job.
* ``rerun``: the same job again with nothing new at the sources.
* ``changed``: the same job after about 1% of the source rows changed: new grades (0.5% of ``jw_cj``
  inserted as 补考 rows) and corrected ones (0.5% updated), 1% of the students updated (a new mobile
  number and a later ``updatedAt``), and one new party export (the development register again, without
  1% of its people).
* ``floor``: in another child, plain DuckDB on the warehouse the runs built: every raw table read once
  (a hash over every column) and every output table (staging, warehouse, marts, quality) written once
  with ``CREATE TABLE AS`` into a fresh file. What the job cannot do with less I/O.

Per stage (intake, staging, warehouse, quality, marts, publish, snapshot) the child reports wall time
(from the run's event log: STEP_START to STEP_SUCCESS), CPU time and peak RSS (a sampler thread reads
the process's CPU time and resident memory every 50 ms; a step's CPU is the difference across it, a
stage's peak the highest sample in its steps), and rows in and out. The parent measures the whole child
(wall, CPU, process-tree peak RSS, CPU that other processes used meanwhile: noise).

Usage: ``python benchmarks/pipeline.py --scales 1 5 --out docs/benchmarks.md``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ingest import DEFAULT_SEED, ensure_campus  # noqa: E402
from benchmarks.measure import machine_base, replace_block, run_measured, warm_page_cache  # noqa: E402
from campus_sim.changes import change_sources  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "var" / "bench" / "pipeline"
PREFIX = "PIPELINE_RESULT "
STAGES = ("intake", "staging", "warehouse", "quality", "marts", "publish", "snapshot")
CASES = ("full", "rerun", "changed")
MARK_START = "<!-- bench:pipeline:start -->"
MARK_END = "<!-- bench:pipeline:end -->"
DEMO_ENV = {  # the demo's own keys (accepted in HUB_MODE=demo only)
    "HUB_MODE": "demo",
    "HUB_PERSON_KEY_SECRET": "demo-only-person-key-not-for-production",
    "HUB_NATIONAL_KEY_SECRET": "demo-only-national-key-not-for-production",
    "HUB_KMS_MASTER_KEYS": "hub_footer:ZGVtby1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=",
}


# --------------------------------------------------------------------------- child: one job run


class _Sampler(threading.Thread):
    """Process CPU seconds and resident bytes every ``interval`` s, with the wall clock (epoch s)."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self._halt = interval, [], threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def sample(self) -> None:
        t = os.times()
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * self._page
        self.samples.append((time.time(), t.user + t.system, rss))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def cpu_at(self, when: float) -> float:
        """CPU seconds at ``when``, linearly interpolated between the two samples around it."""
        s = self.samples
        lo = max((x for x in s if x[0] <= when), default=s[0], key=lambda x: x[0])
        hi = min((x for x in s if x[0] >= when), default=s[-1], key=lambda x: x[0])
        if hi[0] == lo[0]:
            return lo[1]
        return lo[1] + (hi[1] - lo[1]) * (when - lo[0]) / (hi[0] - lo[0])

    def peak_between(self, start: float, end: float) -> int:
        return max((x[2] for x in self.samples if start - self.interval <= x[0] <= end + self.interval), default=0)


def _stage(asset_path: list[str] | None) -> str:
    if asset_path is None:
        return "quality"  # a step that only evaluated asset checks
    layer, name = asset_path[0], asset_path[-1]
    return {"raw": "intake", "settings": "intake", "staging": "staging", "warehouse": "warehouse",
            "marts": "marts"}.get(
        layer, "snapshot" if name == "analyst_snapshot" else "publish")


def step_assets(job: Any) -> dict[str, list[str]]:
    """Step key -> the path of an asset it builds, for every asset step of the job: a raw asset whose load
    brought nothing new materialises nothing, and is still an intake step, not a check step."""
    return {a.node_def.name: list(min(a.keys, key=lambda k: k.to_user_string()).path)
            for a in job.asset_layer.asset_graph.assets_defs if a.keys and a.is_executable}


def _schema_rows(con: Any, schemas: tuple[str, ...], catalog: str | None = None) -> dict[str, int]:
    where = "database_name = current_database()" if catalog is None else f"database_name = '{catalog}'"
    rows = {}
    for schema, table in con.execute(
            f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {where} AND NOT temporary "
            f"AND schema_name IN ({', '.join('?' for _ in schemas)})", list(schemas)).fetchall():
        prefix = f'"{catalog}".' if catalog else ""
        rows[f"{schema}.{table}"] = con.execute(f'SELECT count(*) FROM {prefix}"{schema}"."{table}"').fetchone()[0]
    return rows


def child_run() -> dict[str, Any]:
    import warnings

    import dagster as dg
    from dagster._core.events import DagsterEventType

    from hub.factory import build_definitions
    from hub.publisher import read_catalog
    from hub.settings import Settings
    from hub.warehouse import open_warehouse
    from pipelines.incremental import execute_incremental

    warnings.filterwarnings("ignore")
    settings = Settings.from_env()
    job = build_definitions(settings).resolve_job_def("campus_main_job")
    assets_of_steps = step_assets(job)
    sampler = _Sampler()
    with dg.DagsterInstance.get() as instance:
        sampler.start()
        started = time.time()
        # as `hub demo` runs it: whole on an empty instance, else raw first, then one run of what is
        # downstream of the tables that changed (pipelines/incremental.py)
        runs = execute_incremental(job, instance, lambda selection, phase: job.execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=selection,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}))
        job_s = time.time() - started
        sampler.stop()
        kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
                 DagsterEventType.ASSET_MATERIALIZATION}
        events = [e for _, r in runs for e in instance.all_logs(r.run_id, of_type=kinds)]
        success = all(r.success for _, r in runs)
    steps: dict[str, dict[str, Any]] = {}
    for e in events:
        step = steps.setdefault(e.step_key, {"asset": None})
        kind = e.dagster_event.event_type
        if kind == DagsterEventType.STEP_START:
            step["start"] = e.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            step["end"], step["ok"] = e.timestamp, kind == DagsterEventType.STEP_SUCCESS
        elif step["asset"] is None:
            step["asset"] = e.dagster_event.asset_key.path
    stages = {s: {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "steps": 0} for s in STAGES}
    step_rows = []
    for key, step in steps.items():
        if "start" not in step or "end" not in step:
            continue
        stage = _stage(step["asset"] or assets_of_steps.get(key))
        wall = step["end"] - step["start"]
        cpu = sampler.cpu_at(step["end"]) - sampler.cpu_at(step["start"])
        peak = sampler.peak_between(step["start"], step["end"]) / 2**20
        st = stages[stage]
        st["wall_s"] += wall
        st["cpu_s"] += cpu
        st["peak_rss_mb"] = max(st["peak_rss_mb"], peak)
        st["steps"] += 1
        step_rows.append({"step": key, "stage": stage, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                          "peak_rss_mb": round(peak, 1), "ok": step.get("ok", False)})

    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        tables = _schema_rows(con, ("raw", "staging", "warehouse", "marts", "quality"))
        read, landed = con.execute(
            "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_landed), 0) FROM quality.load_audit "
            "WHERE started_at >= to_timestamp(?)", [started]).fetchone()
    import duckdb

    snap = duckdb.connect(str(settings.snapshot_path), read_only=True)
    try:
        snapshot_rows = sum(_schema_rows(snap, ("warehouse", "marts")).values())
    finally:
        snap.close()
    catalog = read_catalog(settings.published_root_url)
    published = sum(entry["row_count"] for entry in catalog.get("datasets", {}).values())

    def layer(name: str) -> int:
        return sum(n for t, n in tables.items() if t.startswith(name + "."))

    check_rows = layer("staging") + layer("warehouse") + layer("marts")
    rows = {"intake": (int(read), int(landed)), "staging": (layer("raw"), layer("staging")),
            "warehouse": (layer("staging"), layer("warehouse")), "quality": (check_rows, None),
            "marts": (layer("warehouse"), layer("marts")), "publish": (layer("warehouse") + layer("marts"), published),
            "snapshot": (layer("warehouse") + layer("marts"), snapshot_rows)}
    for stage, (rows_in, rows_out) in rows.items():
        stages[stage]["rows_in"], stages[stage]["rows_out"] = rows_in, rows_out
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    return {"success": success, "runs": [phase for phase, _ in runs], "job_s": job_s, "job_cpu_s": sampler.samples[-1][1] - sampler.cpu_at(started),
            "peak_rss_mb": hwm / 2**20, "stages": stages, "steps": step_rows,
            "failed": [s["step"] for s in step_rows if not s["ok"]], "tables": tables}


def child_floor() -> dict[str, Any]:
    """Every raw table read once, every output table written once, plain DuckDB (same memory limit)."""
    import duckdb

    from hub.settings import Settings

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="hub-floor-", dir=settings.var_dir) as tmp:
        con = duckdb.connect(str(Path(tmp) / "floor.duckdb"), config={
            "memory_limit": os.environ.get("HUB_DUCKDB_MEMORY_LIMIT", "2GB"), "temp_directory": tmp})
        path = str(settings.warehouse_path).replace("'", "''")
        con.execute(f"ATTACH '{path}' AS hubwh (READ_ONLY)")
        names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'hubwh' "
                            "AND schema_name IN ('raw', 'staging', 'warehouse', 'marts', 'quality') "
                            "ORDER BY 1, 2").fetchall()
        started = time.perf_counter()
        cpu0 = sum(os.times()[:2])
        raw_rows = 0
        for schema, table in names:
            if schema == "raw":
                con.execute(f'SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM hubwh.raw."{table}"').fetchall()
                raw_rows += con.execute(f'SELECT count(*) FROM hubwh.raw."{table}"').fetchone()[0]
        read_s = time.perf_counter() - started
        out_rows = 0
        for schema, table in names:
            if schema != "raw":
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                con.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM hubwh."{schema}"."{table}"')
                out_rows += con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
        con.execute("CHECKPOINT")
        floor_s = time.perf_counter() - started
        cpu = sum(os.times()[:2]) - cpu0
        con.close()
    return {"floor_s": floor_s, "read_s": read_s, "write_s": floor_s - read_s, "cpu_s": cpu,
            "raw_rows": raw_rows, "output_rows": out_rows}


# --------------------------------------------------------------------------- parent


def child_env(var: Path, campus: Path, dagster_home: Path, urls: dict[str, str]) -> dict[str, str]:
    from hub.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") or k == "HUB_DUCKDB_MEMORY_LIMIT"}
    env.update(DEMO_ENV)
    env.update({"HUB_VAR_DIR": str(var), "HUB_CAMPUS_DIR": str(campus), "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "False", "PYTHONHASHSEED": "0"})
    env.update(Settings.from_env({"HUB_VAR_DIR": str(var), "HUB_CAMPUS_DIR": str(campus)}).source_env(urls))
    return env


def measure(mode: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    out = run_measured([sys.executable, str(Path(__file__).resolve()), "--child", mode], cwd=ROOT, env=env,
                       prefix=PREFIX, timeout=timeout)
    return {"wall_s": out.wall_s, "cpu_s": out.cpu_s, "tree_peak_rss_mb": out.tree_peak_rss_mb,
            "other_cores": out.other_cores, "result": out.result, "error": out.error}


def run_scale(scale: float, args: argparse.Namespace) -> dict[str, Any]:
    from campus_sim.servers import SourceServers

    cached, manifest = ensure_campus(scale, args.seed)
    work = WORK_DIR / f"scale-{scale:g}"
    if work.exists():
        shutil.rmtree(work)
    campus, var, home = work / "campus", work / "var", work / "dagster_home"
    shutil.copytree(cached, campus)  # the changed case edits the sources: never the cache
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    warm_page_cache(campus / "academic" / "academic.sqlite")
    out: dict[str, Any] = {"scale": scale, "source_rows": sum(manifest["rows"].values()), "cases": {}}
    inbox = var / "inbox" / "party"
    for case in args.cases:
        if case == "changed":
            out["changes"] = change_sources(campus, inbox, args.seed)
            print(f"scale {scale:g}: changed {out['changes']}", flush=True)
        with SourceServers(campus, inbox=inbox) as servers:
            env = child_env(var, campus, home, servers.urls)
            run = measure("run", env, args.timeout)
        out["cases"][case] = run
        res = run["result"] or {}
        print(f"scale {scale:g} {case:<7}: child {run['wall_s']:6.1f} s wall, {run['cpu_s']:6.1f} s CPU, "
              f"tree peak {run['tree_peak_rss_mb']:,.0f} MB, job {res.get('job_s', 0):6.1f} s, "
              f"others {run['other_cores']:.2f} cores" + (f"  FAILED {run['error']}" if run["error"] else "")
              + (f"  failed steps {res['failed']}" if res.get("failed") else ""), flush=True)
    env = child_env(var, campus, home, {k: "http://127.0.0.1:1" for k in ("hr", "student", "activity", "learning")})
    out["floor"] = measure("floor", env, args.timeout)
    fl = out["floor"]["result"] or {}
    print(f"scale {scale:g} floor  : {fl.get('floor_s', float('nan')):6.1f} s "
          f"(read {fl.get('read_s', 0):.1f} s, write {fl.get('write_s', 0):.1f} s)", flush=True)
    if not args.keep:
        shutil.rmtree(work)
    return out


# --------------------------------------------------------------------------- reporting


def _f(value: float | None, fmt: str = ",.1f") -> str:
    return "—" if value is None else format(value, fmt)


def render(saved: dict[str, Any]) -> str:
    scales = saved["scales"]
    parts = [MARK_START, "", f"Measured {saved['finished_at']} with `{saved['command']}` "
             f"({saved['elapsed_s'] / 60:.0f} min). Machine: " +
             ", ".join(f"{k} {v}" for k, v in saved["machine"].items()) + ".", ""]
    parts += ["### Whole job per case", "",
              "| scale | case | job s | job CPU s | child wall s | child CPU s | peak RSS MB | floor s (CPU s) | job / floor "
              "| job CPU / floor CPU | % of full (CPU) | other processes (cores) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for sc in scales:
        floor = (sc["floor"]["result"] or {}).get("floor_s")
        floor_cpu = (sc["floor"]["result"] or {}).get("cpu_s")
        full = ((sc["cases"].get("full") or {}).get("result") or {}).get("job_cpu_s")
        for case, run in sc["cases"].items():
            res = run["result"] or {}
            job, cpu = res.get("job_s"), res.get("job_cpu_s")
            parts.append(f"| {sc['scale']:g} | {case} | {_f(job)} | {_f(cpu)} | {_f(run['wall_s'])} "
                         f"| {_f(run['cpu_s'])} | {_f(run['tree_peak_rss_mb'], ',.0f')} | {_f(floor)} ({_f(floor_cpu)}) "
                         f"| {_f(job / floor if job and floor else None, '.1f')}× "
                         f"| {_f(cpu / floor_cpu if cpu and floor_cpu else None, '.1f')}× "
                         f"| {_f(100 * cpu / full if cpu and full else None, '.0f')} "
                         f"| {run['other_cores']:.2f} |" + (f" FAILED: {run['error']}" if run["error"] else ""))
    parts += ["", "### Per stage, full run", "",
              "| scale | stage | steps | wall s | CPU s | peak RSS MB | rows in | rows out | wall growth vs previous scale |",
              "|---|---|---|---|---|---|---|---|---|"]
    prev: dict[str, float] = {}
    prev_scale = None
    for sc in scales:
        res = (sc["cases"].get("full") or {}).get("result") or {}
        for stage, st in (res.get("stages") or {}).items():
            growth = (f"{st['wall_s'] / prev[stage]:.1f}× (×{sc['scale'] / prev_scale:g} data)"
                      if prev.get(stage) else "—")
            parts.append(f"| {sc['scale']:g} | {stage} | {st['steps']} | {st['wall_s']:.1f} | {st['cpu_s']:.1f} "
                         f"| {st['peak_rss_mb']:,.0f} | {_f(st.get('rows_in'), ',')} | {_f(st.get('rows_out'), ',')} "
                         f"| {growth} |")
        prev = {stage: st["wall_s"] for stage, st in (res.get("stages") or {}).items()}
        prev_scale = sc["scale"]
    parts += ["", "### Per stage, wall s by case", "", "| scale | stage | " +
              " | ".join(saved["cases"]) + " |", "|---|---|" + "---|" * len(saved["cases"])]
    for sc in scales:
        for stage in STAGES:
            cells = [_f((((sc["cases"].get(c) or {}).get("result") or {}).get("stages") or {})
                        .get(stage, {}).get("wall_s")) for c in saved["cases"]]
            parts.append(f"| {sc['scale']:g} | {stage} | " + " | ".join(cells) + " |")
    parts += ["", "### Per stage, CPU s by case (steps run)", "", "| scale | stage | " +
              " | ".join(saved["cases"]) + " |", "|---|---|" + "---|" * len(saved["cases"])]
    for sc in scales:
        for stage in STAGES:
            cells = []
            for c in saved["cases"]:
                st = ((((sc["cases"].get(c) or {}).get("result") or {}).get("stages") or {}).get(stage) or {})
                cells.append(f"{_f(st.get('cpu_s'))} ({st.get('steps', '—')})")
            parts.append(f"| {sc['scale']:g} | {stage} | " + " | ".join(cells) + " |")
    runs = [f"{c} at scale {sc['scale']:g}: {' + '.join(r['result']['runs'])}" for sc in scales
            for c, r in sc["cases"].items() if (r.get("result") or {}).get("runs")]
    if runs:
        parts += ["", "Runs of `campus_main_job` per case (pipelines/incremental.py: *whole* on an empty instance, "
                  "else *intake* (raw loads) + *rebuild* (what is downstream of the tables that changed), no "
                  "rebuild when nothing changed): " + "; ".join(runs) + "."]
    parts += ["", "### Slowest steps, full run", "", "| scale | step | wall s | CPU s | peak RSS MB |",
              "|---|---|---|---|---|"]
    for sc in scales:
        res = (sc["cases"].get("full") or {}).get("result") or {}
        for st in sorted(res.get("steps", []), key=lambda s: -s["wall_s"])[:8]:
            parts.append(f"| {sc['scale']:g} | {st['step']} | {st['wall_s']:.1f} | {st['cpu_s']:.1f} "
                         f"| {st['peak_rss_mb']:,.0f} |")
    if len(scales) > 1:  # CPU growth of the costliest steps between the smallest and the largest scale
        first, last = (((sc["cases"].get("full") or {}).get("result") or {}) for sc in (scales[0], scales[-1]))
        before = {st["step"]: st for st in first.get("steps", [])}
        parts += ["", f"### CPU growth of the costliest steps, scale {scales[0]['scale']:g} → {scales[-1]['scale']:g} "
                  f"(×{scales[-1]['scale'] / scales[0]['scale']:g} data), full run", "",
                  f"| step | CPU s at {scales[0]['scale']:g} | CPU s at {scales[-1]['scale']:g} | growth |",
                  "|---|---|---|---|"]
        for st in sorted(last.get("steps", []), key=lambda s: -s["cpu_s"])[:12]:
            b = before.get(st["step"])
            parts.append(f"| {st['step']} | {_f(b and b['cpu_s'], '.2f')} | {st['cpu_s']:.2f} | "
                         f"{_f(st['cpu_s'] / b['cpu_s'] if b and b['cpu_s'] > 0.05 else None, '.1f')}× |")
    changes = [f"scale {sc['scale']:g}: {sc['changes']}" for sc in scales if sc.get("changes")]
    if changes:
        parts += ["", "Changed case, rows changed at the sources: " + "; ".join(changes) + "."]
    parts += ["", MARK_END]
    return "\n".join(parts)


def update_doc(path: Path, block: str) -> None:
    replace_block(path, block, MARK_START, MARK_END)


def relabel(saved: dict[str, Any]) -> None:
    """Re-derive the stage of every step from the job's assets and re-sum the stages (rows kept)."""
    import warnings

    from hub.factory import build_definitions

    warnings.filterwarnings("ignore")
    assets = step_assets(build_definitions().resolve_job_def("campus_main_job"))
    for sc in saved["scales"]:
        for run in sc["cases"].values():
            res = run.get("result")
            if not res:
                continue
            for st in res["steps"]:
                if st["step"] in assets:
                    st["stage"] = _stage(assets[st["step"]])
            for stage, agg in res["stages"].items():
                mine = [st for st in res["steps"] if st["stage"] == stage]
                agg.update(wall_s=sum(st["wall_s"] for st in mine), cpu_s=sum(st["cpu_s"] for st in mine),
                           peak_rss_mb=max((st["peak_rss_mb"] for st in mine), default=0.0), steps=len(mine))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=("run", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="in this order; rerun and changed need full first")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", action="store_true", help="keep var/bench/pipeline/scale-<S>/ afterwards")
    parser.add_argument("--out", type=Path, help="markdown file whose pipeline block is written or updated")
    parser.add_argument("--save", type=Path, default=WORK_DIR / "results.json")
    parser.add_argument("--relabel", action="store_true",
                        help="with --from-json: re-derive each step's stage from the job's assets (a raw step that "
                             "materialised nothing is intake, not quality) and save the results again")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS", help="measure nothing: render saved results")
    args = parser.parse_args(argv)
    if args.child:
        result = child_run() if args.child == "run" else child_floor()
        print(PREFIX + json.dumps(result))
        return 0
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        if args.relabel:
            relabel(saved)
            args.from_json.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    else:
        started = time.perf_counter()
        info = machine_base(["duckdb", "dagster", "pyarrow"])
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        scales = [run_scale(scale, args) for scale in args.scales]
        saved = {"command": "python benchmarks/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "finished_at": time.strftime("%Y-%m-%d %H:%M %Z"), "elapsed_s": time.perf_counter() - started,
                 "machine": {"hub": commit, **info}, "cases": args.cases, "scales": scales}
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    block = render(saved)
    print(block)
    if args.out:
        update_doc(args.out, block)
    failed = any(run["error"] or not (run["result"] or {}).get("success")
                 for sc in saved["scales"] for run in sc["cases"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
