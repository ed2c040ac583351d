"""``hub demo``: the whole path on the simulated campus, through the Dagster instance in dagster_home/.

Simulate the campus if it is not there yet, serve its systems on loopback, run ``campus_main_job``
(every asset, raw to publish) so that the UI shows the run, stop the servers and print a summary.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.raw_zone import q
from hub.keys import DEMO_KEYS, MODE_VAR
from hub.publisher import read_catalog
from hub.settings import PROJECT_ROOT, Settings, env_value, export, temporary_env
from hub.warehouse import open_warehouse

# The demo's own keys (hub.keys.DEMO_KEYS: accepted only with HUB_MODE=demo or test); production sets its own.
SIM_SECRETS = DEMO_KEYS
# With faults on, slow responses must outlast the client's timeout, as they do in the field.
FAULT_TIMEOUT_S, FAULT_SLOW_S = 2.0, 3.0


@dataclass
class DemoResult:
    success: bool
    run_id: str
    started_at: float
    failed_steps: list[str] = field(default_factory=list)
    # blocking checks that failed in the run: check, asset, table, what they found and the rows to look at
    blocking_checks: list[dict] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)   # publish/* assets not rebuilt in the run
    nothing_new: bool = False  # no raw table changed: only the raw loads ran (pipelines/incremental.py)


STATE_MARKER = ".demo_campus.json"  # in var/: the scale and seed the demo's state was built from


def _campus_identity(path) -> tuple[float, int] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return float(data.get("scale", -1)), int(data.get("seed", -1))


def reset_demo_state(settings: Settings, instance) -> list[str]:
    """Remove what the demo built from a campus: raw zone, inbox, warehouse (with its cursors), snapshot,
    published data, report, and the instance's runs. Only folders inside var/ are removed.

    Refused (ValueError) while a run is in progress: stop `make ui` first.
    """
    import shutil

    from dagster import DagsterRunStatus, RunsFilter

    from hub.recovery import recover_dead_runs

    recover_dead_runs(instance, by="hub demo")
    busy = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                                                  DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                                                  DagsterRunStatus.CANCELING]))
    if busy:
        raise ValueError(f"run {busy[0].run_id} of {busy[0].job_name} is {busy[0].status.value}: the demo's "
                         "state cannot be reset under it (stop `make ui` or wait for it to finish)")
    var = settings.var_dir
    removed = []
    warehouse = settings.warehouse_path
    candidates = [settings.raw_dir, settings.inbox_dir.parent, settings.published_root, settings.snapshot_path.parent,
                  var / "report", warehouse.parent / ".duckdb_tmp", warehouse, warehouse.with_name(warehouse.name + ".wal")]
    for path in candidates:
        if not path.exists() or not path.resolve().is_relative_to(var) or path.resolve() == var:
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        removed.append(path.name)
    runs = instance.get_run_ids()
    for run_id in runs:
        instance.delete_run(run_id)
    keys = list(instance.all_asset_keys())
    if keys:
        instance.wipe_assets(keys)
    return removed + [f"{len(runs)} run(s)"]


def ensure_campus(settings: Settings, *, scale: float, seed: int, console: Console, instance=None) -> dict:
    """Generate the simulated campus unless the same scale and seed are already there.

    The demo owns its state: if what var/ holds was built from another campus (another scale or seed),
    the raw zone, cursors, warehouse, published data and instance runs are reset first, in one line, so
    two campuses never mix.
    """
    from campus_sim.generate import generate

    manifest_path = settings.campus_dir / "manifest.json"
    marker = settings.var_dir / STATE_MARKER
    wanted = (float(scale), int(seed))
    campus = _campus_identity(manifest_path)
    built_from = _campus_identity(marker) or campus
    if built_from is not None and built_from != wanted and instance is not None:
        removed = reset_demo_state(settings, instance)
        console.print(f"[yellow]var/ was built from the campus of scale {built_from[0]:g} seed {built_from[1]}; "
                      f"reset the demo's state for scale {scale:g} seed {seed} (removed "
                      f"{', '.join(removed)}; cursors went with the warehouse)[/]", highlight=False)
    if campus == wanted:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    else:
        with console.status(f"Simulating the campus (scale {scale}, seed {seed}) into {settings.campus_dir} …"):
            started = time.monotonic()
            manifest = generate(settings.campus_dir, scale=scale, seed=seed)
        console.print(f"Simulated campus ready in {time.monotonic() - started:.1f} s: {settings.campus_dir}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"scale": float(scale), "seed": int(seed)}) + "\n", encoding="utf-8")
    return manifest


def run_main_job(settings: Settings, *, console: Console, instance=None) -> DemoResult:
    """Execute campus_main_job in this process against the instance, showing progress per step: whole on an
    empty instance, else the raw loads, then one run of what is downstream of the tables that changed
    (pipelines/incremental.py)."""
    import dagster as dg

    from hub.factory import build_definitions

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("campus_main_job")
    from hub.recovery import recover_dead_runs

    instance = instance or dg.DagsterInstance.get()
    # A run killed earlier (SIGKILL, OOM, reboot) would keep its warehouse slot and block this one forever.
    for item in recover_dead_runs(instance, by="hub demo"):
        console.print(f"[yellow]cleared a dead run:[/] {item.line()}", highlight=False)
    from pipelines.incremental import execute_incremental

    started = time.time()
    runs = execute_incremental(job, instance, lambda selection, phase: _execute_with_progress(
        job, instance, selection, phase, console))
    results = [r for _, r in runs]
    from quality.expectations import build_docs_index, quality_dir

    build_docs_index(quality_dir(settings.var_dir))  # the checks rendered their pages; the index once, here
    failed = [e.step_key for r in results for e in r.all_events if e.is_step_failure]
    for r in results:
        for event in r.all_events:
            if event.is_step_failure:
                console.print(f"[red]step {event.step_key} failed:[/] {_root_cause(event.step_failure_data.error)}",
                              highlight=False)
    phases = [p for p, _ in runs]
    if phases == ["intake"]:
        console.print("Nothing new at the sources: no raw table changed, so staging, the warehouse, the marts and "
                      "publishing were skipped (each raw asset's log says why it did not materialise).",
                      highlight=False)
        return DemoResult(results[0].success, results[0].run_id, started, failed, blocking_failures(results[0]),
                          [], nothing_new=True)
    last = results[-1]
    rebuilt = set(job.asset_layer.executable_asset_keys) if phases == ["whole"] else \
        set(last.dagster_run.asset_selection or ())
    built = {e.asset_key for r in results for e in r.get_asset_materialization_events()}
    held = sorted(k.path[-1] for k in rebuilt if k.path[0] == "publish" and k not in built)
    blocking = [b for r in results for b in blocking_failures(r)]
    return DemoResult(all(r.success for r in results), last.run_id, started, failed, blocking, held)


def _execute_with_progress(job, instance, selection, phase: str, console: Console):
    """One in-process run of campus_main_job (``selection`` None: all of it), with a progress bar per step."""
    from dagster._core.events import DagsterEventType

    from hub.recovery import process_tags

    run_id = str(uuid.uuid4())
    if selection is None:
        total = len(job.asset_layer.executable_asset_keys) + len(list(job.asset_layer.asset_graph.asset_check_keys))
    else:
        keys = set(selection)
        total = len(keys) + sum(1 for c in job.asset_layer.asset_graph.asset_check_keys if c.asset_key in keys)
    outcome: dict = {}
    label = {"whole": "campus_main_job", "intake": "campus_main_job (raw loads)",
             "rebuild": "campus_main_job (what changed)"}[phase]

    def execute() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                instance=instance, run_id=run_id, raise_on_error=False, tags={**process_tags(), **ui_tags()},
                asset_selection=selection,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        except Exception as exc:  # surfaced below as one line
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name="campus_main_job", daemon=True)
    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
             DagsterEventType.STEP_SKIPPED}
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
            try:
                events = instance.all_logs(run_id, of_type=kinds)
            except Exception:  # the run may not be registered yet
                continue
            done = [e for e in events if e.dagster_event.event_type != DagsterEventType.STEP_START]
            running = {e.step_key for e in events} - {e.step_key for e in done}
            step = next(iter(sorted(running)), "") if running else ""
            progress.update(task, completed=len(done), description=f"{label} {step}")
        progress.update(task, completed=total, description=label)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def blocking_failures(result) -> list[dict]:
    """The blocking checks that failed (severity ERROR): each with its table and a query on the rows."""
    import dagster as dg

    out = []
    for e in result.get_asset_check_evaluations():
        if e.passed or e.severity != dg.AssetCheckSeverity.ERROR or not getattr(e, "blocking", True):
            continue
        meta = {k: getattr(v, "value", v) for k, v in e.metadata.items()}
        asset = e.asset_key.to_user_string()
        base = {"check": e.check_name, "asset": asset, "description": e.description or ""}
        failing = [f for f in (meta.get("failing") or []) if isinstance(f, dict) and f.get("blocking", True)]
        if failing:  # an expectation suite: one line per expectation that blocks
            out += [{**base, "check": f"{e.check_name}: {f['expectation']}", "table": f["suite"],
                     "look_at": f.get("look_at") or f"SELECT * FROM {f['suite']}",
                     "description": f"{f.get('unexpected')} unexpected"} for f in failing]
            continue
        look = str(meta.get("look_at", "")).removeprefix("```sql\n").removesuffix("\n```")
        out.append({**base, "table": meta.get("table") or asset.replace("/", ".", 1),
                    "look_at": look or f"SELECT * FROM quality.check_result WHERE check_name = '{e.check_name}' "
                                       f"AND asset = '{asset}' ORDER BY checked_at DESC LIMIT 5"})
    return out


def ui_tags() -> dict[str, str]:
    """The tag by which the UI lists a job's runs under its code location (workspace.yaml): without it a
    run executed in this process shows under Runs but not on the job's own page."""
    import yaml
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    location = workspace["load_from"][0]["python_module"]["location_name"]
    return {REPOSITORY_LABEL_TAG: f"__repository__@{location}"}


def _root_cause(err) -> str:
    """The innermost error's first line: what went wrong, not the framework's wrapper around it."""
    from connectors.redact import redact

    while err is not None and err.cause is not None:
        err = err.cause
    return redact(err.message.strip().splitlines()[0]) if err is not None and err.message.strip() else "unknown error"


def demo(settings: Settings, *, scale: float = 1.0, seed: int = 20261, faults: float = 0.0,
         console: Console | None = None, instance=None) -> DemoResult:
    from campus_sim.servers import SourceServers

    console = console or Console()
    export(MODE_VAR, "test" if env_value(MODE_VAR) == "test" else "demo")
    for key, value in SIM_SECRETS.items():
        export(key, value, overwrite=False)
    export("DAGSTER_HOME", str(settings.dagster_home), overwrite=False)
    if instance is None:
        import dagster as dg

        from connectors import load_sources

        load_sources(settings.sources_file)  # a broken sources.yaml is one line, before anything else

        with dg.DagsterInstance.get() as owned:
            return demo(settings, scale=scale, seed=seed, faults=faults, console=console, instance=owned)
    ensure_campus(settings, scale=scale, seed=seed, console=console, instance=instance)
    servers = SourceServers(settings.campus_dir, faults=faults, slow_seconds=FAULT_SLOW_S, seed=seed,
                            inbox=settings.inbox_dir)
    servers.start()
    try:
        console.print("Campus systems served on loopback: " +
                      ", ".join(f"{k} {v}" for k, v in servers.urls.items()) +
                      (f" (faults {faults:.0%})" if faults else ""))
        # sources.yaml's ${HUB_*_URL} point at the servers for the run, then back to what they were
        pointed = {**settings.source_env(servers.urls), **({"HUB_HTTP_TIMEOUT": str(FAULT_TIMEOUT_S)} if faults else {})}
        with temporary_env(pointed):
            result = run_main_job(settings, console=console, instance=instance)
    finally:
        servers.stop()
    report = settings.var_dir / "report" / "index.html"  # built in the run by the asset publish/party_report
    if result.success and report.exists():
        console.print(f"Report: {report}  (open it in a browser; it works offline)")
    print_summary(settings, result, console)
    return result


def print_summary(settings: Settings, result: DemoResult, console: Console) -> None:
    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        loads = con.execute("""
            SELECT source || '.' || entity, count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_landed), 0),
                   coalesce(sum(rows_skipped), 0), coalesce(sum(rows_rejected), 0), coalesce(sum(retries), 0),
                   string_agg(DISTINCT status, ',' ORDER BY status)
            FROM quality.load_audit WHERE started_at >= to_timestamp(?) GROUP BY ALL ORDER BY 1""",
                            [result.started_at]).fetchall()
        names = [r[0] for r in con.execute("""
            SELECT schema_name || '.' || table_name FROM duckdb_tables()
            WHERE schema_name IN ('raw', 'staging', 'warehouse')
              AND NOT (schema_name = 'staging' AND (starts_with(table_name, 'cs_') OR table_name = 'code_map'))
            ORDER BY schema_name = 'raw', 1""").fetchall()]
        tables = [(n, con.execute(f"SELECT count(*) FROM {n.split('.')[0]}.{q(n.split('.', 1)[1])}").fetchone()[0])
                  for n in names]
        quarantine = con.execute("""
            SELECT stage, source || '.' || entity, rule, count(*) FROM quality.quarantine
            GROUP BY ALL ORDER BY 1, 2, 3""").fetchall()
        checks = con.execute("""
            SELECT count(*) FROM (SELECT DISTINCT asset, check_name FROM quality.check_result)""").fetchall()
        failed_checks = con.execute("""
            SELECT severity, asset, check_name, unexpected FROM quality.check_result
            QUALIFY row_number() OVER (PARTITION BY asset, check_name ORDER BY checked_at DESC) = 1
                AND NOT passed
            ORDER BY severity, asset, check_name""").fetchall()
        violations = con.execute("""
            SELECT severity, rule, entity, count(*) FROM quality.rule_violation GROUP BY ALL ORDER BY 1, 2""").fetchall()
        findings = con.execute("""
            SELECT kind, count(*) FROM quality.reconciliation_issue GROUP BY ALL ORDER BY 2 DESC, 1""").fetchall()

    t = Table(title="Loads in this run", title_justify="left")
    for col in ("source.entity", "loads", "read", "landed", "skipped (already loaded)", "rejected", "retries",
                "status"):
        t.add_column(col, justify="right" if col not in ("source.entity", "status") else "left")
    for row in loads:
        t.add_row(*[str(v) for v in row])
    console.print(t)

    t = Table(title="Tables", title_justify="left")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, rows in tables:
        t.add_row(name, f"{rows:,}")
    console.print(t)

    t = Table(title="Quarantined (kept out, with the reason)", title_justify="left")
    for col in ("stage", "source.entity", "rule", "rows"):
        t.add_column(col, justify="right" if col == "rows" else "left")
    for row in quarantine:
        t.add_row(*[str(v) for v in row])
    console.print(t if quarantine else "Nothing quarantined.")

    ran = sum(r[0] for r in checks)
    # history (quality.check_result); what held anything back is in Dagster's check storage: see below
    t = Table(title=f"Checks: {ran} ran, {len(failed_checks)} failing (latest result of each)", title_justify="left")
    for col in ("severity", "asset", "check", "unexpected"):
        t.add_column(col, justify="right" if col == "unexpected" else "left")
    for row in failed_checks:
        t.add_row(*[str(v) for v in row])
    console.print(t if failed_checks else f"Checks: {ran} ran, all passing.")

    t = Table(title="Party business rules: violations", title_justify="left")
    for col in ("severity", "rule", "entity", "rows"):
        t.add_column(col, justify="right" if col == "rows" else "left")
    for row in violations:
        t.add_row(*[str(v) for v in row])
    console.print(t if violations else "Party business rules: no violations.")

    t = Table(title="Reconciliation findings (quality.reconciliation_issue)", title_justify="left")
    t.add_column("kind")
    t.add_column("rows", justify="right")
    for kind, n in findings:
        t.add_row(kind, f"{n:,}")
    console.print(t if findings else "Reconciliation: no findings.")

    catalog = read_catalog(settings.published_root_url)
    t = Table(title=f"Published ({settings.published_root_url}/catalog.json)", title_justify="left")
    for col in ("dataset", "current version", "rows", "audience"):
        t.add_column(col)
    for name, entry in sorted(catalog.get("datasets", {}).items()):
        t.add_row(name, entry["current_version"], f"{entry['row_count']:,}",
                  entry["audience"] + (", encrypted" if entry.get("encrypted") else ""))
    console.print(t)

    if result.blocking_checks:
        console.print(f"[red]Blocking checks failed: {len(result.blocking_checks)}[/] — only what is built on these "
                      "tables was held back; every other dataset was published", highlight=False)
        for b in result.blocking_checks:
            console.print(f"  [red]✗[/] check [bold]{b['check']}[/] on table [bold]{b['table']}[/] "
                          f"({b['asset']}): {b['description']}", highlight=False)
            console.print(f"    rows to look at (in {settings.warehouse_path.name} or the restricted snapshot "
                          f"{settings.restricted_snapshot_path}): {b['look_at']}",
                          highlight=False, soft_wrap=True)
    if result.held_back:  # skipped by Dagster after a blocking check, or refused by the publish gate
        console.print(("  held back" if result.blocking_checks else "[red]Held back[/]") + " at their previous version: "
                      + ", ".join(f"{n} ({catalog.get('datasets', {}).get(n, {}).get('current_version', 'none yet')})"
                                  for n in result.held_back), highlight=False, soft_wrap=True)
    if result.nothing_new:
        console.print("Nothing new at the sources: only the raw loads ran; staging, warehouse, marts and "
                      "published datasets are unchanged (skipped, not rebuilt).", highlight=False)
    status = "[green]succeeded" if result.success else f"[red]failed ({', '.join(result.failed_steps)})"
    console.print(f"campus_main_job {status}[/] — run {result.run_id}")
    console.print(f"Warehouse: {settings.warehouse_path}   Analysts: hub sql \"SELECT …\" reads the snapshot "
                  f"{settings.snapshot_path}", highlight=False)
    console.print(f"Published: {settings.published_root}   Raw zone: {settings.raw_dir}")
    console.print("UI: make ui  → http://127.0.0.1:3000 (assets by layer, this run under Runs)")
