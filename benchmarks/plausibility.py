"""What the plausibility checks (quality/plausibility.yaml) cost a staging build.

Generates the simulated campus at ``--scale`` (cached under var/bench/plausibility-<S>/), loads every source
through the real connectors once, then rebuilds every staging model ``--rounds`` times with the shipped
checks and with none (an empty plausibility file, passed as ``checks``), alternating, in one process on
one warehouse. Prints the median wall and CPU seconds (all threads of the process) per configuration and
the rows staged; on a shared machine the CPU seconds are the steadier figure.

    .venv/bin/python -m benchmarks.plausibility --scale 1 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from campus_sim.generate import generate
from campus_sim.inbox import drop_party_exports
from campus_sim.servers import SourceServers
from connectors import load_entity, load_sources
from hub.settings import Settings
from hub.warehouse import connect
from models.build import STAGING_MODELS, build_staging, load_code_sets
from models.plausibility import load_checks

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = ROOT / "var" / "bench" / f"plausibility-{args.scale:g}"
    campus = work / "campus"
    if not (campus / "manifest.json").exists():
        generate(campus, scale=args.scale, seed=20261)
    run = work / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    inbox = run / "inbox"
    drop_party_exports(campus, inbox)
    con = connect(run / "warehouse.duckdb")
    with SourceServers(campus) as servers:
        env = Settings.from_env({"HUB_VAR_DIR": str(run)}).source_env(servers.urls)
        env |= {"HUB_ACADEMIC_URL": f"sqlite:///{campus / 'academic' / 'academic.sqlite'}", "HUB_INBOX_DIR": str(inbox)}
        os.environ.update(env)
        for source in load_sources(ROOT / "sources.yaml").values():
            for entity in source.entities.values():
                load_entity(con, run / "raw", source, entity)
    load_code_sets(con)
    empty = run / "no-checks.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    times: dict[str, list[float]] = {"shipped checks": [], "no checks": []}
    cpu: dict[str, list[float]] = {"shipped checks": [], "no checks": []}
    rows = 0
    for _ in range(args.rounds):
        for label, path in (("no checks", empty), ("shipped checks", None)):
            t, c = time.perf_counter(), time.process_time()
            checks = load_checks(path)  # as a run's staging assets get them from run_settings.plausibility_file
            rows = sum(build_staging(con, name, checks=checks)["rows_in"] for name in STAGING_MODELS)
            times[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
    con.close()
    print(f"scale {args.scale:g}: {rows:,} staged rows in, {len(STAGING_MODELS)} models, {args.rounds} rounds")
    for label, ts in times.items():
        print(f"  {label:15s} wall median {statistics.median(ts):6.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)}); "
              f"CPU median {statistics.median(cpu[label]):6.2f} s (runs: {', '.join(f'{t:.2f}' for t in cpu[label])})")


if __name__ == "__main__":
    main()
