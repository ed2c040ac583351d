"""Memory bounds benchmark: peak RSS of `hub load` on a large CSV file and on a large JSON response.

Two workloads, each loaded by a fresh `hub load` child process into a fresh warehouse:

``csv``   one 200 MB party-system export (GB18030, as the party system writes them; 10 columns, a
          合计 footer row), dropped into an inbox and read by a ``kind: files`` source;
``json``  one 60 MB JSON answer (a single page: ``{"data": [...], "next": null}``), served on loopback
          by this (parent) process and read by a ``kind: rest`` source.

For each workload and each code version the parent records the child's resident-memory high-water mark
(``VmHWM``, reported by the child as its last act; cross-checked by polling the process tree, see
benchmarks/measure.py), its wall time and CPU time. The **peer** is the hub before the bounds
(``--peer-ref``, default the commit before issue 13's bounds), checked out with ``git worktree`` into a
temporary folder and run with the same interpreter and packages, in the same run, on the same data.

Usage::

    .venv/bin/python benchmarks/bounds.py --peer-ref 6d7d7a1 --repeat 2

The machine is shared (2 cores, other jobs running): wall times are noisy, peak RSS much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import machine_base, run_measured, warm_page_cache  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "HUB-BOUNDS-RESULT "
# The child: `hub load` as the CLI runs it, then its own high-water mark as the last line.
CHILD = f"""
import json, sys
from pathlib import Path
from hub.cli import main
code = 0
try:
    main(sys.argv[1:], prog_name="hub")
except SystemExit as exc:
    code = exc.code or 0
hwm = next(int(l.split()[1]) * 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print({PREFIX!r} + json.dumps({{"exit": code, "peak_rss": hwm}}), flush=True)
"""


def make_csv(path: Path, size: int) -> int:
    """A GB18030 export of about ``size`` bytes; returns its data rows."""
    rng = random.Random(7)
    names = ["韦小宝", "覃丽", "莫德明", "黄海燕", "陆志强", "蒙秀英", "梁建华", "农丽萍"]
    branches = ["机电工程学院党总支", "信息工程学院第一党支部", "财经学院学生党支部", "离退休党支部"]
    rows = 0
    with path.open("wb") as out:
        out.write("流水号,人员编号,姓名,所在支部,缴费月份,缴费基数,应缴金额,实缴金额,缴费方式,备注\n".encode("gb18030"))
        while out.tell() < size:
            lines = []
            for _ in range(20_000):
                rows += 1
                base = rng.randint(2000, 12000)
                lines.append(f"{rows:010d},{2024010000 + rows % 90000},{rng.choice(names)},{rng.choice(branches)},"
                             f"2024-{rng.randint(1, 12):02d},{base},{base * 0.005:.2f},{base * 0.005:.2f},"
                             f"{rng.choice(['微信', '现金', '银行代扣'])},\n")
            out.write("".join(lines).encode("gb18030"))
        out.write(f"合计,,,,,,,{rows}人,,\n".encode("gb18030"))
    return rows


def make_json(size: int) -> tuple[bytes, int]:
    rng = random.Random(8)
    records, total, n = [], 2, 0
    while total < size:
        n += 1
        r = {"id": f"{n:010d}", "person_no": str(2024010000 + n % 90000), "name": rng.choice(["韦小宝", "覃丽"]),
             "course": f"C{rng.randint(1, 400):04d}", "minutes": rng.randint(1, 240), "score": rng.random() * 100,
             "passed": rng.random() > 0.2, "updated_at": f"2026-{rng.randint(1, 12):02d}-01T08:00:00Z",
             "note": "学习强国专题" if n % 3 else None, "tags": ["党史", "理论"] if n % 5 == 0 else []}
        text = json.dumps(r, ensure_ascii=False)
        records.append(text)
        total += len(text.encode()) + 1
    return ('{"data": [' + ",".join(records) + '], "next": null}').encode(), n


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


SOURCES = """sources:
  party:
    kind: files
    inbox: {inbox}
    entities:
      big: {{pattern: "党费缴纳_*.csv", primary_key: 流水号}}
  vendor:
    kind: rest
    base_url: {url}
    entities:
      records:
        path: /records
        records_path: data
        paginator: {{type: cursor, cursor_param: c, limit_param: n, limit: 1000000, next_cursor_path: next}}
        primary_key: id
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-ref", default="6d7d7a1", help="git ref of the peer (the hub before the bounds)")
    ap.add_argument("--csv-mb", type=float, default=200)
    ap.add_argument("--json-mb", type=float, default=60)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workloads", nargs="+", default=["csv", "json"])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hub-bench-bounds-") as tmp:
        tmp = Path(tmp)
        peer = tmp / "peer"
        subprocess.run(["git", "worktree", "add", "--detach", str(peer), args.peer_ref], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            data = tmp / "data"
            data.mkdir()
            csv_path = data / "党费缴纳_big.csv"
            csv_rows = make_csv(csv_path, int(args.csv_mb * 1e6)) if "csv" in args.workloads else 0
            body, json_rows = make_json(int(args.json_mb * 1e6)) if "json" in args.workloads else (b"{}", 0)
            server = serve(body)
            print(f"csv {csv_path.stat().st_size / 1e6 if csv_rows else 0:.0f} MB, {csv_rows:,} rows; "
                  f"json {len(body) / 1e6:.0f} MB, {json_rows:,} records", flush=True)
            results = []
            for rep in range(args.repeat):
                for workload in args.workloads:
                    for version, code in (("this branch", ROOT), (f"peer {args.peer_ref}", peer)):
                        run = tmp / f"run-{rep}-{workload}-{version.split()[0]}"
                        inbox = run / "inbox"
                        inbox.mkdir(parents=True)
                        if workload == "csv":
                            os.link(csv_path, inbox / csv_path.name)
                            warm_page_cache(csv_path)
                        (run / "sources.yaml").write_text(SOURCES.format(
                            inbox=inbox, url=f"http://127.0.0.1:{server.server_port}"), encoding="utf-8")
                        env = {**os.environ, "PYTHONPATH": str(code), "HUB_VAR_DIR": str(run / "var"),
                               "HUB_SOURCES_FILE": str(run / "sources.yaml"), "DAGSTER_HOME": str(run / "dagster"),
                               "HUB_MODE": "test"}
                        target = "party.big" if workload == "csv" else "vendor.records"
                        out = run_measured([sys.executable, "-c", CHILD, "load", target], cwd=code, env=env,
                                           prefix=PREFIX, timeout=1800, mem_cap_bytes=6 * 2**30)
                        res = out.result or {}
                        row = {"workload": workload, "version": version, "repeat": rep,
                               "peak_rss_mb": round(res.get("peak_rss", 0) / 2**20),
                               "tree_peak_mb": round(out.tree_peak_rss_mb), "wall_s": round(out.wall_s, 1),
                               "cpu_s": round(out.cpu_s, 1), "other_cores": round(out.other_cores, 2),
                               "exit": res.get("exit"), "error": out.error}
                        results.append(row)
                        print(json.dumps(row, ensure_ascii=False), flush=True)
            server.shutdown()
            print(json.dumps({"machine": machine_base(["duckdb", "pyarrow", "python-calamine"])}), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(peer)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
