"""Crash recovery: runs whose process is gone are marked failed and give back their warehouse slot.

A run killed with SIGKILL (power cut, OOM kill, reboot) never writes its end: it stays STARTED in the
instance and keeps its slot in the ``duckdb_warehouse`` pool, so every later run would wait forever.
Each run records the process that executes it in its tags (``hub/pid``, ``hub/host`` and the process's
start time, so a recycled PID is not taken for the run): ``hub demo`` at creation, and every run at the
start of execution (the warehouse resource, which every run uses). On start, ``hub demo``, ``hub load``,
``hub recover`` (run by ``make ui`` before the daemon starts) and the ``dead_run_sweeper`` sensor call
:func:`recover_dead_runs`. A run whose recorded process no longer exists on this host is reported failed
with a message saying why, and its concurrency slots (held and pending) are freed. Slots still held by
runs that already ended are freed too. Runs recorded on another host are left alone: their process
cannot be looked at from here (Dagster's run monitoring, on in dagster_home/dagster.yaml, covers them).

A run the daemon launched and that was killed before its resources started has no tags yet: its process
is then the one the run worker announced in its first engine event ("Started process for run (pid: N)",
written by the worker itself, on this host with the default run launcher). A run still STARTING with
no process at all after the instance's ``start_timeout_seconds`` is failed as never started.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PID_TAG, HOST_TAG, PROC_START_TAG = "hub/pid", "hub/host", "hub/proc_start"
RECOVERED_TAG = "hub/recovered"
IN_FLIGHT = ("STARTING", "STARTED", "CANCELING")


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that let a later process tell whether this one is still alive."""
    pid = os.getpid() if pid is None else pid
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    start = _proc_start(pid)
    if start:
        tags[PROC_START_TAG] = start
    return tags


def process_alive(tags: dict[str, str]) -> bool | None:
    """True/False for a run recorded on this host; None when it cannot be judged from here."""
    pid = tags.get(PID_TAG)
    if not pid or not pid.isdigit() or tags.get(HOST_TAG) != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    recorded = tags.get(PROC_START_TAG)
    current = _proc_start(int(pid))
    return not (recorded and current and recorded != current)  # a recycled PID is another process


@dataclass(frozen=True)
class Recovered:
    run_id: str
    job_name: str
    reason: str
    slots_freed: bool

    def line(self) -> str:
        return f"run {self.run_id[:8]} of {self.job_name}: {self.reason}"


def tag_current_run(instance, run_id: str | None) -> None:
    """Record this process in the run's tags (called when a run starts executing)."""
    if instance is None or not run_id:
        return
    run = instance.get_run_by_id(run_id)
    if run is None:
        return
    tags = process_tags()
    if any(run.tags.get(k) != v for k, v in tags.items()):
        instance.add_run_tags(run_id, tags)


def recover_dead_runs(instance, *, by: str = "hub", now: float | None = None) -> list[Recovered]:
    """Mark failed every in-flight run whose process is gone, and free every slot a finished run holds.
    ``now`` (a POSIX time; default the clock) is when start timeouts are judged."""
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    recovered: list[Recovered] = []
    storage = instance.event_log_storage
    can_free = storage.supports_global_concurrency_limits
    slot_runs = storage.get_concurrency_run_ids() if can_free else set()
    statuses = [DagsterRunStatus[s] for s in IN_FLIGHT]
    for record in instance.get_run_records(RunsFilter(statuses=statuses)):
        run = record.dagster_run
        tags = run.tags if PID_TAG in run.tags else {**run.tags, **_announced_process(instance, run)}
        alive = process_alive(tags)
        if alive is None and PID_TAG not in tags and _start_timed_out(instance, record, now):
            reason = (f"it was still {run.status.value} with no process after start_timeout_seconds "
                      f"({instance.run_monitoring_settings.get('start_timeout_seconds', 180)} s); marked failed by {by}")
        elif alive is not False:
            continue
        else:
            reason = (f"its process {tags[PID_TAG]} on {tags[HOST_TAG]} is gone (killed or crashed "
                      f"while {run.status.value}); marked failed by {by}")
        freed = run.run_id in slot_runs
        instance.add_run_tags(run.run_id, {RECOVERED_TAG: by})
        instance.report_run_failed(run, message=f"Run worker died: {reason}"
                                   + ("; its duckdb_warehouse slots were freed" if freed else ""))
        if can_free:
            storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(Recovered(run.run_id, run.job_name, reason + ("; slots freed" if freed else ""), freed))
    # Slots left behind by runs that did end (a step killed between its slot and its end event).
    done = {r.run_id for r in recovered}
    leftover = slot_runs - done
    if leftover:
        for record in instance.get_run_records(RunsFilter(run_ids=list(leftover), statuses=list(FINISHED_STATUSES))):
            storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
            recovered.append(Recovered(record.dagster_run.run_id, record.dagster_run.job_name,
                                       f"ended {record.dagster_run.status.value} but still held a slot; freed "
                                       f"by {by}", True))
    return recovered


def _announced_process(instance, run) -> dict[str, str]:
    """The run worker's PID from its "Started process for run" engine event, as tags ({} if none).

    Only with the default run launcher: its workers run on this host (other launchers run them
    elsewhere, and Dagster's run monitoring watches those)."""
    if type(instance.run_launcher).__name__ != "DefaultRunLauncher":
        return {}
    from dagster._core.events import DagsterEventType

    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = getattr(event, "engine_event_data", None)
        pid = (data.metadata or {}).get("pid") if data is not None else None
        if pid is not None and (event.message or "").startswith("Started process for run"):
            return {PID_TAG: str(getattr(pid, "value", pid)), HOST_TAG: socket.gethostname()}
    return {}


def _start_timed_out(instance, record, now: float | None) -> bool:
    """A run STARTING for longer than the instance's start timeout (never got a process), counted from
    when it became STARTING (its latest RUN_STARTING event), not from its creation: a run that waited in
    the queue longer than the timeout is launched, and its worker needs a moment to announce itself."""
    import datetime as dt
    import time

    from dagster._core.events import DagsterEventType

    if record.dagster_run.status.value != "STARTING":
        return False
    limit = float(instance.run_monitoring_settings.get("start_timeout_seconds", 180))
    starting = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.RUN_STARTING)
    if starting:
        since = max(e.timestamp for e in starting)
    else:
        created = record.create_timestamp
        since = (created if created.tzinfo else created.replace(tzinfo=dt.UTC)).timestamp()
    return (time.time() if now is None else now) - since > limit


def instance_used(dagster_home: Path) -> bool:
    """Whether the instance has stored anything (its run history); opening one that has not would create it."""
    return (Path(dagster_home) / "history").is_dir() or (Path(dagster_home) / "storage").is_dir()


def _nothing_to_recover(dagster_home: Path) -> bool:
    """A look at the default SQLite storage without importing Dagster (seconds on a busy machine): no run in
    flight and no slot or queued step held means nothing to recover. False whenever unsure."""
    import sqlite3

    home = Path(dagster_home)
    config = home / "dagster.yaml"
    if config.exists() and any(k in config.read_text(encoding="utf-8") for k in ("storage:", "run_storage:")):
        return False  # another storage (PostgreSQL, ...): ask Dagster
    runs, index = home / "history" / "runs.db", home / "history" / "runs" / "index.db"
    try:
        with sqlite3.connect(f"file:{runs}?mode=ro", uri=True) as con:
            in_flight = con.execute("SELECT count(*) FROM runs WHERE status IN (?, ?, ?)", IN_FLIGHT).fetchone()[0]
        held = 0
        if index.exists():
            with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as con:
                held = con.execute("SELECT (SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL) + "
                                   "(SELECT count(*) FROM pending_steps)").fetchone()[0]
    except sqlite3.Error:
        return False
    return in_flight == 0 and held == 0


def recover_instance(dagster_home: Path, *, by: str, only_if_used: bool = True) -> list[Recovered]:
    """Open the instance in ``dagster_home`` and recover it; nothing if it was never used."""
    if only_if_used and (not instance_used(dagster_home) or _nothing_to_recover(dagster_home)):
        return []
    from dagster import DagsterInstance

    from hub.settings import export

    export("DAGSTER_HOME", str(dagster_home), overwrite=False)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return recover_dead_runs(instance, by=by)


def dead_run_sweeper():
    """A sensor for the daemon: runs that die while `make ui` is up are cleared within a minute."""
    import dagster as dg

    @dg.sensor(name="dead_run_sweeper", minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Marks failed the runs whose process is gone (SIGKILL, OOM kill, reboot) and frees "
                           "their duckdb_warehouse slots, so no later run waits behind a dead one.")
    def _sweeper(context):
        cleared = recover_dead_runs(context.instance, by="dead_run_sweeper")
        for item in cleared:
            context.log.warning(item.line())
        return dg.SkipReason(f"cleared {len(cleared)} dead run(s)" if cleared else "no dead runs")

    return _sweeper
