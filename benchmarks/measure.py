"""What the benchmarks share: running one child process and measuring it, and describing the machine.

A child prints one line ``<prefix><json>`` with its result; the parent polls the child's process tree for
resident memory every 0.1 s, kills it past a timeout or a memory cap, and reads its CPU time from
``os.wait4``. The child reports its own kernel high-water mark (:func:`peak_rss_bytes`): ``ru_maxrss``
would start at the parent's, which holds the benchmark's servers and data.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


def peak_rss_bytes() -> int | None:
    """This process's resident-memory high-water mark (Linux ``VmHWM``), or None where there is none."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def warm_page_cache(path: Path) -> None:
    """Read a file once so that every run starts with it in the OS page cache, not only the later ones."""
    with path.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores; idle and I/O wait excluded)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


@dataclass
class ChildOutcome:
    wall_s: float
    cpu_s: float
    tree_peak_rss_mb: float
    other_cores: float  # mean CPU cores busy with other processes during the run: noise
    result: dict[str, Any] | None  # the child's result line, None if it failed or was killed
    error: str | None  # why there is no result: killed (timeout, memory cap) or the exit status and stderr tail
    stderr: str


def run_measured(cmd: list[str], *, cwd: Path, env: dict[str, str], prefix: str, timeout: float,
                 mem_cap_bytes: float | None = None) -> ChildOutcome:
    """Run ``cmd`` as a child and measure it (see the module docstring)."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="hub-bench-child-") as tmp:
        out_path, err_path = Path(tmp) / "child.out", Path(tmp) / "child.err"
        me = psutil.Process()
        busy_before, mine_before = busy_cpu_s(), sum(me.cpu_times()[:2])
        started = time.perf_counter()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        ps = psutil.Process(proc.pid)
        tree_peak, killed = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:  # the child and any process it started, summed (dlt may start workers)
                rss = sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)])
                tree_peak = max(tree_peak, rss)
            except psutil.Error:
                rss = 0
            if killed is None and mem_cap_bytes is not None and rss > mem_cap_bytes:
                killed = f"killed at {rss / 2**30:.1f} GB resident (cap {mem_cap_bytes / 2**30:g} GB)"
                proc.kill()
            elif killed is None and time.perf_counter() - started > timeout:
                killed = f"killed after {timeout:.0f} s (timeout)"
                proc.kill()
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        wall, cpu = time.perf_counter() - started, usage.ru_utime + usage.ru_stime
        # CPU the rest of the machine used meanwhile (not the child, not this process and its servers)
        others = busy_cpu_s() - busy_before - cpu - (sum(me.cpu_times()[:2]) - mine_before)
        stderr = err_path.read_text(errors="replace")
        lines = [ln for ln in out_path.read_text(errors="replace").splitlines() if ln.startswith(prefix)]
        result, error = None, killed
        if killed is None:
            if proc.returncode != 0 or not lines:
                error = f"exit {proc.returncode}: " + " | ".join(stderr.strip().splitlines()[-5:])
            else:
                result = json.loads(lines[-1].removeprefix(prefix))
    return ChildOutcome(wall, cpu, tree_peak / 2**20, max(0.0, others / wall), result, error, stderr)


def machine_base(dists: list[str]) -> dict[str, str]:
    """CPU, cores, RAM, OS, Python and the versions of ``dists``."""
    import psutil

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    return {"nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
            "cpu": cpu, "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            **{dist: version(dist) for dist in dists}}


def replace_block(path: Path, block: str, start: str, end: str, new_file: str = "") -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) in place of the one between those markers
    in ``path``, or append it; a missing file starts as ``new_file``. Each benchmark keeps its results this way."""
    text = path.read_text(encoding="utf-8") if path.is_file() else new_file
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
