"""Many colleges through one Dagster instance on PostgreSQL (issue 18 §5, docs/scale-out.md).

    .venv/bin/python benchmarks/colleges.py [--colleges 8] [--scale 0.5] [--work var/bench/colleges]

N simulated campuses (seeds 1..N) at ``--scale``, one ``colleges.yaml`` (hub/colleges.py) and every asset
partitioned by college. Each college's partition of ``campus_main_job`` runs in a process of its own
(``execute_in_process`` on the instance of deploy/dagster.yaml: runs and event logs in PostgreSQL,
127.0.0.1:5432, database created for the run and dropped after), with its campus served on loopback:

1. one college at a time (each college alone), into <work>/alone/<xxdm>;
2. two colleges at a time, into <work>/pairs/<xxdm>.

Per run: wall time, success, the process's peak RSS (VmHWM). Then each college's national tables of
step 2 are compared with step 1's (without sjcjsj, the load's start time), and step 2's published roots
are committed to the province's Iceberg tables (SQLite catalog under <work>) and their rows counted per
table and college. Nothing here asserts a speed; figures go to docs/scale-out.md with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _sources_for(prefix: str, out: Path) -> Path:
    from hub.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8").replace("${HUB_", f"${{HUB_{prefix}_")
    out.write_text(text, encoding="utf-8")
    return out


def run_one(colleges_file: str, xxdm: str, campus: str, home: str) -> dict:
    """One college's partition of campus_main_job in this process; prints a JSON line."""
    import dagster as dg

    from benchmarks.measure import peak_rss_bytes
    from campus_sim.inbox import drop_party_exports
    from campus_sim.servers import SourceServers
    from hub.colleges import load_colleges
    from hub.factory import build_definitions
    from hub.settings import Settings

    colleges = load_colleges(colleges_file)
    settings = Settings.from_env()
    paths = colleges.paths(xxdm, settings)
    prefix = f"C{xxdm}"
    inbox = paths.var_dir / "inbox_drop"
    drop_party_exports(campus, inbox)
    started = time.monotonic()
    with SourceServers(campus) as servers:
        urls = servers.urls
        os.environ.update({f"HUB_{prefix}_HR_URL": urls["hr"], f"HUB_{prefix}_XG_URL": urls["student"],
                           f"HUB_{prefix}_ACTIVITY_URL": urls["activity"], f"HUB_{prefix}_LEARNING_URL": urls["learning"],
                           f"HUB_{prefix}_ACADEMIC_URL": f"sqlite:///{Path(campus) / 'academic' / 'academic.sqlite'}",
                           f"HUB_{prefix}_INBOX_DIR": str(inbox)})
        job = build_definitions(settings, colleges).resolve_job_def("campus_main_job")
        with dg.DagsterInstance.from_config(home) as instance:
            result = job.execute_in_process(partition_key=xxdm, instance=instance, raise_on_error=False,
                                            tags={"college": xxdm})
            run_id = result.run_id
    return {"xxdm": xxdm, "success": result.success, "seconds": round(time.monotonic() - started, 1),
            "peak_rss_mb": round((peak_rss_bytes() or 0) / 2**20), "run_id": run_id,
            "failed": [e.step_key for e in result.all_events if e.is_step_failure]}


def _national(root: str) -> dict[str, list]:
    import duckdb

    from hub.publisher import read_manifest
    from pipelines.national import NATIONAL_TABLES

    con = duckdb.connect()
    out = {}
    for t in NATIONAL_TABLES:
        m = read_manifest(root, t.dataset)
        files = [str(Path(root) / t.dataset / m["version"] / f["path"]) for f in m["files"]]
        out[t.dataset] = con.execute("SELECT * EXCLUDE (sjcjsj) FROM read_parquet(?) ORDER BY ALL", [files]).fetchall()
    return out


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--run-one", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"success": False, "error": f"exit {proc.returncode}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--colleges", type=int, default=8)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--work", default="var/bench/colleges")
    ap.add_argument("--run-one", nargs=4, metavar=("COLLEGES_FILE", "XXDM", "CAMPUS", "HOME"))
    args = ap.parse_args()
    if args.run_one:
        print(json.dumps(run_one(*args.run_one)), flush=True)
        return

    import psycopg
    import yaml

    from campus_sim.generate import generate
    from hub import province
    from hub.instance import PG_URL_VAR, instance_home
    from hub.settings import Settings

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    codes = [f"41450{i:05d}" for i in range(1, args.colleges + 1)]
    campuses = {}
    for i, code in enumerate(codes, start=1):
        campuses[code] = work / f"campus_{i}"
        if not (campuses[code] / "manifest.json").exists():
            generate(campuses[code], scale=args.scale, seed=i)
    conf = work / "conf"
    conf.mkdir(exist_ok=True)
    files = {}
    for phase in ("alone", "pairs"):
        entries = [{"xxdm": c, "name": f"模拟学院 {c}", "sources": _sources_for(f"C{c}", conf / f"{c}.yaml").name,
                    "var_dir": str(work / phase / c)} for c in codes]
        files[phase] = conf / f"colleges_{phase}.yaml"
        files[phase].write_text(yaml.safe_dump({"colleges": entries}, allow_unicode=True), encoding="utf-8")
    db = f"hub_bench_colleges_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    report: dict = {"colleges": len(codes), "scale": args.scale, "alone": [], "pairs": []}
    try:
        env = {**os.environ, PG_URL_VAR: f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
               "HUB_VAR_DIR": str(work / "var"), "HUB_MODE": os.environ.get("HUB_MODE", "demo")}
        from hub.keys import DEMO_KEYS

        env.update({k: env.get(k) or v for k, v in DEMO_KEYS.items()})
        home = str(instance_home(Settings.from_env(env), env))
        env["DAGSTER_HOME"] = home
        t0 = time.monotonic()
        for code in codes:
            r = _result(_spawn([str(files["alone"]), code, str(campuses[code]), home], env))
            report["alone"].append(r)
            print("alone", r, flush=True)
        report["alone_seconds"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        for i in range(0, len(codes), 2):
            procs = [_spawn([str(files["pairs"]), c, str(campuses[c]), home], env) for c in codes[i:i + 2]]
            for p in procs:
                r = _result(p)
                report["pairs"].append(r)
                print("pairs", r, flush=True)
        report["pairs_seconds"] = round(time.monotonic() - t0, 1)
        report["equal_to_alone"] = {c: _national(str(work / "pairs" / c / "published"))
                                    == _national(str(work / "alone" / c / "published")) for c in codes}
        (work / "province" / "warehouse").mkdir(parents=True, exist_ok=True)
        catalog = province.open_catalog({"uri": f"sqlite:///{work / 'province' / 'catalog.sqlite'}",
                                         "warehouse": (work / "province" / "warehouse").as_uri()})
        for c in codes:
            province.publish_college(catalog, c, str(work / "pairs" / c / "published"))
        counts = {}
        for t in province.national_datasets():
            rows = catalog.load_table(f"{province.NAMESPACE}.{t}").scan(selected_fields=("xxdm",)).to_arrow()
            counts[t] = {"rows": rows.num_rows, "colleges": len(set(rows.column("xxdm").to_pylist()))}
        report["iceberg"] = counts
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    out = work / "colleges.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("alone", "pairs")}, indent=2, ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
