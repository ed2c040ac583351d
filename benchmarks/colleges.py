"""Many colleges through one Dagster instance on PostgreSQL, queued and started by the daemon, their data on
an S3 API server (issue 18 §5, docs/scale-out.md).

    .venv/bin/python benchmarks/colleges.py [--colleges 8] [--scale 0.5] [--alone N] [--work var/bench/colleges]

N simulated campuses (seeds 1..N) at ``--scale``, one ``colleges.yaml`` (hub/colleges.py): every asset
partitioned by college. The Dagster instance is deploy/dagster.yaml (runs, event logs and schedules in a
PostgreSQL database on 127.0.0.1:5432 created for the benchmark and dropped after; QueuedRunCoordinator,
one run per ``college`` tag and per partition) with ``max_concurrent_runs`` set per phase:

1. ``alone``: the first ``--alone`` colleges (default all), ``max_concurrent_runs: 1`` (one at a time);
2. ``pairs``: all colleges, ``max_concurrent_runs: 2`` (two at a time).

Per phase: a code location (``dagster api grpc -m hub.definitions`` with HUB_COLLEGES_FILE set, each
college's campus served on loopback), a real ``dagster-daemon run`` on a workspace pointing at it, and
every college's partition run of ``campus_main_job`` submitted to the queue at once (as ``dagster job
launch`` does: the run created from the code location's job with the tags ``dagster/partition`` and
``college``). The daemon dequeues them; the DefaultRunLauncher starts each in a process of its own (a
child of the code server). Raw zone and published datasets are on a moto S3 server on loopback
(``HUB_RAW_DIR`` / ``HUB_PUBLISHED_ROOT`` = ``s3://campus-hub/<phase>``, one ``xxdm=<code>/`` prefix per
college); the warehouse files stay local (DuckDB's file).

Per run: wall time from its run record (start to end, as the instance recorded them), status, and the
peak RSS of the process that ran it: the benchmark polls the code server's child processes every 0.5 s
for their kernel high-water mark (VmHWM) and maps each process to its run by the pid of the run's
RUN_START event. Then each college's national tables of phase 2 are compared with phase 1's (without
sjcjsj, the load's start time), and phase 2's published roots on S3 are committed to the province's
Iceberg tables (SQLite catalog under <work>, warehouse on the S3 server), read back through the catalog
and compared with each college's published datasets; rows counted per table and college. Nothing here
asserts a speed; figures go to docs/scale-out.md with this command.
"""

from __future__ import annotations

import argparse
import calendar
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
BUCKET = "campus-hub"
S3_ENV = {"AWS_ACCESS_KEY_ID": "hub-bench", "AWS_SECRET_ACCESS_KEY": "hub-bench-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


def _sources_for(prefix: str, out: Path) -> Path:
    from hub.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8").replace("${HUB_", f"${{HUB_{prefix}_")
    out.write_text(text, encoding="utf-8")
    return out


def _module(name: str) -> list[str]:
    """``python -m <name>`` with this interpreter: a copied virtualenv's scripts may name another one in their
    #! line, which would import another checkout's hub."""
    return [sys.executable, "-m", name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start(stack: ExitStack, cmd: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    handle = stack.enter_context(log.open("w"))
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
    stack.callback(_stop, proc)
    return proc


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# Stopped for the benchmark: they would launch runs of their own beside the measured ones (the automation
# sensor rebuilds what is downstream of tables a run changed; the inbox sensor loads dropped files, which
# the measured runs load). The dead-run sweeper stays on. Both sensors are tested elsewhere.
BENCH_STOPPED_SENSORS = ("hub_automation", "party_inbox_sensor")


def _instance_yaml(max_runs: int) -> str:
    """deploy/dagster.yaml with ``max_concurrent_runs`` set for the phase (and checked to be there)."""
    from hub.instance import PG_INSTANCE_YAML

    text = PG_INSTANCE_YAML.read_text(encoding="utf-8")
    old = "max_concurrent_runs: 8"
    if old not in text:
        raise SystemExit(f"{PG_INSTANCE_YAML}: no `{old}` to set per phase")
    return text.replace(old, f"max_concurrent_runs: {max_runs}")


def run_phase(phase: str, codes: list[str], max_runs: int, *, work: Path, campuses: dict[str, Path],
              base_env: dict[str, str], timeout: float, until: float) -> dict:
    """One phase: code server, daemon, every college's run queued at once; measured until all are done."""
    import psutil
    import yaml
    from dagster import DagsterEventType, DagsterInstance, RunsFilter
    from dagster._cli.job import execute_launch_command
    from dagster._cli.workspace.cli_target import WorkspaceOpts

    from campus_sim.inbox import drop_party_exports
    from campus_sim.servers import SourceServers
    from hub.instance import AUTOMATION_ENV, stop_sensors

    root = work / phase
    root.mkdir(parents=True, exist_ok=True)
    conf = work / "conf"
    entries = []
    env = {**base_env, **AUTOMATION_ENV}  # the code server as deployed (it evaluates hub_automation)
    with ExitStack() as stack:
        for c in codes:
            entries.append({"xxdm": c, "name": f"模拟学院 {c}",
                            "sources": _sources_for(f"C{c}", conf / f"{c}.yaml").name, "var_dir": str(root / c)})
            inbox = root / c / "inbox_drop"
            drop_party_exports(campuses[c], inbox)
            urls = stack.enter_context(SourceServers(campuses[c])).urls
            p = f"HUB_C{c}_"
            env.update({f"{p}HR_URL": urls["hr"], f"{p}XG_URL": urls["student"], f"{p}ACTIVITY_URL": urls["activity"],
                        f"{p}LEARNING_URL": urls["learning"],
                        f"{p}ACADEMIC_URL": f"sqlite:///{campuses[c] / 'academic' / 'academic.sqlite'}",
                        f"{p}INBOX_DIR": str(inbox)})
        colleges_file = conf / f"colleges_{phase}.yaml"
        colleges_file.write_text(yaml.safe_dump({"colleges": entries}, allow_unicode=True), encoding="utf-8")
        home = root / "dagster_home"
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text(_instance_yaml(max_runs), encoding="utf-8")
        env.update({"HUB_COLLEGES_FILE": str(colleges_file), "DAGSTER_HOME": str(home),
                    "HUB_RAW_DIR": f"s3://{BUCKET}/{phase}", "HUB_PUBLISHED_ROOT": f"s3://{BUCKET}/{phase}"})
        port = _free_port()
        code_server = _start(stack, [*_module("dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
                                     "-m", "hub.definitions", "-a", "defs", "--location-name", "colleges"],
                             env, root, root / "code_server.log")
        workspace = root / "workspace.yaml"
        workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                             f"      port: {port}\n      location_name: colleges\n")
        _wait_for_port(port, code_server, "the code server (dagster api grpc -m hub.definitions)")
        os.environ.update(env)  # the instance's yaml reads HUB_DAGSTER_PG_URL
        instance = stack.enter_context(DagsterInstance.from_config(str(home)))
        # every college's run is queued before the daemon starts: the queue, not the order of submission, decides
        # what runs when (and the inbox sensor sees each college's run in flight, so it launches no load of its own)
        stopped = stop_sensors(instance, workspace, BENCH_STOPPED_SENSORS)
        load_start = os.getloadavg()
        submitted = time.time()
        run_ids = {}
        for c in codes:
            run = execute_launch_command(instance=instance, workspace_opts=WorkspaceOpts(workspace=[str(workspace)]),
                                         job_name="campus_main_job",
                                         tags=json.dumps({"dagster/partition": c, "college": c}))
            run_ids[run.run_id] = c
        daemon = _start(stack, [*_module("dagster._daemon"), "run", "-w", str(workspace)], env, root,
                        root / "daemon.log")
        hwm: dict[int, int] = {}
        server = psutil.Process(code_server.pid)
        deadline = min(time.time() + timeout, until)
        while True:
            for child in server.children(recursive=True):
                peak = _vm_hwm(child.pid)
                if peak:
                    hwm[child.pid] = max(hwm.get(child.pid, 0), peak)
            runs = instance.get_runs(RunsFilter(run_ids=list(run_ids)))
            if all(r.status.value in TERMINAL for r in runs):
                break
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}); see {root / 'daemon.log'}")
            if time.time() > deadline:
                _cancel(instance, [r for r in runs if r.status.value not in TERMINAL])
                # wait for the canceled runs' records to end (the worker is told to stop)
                end_by = time.monotonic() + 120
                while time.monotonic() < end_by and not all(
                        r.status.value in TERMINAL for r in instance.get_runs(RunsFilter(run_ids=list(run_ids)))):
                    time.sleep(1)
                break
            time.sleep(0.5)
        done = time.time()
        load_end = os.getloadavg()
        results = []
        for record in instance.get_run_records(RunsFilter(run_ids=list(run_ids))):
            run = record.dagster_run
            starts = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)
            pid = starts[0].dagster_event.pid if starts else None
            failed = sorted({e.dagster_event.step_key for e in
                             instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)})
            results.append({
                "xxdm": run_ids[run.run_id], "run_id": run.run_id, "status": run.status.value,
                "success": run.status.value == "SUCCESS", "partition": run.tags.get("dagster/partition"),
                "start": record.start_time, "end": record.end_time,
                "seconds": round(record.end_time - record.start_time, 1)
                if record.start_time and record.end_time else None,
                "queued_seconds": round(record.start_time - submitted, 1) if record.start_time else None,
                "pid": pid, "peak_rss_mb": round(hwm[pid] / 2**20) if pid in hwm else None, "failed": failed})
        results.sort(key=lambda r: r["start"] or 0)
        starts = [r["start"] for r in results if r["start"]]
        ends = [r["end"] for r in results if r["end"]]
        overlaps = max(sum(1 for o in results if o["start"] and o["end"] and o["start"] < r["end"] <= o["end"])
                       for r in results if r["end"]) if ends else 0
    return {"phase": phase, "max_concurrent_runs": max_runs, "runs": results, "sensors_stopped": stopped,
            "seconds": round(max(ends) - min(starts), 1) if starts and ends else None,
            "submitted_to_done_seconds": round(done - submitted, 1), "max_runs_at_once": overlaps,
            "loadavg_start": [round(x, 1) for x in load_start], "loadavg_end": [round(x, 1) for x in load_end]}


def _cancel(instance, runs) -> None:
    """Past the phase's time: queued runs canceled, started ones terminated (their worker is told to stop)."""
    for run in runs:
        try:
            if run.status.value == "QUEUED" or not instance.run_launcher.terminate(run.run_id):
                instance.report_run_canceled(run, message="benchmark: past the phase's time")
        except Exception as exc:  # noqa: BLE001 - the phase still reports what finished
            print(f"could not cancel {run.run_id}: {exc}", flush=True)


def _rows(table) -> list[tuple]:
    import duckdb

    con = duckdb.connect()
    con.register("t", table)
    cols = [c for c in table.column_names if c != "sjcjsj"]
    return con.execute(f"SELECT {', '.join(cols)} FROM t ORDER BY ALL").fetchall()


def _national(root: str) -> dict[str, list]:
    from hub import province

    return {d: _rows(province.read_published(root, d)[1]) for d in province.national_datasets()}


def _sorted_rows(table) -> list[tuple]:
    columns = sorted(table.column_names)
    return sorted(zip(*[table.column(c).to_pylist() for c in columns], strict=True), key=repr)


class MotoServer:
    """moto's S3 server in its own process on loopback; botocore pointed at it (AWS_ENDPOINT_URL_S3)."""

    def __enter__(self):
        if importlib.util.find_spec("moto") is None:
            raise SystemExit("moto is not installed: `make install` installs the dev extra (moto[server])")
        port = _free_port()
        self.proc = subprocess.Popen([*_module("moto.server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_for_port(port, self.proc, "moto_server", timeout=60)
        self.env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}
        return self

    def __exit__(self, *exc):
        _stop(self.proc)


def _attempt(step, as_dict: str | None = None):
    """A check's result, or its error as a string (the figures measured so far are still written)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - recorded in colleges.json and printed
        print(f"{type(exc).__name__}: {exc}", flush=True)
        return {as_dict: f"{type(exc).__name__}: {exc}"} if as_dict else f"error: {type(exc).__name__}: {exc}"


def _province(work: Path, codes: list[str]) -> dict:
    """The colleges' published roots (pairs, on S3) committed to the province's Iceberg tables (SQLite catalog
    under <work>, warehouse on S3), read back through the catalog and compared with each published dataset."""
    from hub import province
    from pipelines.national import NATIONAL

    env = {**os.environ, "HUB_ICEBERG_CATALOG_URI": f"sqlite:///{work / 'province' / 'catalog.sqlite'}",
           "HUB_ICEBERG_WAREHOUSE": f"s3://{BUCKET}/province", "HUB_VAR_DIR": str(work / "var")}
    catalog_file = work / "province" / "catalog.sqlite"
    if catalog_file.exists():
        catalog_file.unlink()
    catalog = province.open_catalog(province.catalog_properties(env=env))
    t0 = time.monotonic()
    for c in codes:
        province.publish_college(catalog, c, f"s3://{BUCKET}/pairs/xxdm={c}/published")
    commit_seconds = round(time.monotonic() - t0, 1)
    counts, equal = {}, {}
    for t in province.national_datasets():
        rows = catalog.load_table(f"{province.NAMESPACE}.{t}").scan().to_arrow()
        counts[t] = {"rows": rows.num_rows,
                     "colleges": len(set(rows.column(NATIONAL.published_names[t]["xxdm"]).to_pylist()))}
        for c in codes:
            _, published = province.read_published(f"s3://{BUCKET}/pairs/xxdm={c}/published", t)
            equal[c] = equal.get(c, True) and published.num_rows > 0 and \
                _sorted_rows(province.read_college(catalog, t, c)) == _sorted_rows(published)
    return {"iceberg_commit_seconds": commit_seconds, "iceberg": counts, "iceberg_equal_to_published": equal,
            "iceberg_files_on_s3": all(f.startswith(f"s3://{BUCKET}/province/") for t in province.national_datasets()
                                       for f in province.data_files(catalog, t))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--colleges", type=int, default=8)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--alone", type=int, default=None, help="colleges run one at a time (default: all)")
    ap.add_argument("--work", default="var/bench/colleges")
    ap.add_argument("--alone-timeout", type=float, default=7200,
                    help="seconds for the one-at-a-time phase; runs not done by then are canceled")
    ap.add_argument("--timeout", type=float, default=7200, help="seconds for the two-at-a-time phase")
    ap.add_argument("--until", default=None, help="HH:MM (UTC, today): no run goes on past it (minus 6 min for "
                                                  "the checks and the Iceberg commits)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # stop the servers and the daemon on the way out

    import fsspec
    import psycopg

    from benchmarks.measure import machine_base
    from campus_sim.generate import generate
    from hub.instance import PG_URL_VAR
    from hub.keys import DEMO_KEYS

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "conf").mkdir(exist_ok=True)
    codes = [f"41450{i:05d}" for i in range(1, args.colleges + 1)]
    alone_codes = codes[:args.alone if args.alone is not None else len(codes)]
    campuses = {}
    for i, code in enumerate(codes, start=1):
        campuses[code] = work / f"campus_{i}"
        if not (campuses[code] / "manifest.json").exists():
            generate(campuses[code], scale=args.scale, seed=i)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                            capture_output=True, text=True).stdout.strip()
    db = f"hub_bench_colleges_{os.getpid()}"
    report: dict = {"colleges": len(codes), "scale": args.scale, "commit": commit,
                    "machine": machine_base(["dagster", "dagster-postgres", "duckdb", "pyiceberg", "s3fs", "moto"]),
                    "loadavg_start": [round(x, 1) for x in os.getloadavg()],
                    "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with MotoServer() as moto:
        os.environ.update(moto.env)
        fsspec.filesystem("s3").clear_instance_cache()
        fsspec.filesystem("s3").mkdir(BUCKET)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"')
        try:
            env = {**os.environ, **moto.env, PG_URL_VAR: f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
                   "HUB_VAR_DIR": str(work / "var"), "HUB_MODE": os.environ.get("HUB_MODE", "demo")}
            env.update({k: env.get(k) or v for k, v in DEMO_KEYS.items()})
            phases = []
            if alone_codes:
                phases.append(("alone", alone_codes, 1))
            phases.append(("pairs", codes, 2))
            until = float("inf")
            if args.until:
                hh, mm = (int(x) for x in args.until.split(":"))
                now = time.gmtime()
                until = calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, hh, mm, 0)) - 360
            out = work / "colleges.json"
            for phase, phase_codes, max_runs in phases:
                report[phase] = run_phase(phase, phase_codes, max_runs, work=work, campuses=campuses, base_env=env,
                                          timeout=args.alone_timeout if phase == "alone" else args.timeout,
                                          until=until)
                out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")  # so far
                for r in report[phase]["runs"]:
                    print(phase, json.dumps({k: r[k] for k in ("xxdm", "status", "seconds", "peak_rss_mb",
                                                               "failed")}), flush=True)
                print(phase, "phase", report[phase]["seconds"], "s", flush=True)
        finally:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        ok = {r["xxdm"] for r in report["pairs"]["runs"] if r["success"]}
        alone_ok = {r["xxdm"] for r in report.get("alone", {}).get("runs", []) if r["success"]}
        report["equal_to_alone"] = {}
        for c in alone_codes:
            if c in ok and c in alone_ok:
                report["equal_to_alone"][c] = _attempt(
                    lambda c=c: _national(f"s3://{BUCKET}/pairs/xxdm={c}/published")
                    == _national(f"s3://{BUCKET}/alone/xxdm={c}/published"))
        report.update(_attempt(lambda: _province(work, sorted(ok)), as_dict="iceberg_error"))
        report["raw_parts_on_s3"] = _attempt(lambda: {
            c: len(fsspec.filesystem("s3").glob(f"{BUCKET}/pairs/xxdm={c}/raw/**/*.parquet")) for c in codes})
    report["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    report["ended"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out = work / "colleges.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("alone", "pairs", "machine")}, indent=2,
                     ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
