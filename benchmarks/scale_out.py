"""Scale-out measurements (docs/scale-out.md): object-store publishing and the province's Iceberg commits.

    .venv/bin/python benchmarks/scale_out.py [--colleges 32] [--rows 200000] [--out var/bench/scale_out.json]

A. Publishing one dataset (``--rows`` rows, 4 columns) five times with changed content, to a local root
   (the peer, same run) and to an S3 API (moto's server on loopback, its own process); then the catalog's
   conditional switch alone (``hub.object_store.conditional_update``), one writer and four at once.
B. The province's tables (``hub.province``): ``--colleges`` colleges, each with the six national tables
   at synthetic per-college sizes (real column names and types, ``NATIONAL_ROWS``) published under its own
   root, committed one college after the other into a SQLite catalog and into a PostgreSQL one
   (127.0.0.1:5432), warehouse on local disk; per commit: seconds and the number of colleges already in
   the table. Then one college rewritten at the end, and two colleges committed at once (threads).

Nothing here asserts a speed; the figures go to docs/scale-out.md with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import peak_rss_bytes  # noqa: E402
from hub import object_store, province  # noqa: E402
from hub.publisher import Column, DatasetSpec, Publisher  # noqa: E402
from pipelines.national import NATIONAL, NATIONAL_TABLES, all_fields  # noqa: E402

# rows per college and table: about a college of 15,000 students (a fifth of them party activity rows)
NATIONAL_ROWS = {"zt_dzzqkjcsj": 80, "zt_dyfzsj": 2_000, "zt_dksj": 600, "zt_dyhdsj": 6_000,
                 "zt_dygbxxsj": 20_000, "zt_dyzzgxzysj": 300}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    return proc, endpoint


def bench_publish(rows: int, work: Path) -> dict:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.mkdir("bench-publish")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT i AS id, 'name-' || i AS name, i % 97 AS org, 0 AS batch "
                f"FROM range({rows}) r(i)")
    spec = DatasetSpec(name="members", description="bench", query="SELECT * FROM t", order_by="id",
                       columns=tuple(Column(c, c, "public") for c in ("id", "name", "org", "batch")),
                       audience="public")
    out = {}
    for label, root in (("local", str(work / "published")), ("s3", "s3://bench-publish/published")):
        pub = Publisher(root, keep_versions=3)
        times = []
        for batch in range(1, 6):
            con.execute(f"UPDATE t SET batch = {batch}")
            started = time.perf_counter()
            manifest = pub.publish(con, spec, lineage=[], quality={})
            times.append(time.perf_counter() - started)
        out[label] = {"publishes": len(times), "median_s": statistics.median(times), "min_s": min(times),
                      "bytes": manifest["files"][0]["bytes"]}
    path = "bench-publish/switch.json"

    def bump(current: bytes | None) -> bytes:
        doc = json.loads(current) if current else {"n": 0}
        return json.dumps({"n": doc["n"] + 1}).encode()

    single = []
    for _ in range(20):
        started = time.perf_counter()
        object_store.conditional_update(fs, path, bump)
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda: [object_store.conditional_update(fs, path, bump) for _ in range(10)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    racing = time.perf_counter() - started
    out["switch"] = {"single_median_s": statistics.median(single), "four_writers_40_updates_s": racing,
                     "final_count": json.loads(fs.cat_file(path))["n"]}
    return out


def _national_spec(table) -> DatasetSpec:
    fields = all_fields(table)
    names = NATIONAL.published_names[table.dataset]
    n = NATIONAL_ROWS[table.dataset]
    select = []
    for f in fields:
        name = names[f.name]
        if f.name == "xxdm":
            select.append(f"getvariable('bench_xxdm') AS {name}")
        elif f.name == "zjsjwyxbs":
            select.append(f"upper(substr(md5(getvariable('bench_xxdm') || i), 1, 32)) AS {name}")
        elif f.kind == "int":
            select.append(f"CAST(i % 500 AS INTEGER) AS {name}")
        else:
            select.append(f"substr('{f.name}-' || i || '-' || getvariable('bench_xxdm'), 1, {f.max_length or 60}) "
                          f"AS {name}")
    return DatasetSpec(name=table.dataset, description=table.title, order_by=names["zjsjwyxbs"],
                       query=f"SELECT {', '.join(select)} FROM range({n}) r(i)",
                       columns=tuple(Column(names[f.name], f.description, "public") for f in fields),
                       audience="public")


def publish_colleges(n: int, work: Path) -> dict[str, str]:
    con = duckdb.connect()
    roots = {}
    for k in range(n):
        xxdm = f"41450{k:05d}"
        con.execute("SET VARIABLE bench_xxdm = ?", [xxdm])
        roots[xxdm] = str(work / f"college-{xxdm}")
        for table in NATIONAL_TABLES:
            Publisher(roots[xxdm]).publish(con, _national_spec(table), lineage=[], quality={})
    return roots


def bench_iceberg(label: str, props: dict, roots: dict[str, str], work: Path) -> dict:
    catalog = province.open_catalog(props)
    per_college = []
    for i, (xxdm, root) in enumerate(roots.items()):
        started = time.perf_counter()
        commits = province.publish_college(catalog, xxdm, root)
        per_college.append({"colleges_before": i, "seconds": time.perf_counter() - started,
                            "commit_s": [round(c.seconds, 4) for c in commits]})
    # rewrite the first college with new versions (another key in its rows)
    first_xxdm, first_root = next(iter(roots.items()))
    con = duckdb.connect()
    con.execute("SET VARIABLE bench_xxdm = ?", [first_xxdm])
    for table in NATIONAL_TABLES:
        spec = _national_spec(table)
        spec = DatasetSpec(**{**spec.__dict__, "query": spec.query.replace("md5(getvariable('bench_xxdm') || i)",
                                                                          "md5('v2' || getvariable('bench_xxdm') || i)")})
        Publisher(first_root).publish(con, spec, lineage=[], quality={})
    started = time.perf_counter()
    province.publish_college(catalog, first_xxdm, first_root)
    rewrite = time.perf_counter() - started
    # two new colleges at once
    extra = publish_colleges_named(["4146000001", "4146000002"], work / f"extra-{label}")
    results = {}

    def run(x):
        results[x] = province.publish_college(catalog, x, extra[x])

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(x,)) for x in extra]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent = time.perf_counter() - started
    attempts = sum(c.attempts for cs in results.values() for c in cs)
    rows = {d: len(catalog.load_table(f"national.{d}").scan().to_arrow()) for d in province.national_datasets()}
    started = time.perf_counter()
    province.read_college(catalog, "zt_dygbxxsj", first_xxdm)
    read_one = time.perf_counter() - started
    return {"per_college": per_college, "rewrite_first_s": rewrite, "two_at_once_s": concurrent,
            "two_at_once_commits": 12, "two_at_once_attempts": attempts, "table_rows": rows,
            "read_one_college_zt_dygbxxsj_s": read_one}


def publish_colleges_named(codes: list[str], work: Path) -> dict[str, str]:
    con = duckdb.connect()
    roots = {}
    for xxdm in codes:
        con.execute("SET VARIABLE bench_xxdm = ?", [xxdm])
        roots[xxdm] = str(work / f"college-{xxdm}")
        for table in NATIONAL_TABLES:
            Publisher(roots[xxdm]).publish(con, _national_spec(table), lineage=[], quality={})
    return roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--colleges", type=int, default=32)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("var/bench/scale_out.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hub-scale-out-"))
    moto, endpoint = start_moto()
    result: dict = {"colleges": args.colleges, "rows": args.rows, "national_rows": NATIONAL_ROWS,
                    "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    try:
        result["publish"] = bench_publish(args.rows, work)
        print(json.dumps(result["publish"], indent=1), flush=True)
        roots = publish_colleges(args.colleges, work / "colleges")
        result["iceberg_sqlite"] = bench_iceberg("sqlite", province.catalog_properties(
            env={"HUB_VAR_DIR": str(work / "sqlite")}), roots, work)
        print("sqlite", json.dumps({k: v for k, v in result["iceberg_sqlite"].items() if k != "per_college"}),
              flush=True)
        import psycopg

        name = f"hub_bench_iceberg_{os.getpid()}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            roots_pg = publish_colleges(args.colleges, work / "colleges-pg")
            result["iceberg_postgres"] = bench_iceberg("pg", province.catalog_properties(env={
                "HUB_VAR_DIR": str(work / "pg"),
                "HUB_ICEBERG_CATALOG_URI": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"}), roots_pg, work)
            print("postgres", json.dumps({k: v for k, v in result["iceberg_postgres"].items()
                                          if k != "per_college"}), flush=True)
        finally:
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    result["peak_rss_bytes"] = peak_rss_bytes()
    result["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for label in ("iceberg_sqlite", "iceberg_postgres"):
        per = result.get(label, {}).get("per_college", [])
        if per:
            firsts, lasts = per[: max(1, len(per) // 8)], per[-max(1, len(per) // 8):]
            first = statistics.mean(p["seconds"] for p in firsts)
            last = statistics.mean(p["seconds"] for p in lasts)
            print(label, f"first colleges: {first:.2f} s/college, last: {last:.2f} s/college")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
