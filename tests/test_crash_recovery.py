"""A Dagster run killed with SIGKILL is found dead by the next start, failed with a reason, and its slot freed.

The end-to-end test kills the process group of `hub demo` (which executes campus_main_job) during intake,
during the warehouse build and during publish, each time rerunning the same command, and compares the
warehouse and the published catalog with a clean run's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.events import DagsterEventType
from dagster._core.test_utils import create_run_for_test

from hub.recovery import PID_TAG, PROC_START_TAG, process_tags, recover_dead_runs
from hub.settings import PROJECT_ROOT, Settings
from hub.warehouse import connect
from tests.conftest import SEED, SMALL_SCALE

POOL = "duckdb_warehouse"


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


def _started_run(instance, tags: dict[str, str], step: str | None = None, claimed: bool = True) -> str:
    run = create_run_for_test(instance, job_name="campus_main_job", status=DagsterRunStatus.STARTED, tags=tags)
    if step:
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        claim = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, step)
        assert claim.is_claimed == claimed  # not claimed: waiting in the pool's queue
    return run.run_id


def _failure_message(instance, run_id: str) -> str:
    [event] = instance.all_logs(run_id, of_type=DagsterEventType.PIPELINE_FAILURE)
    return event.dagster_event.message or ""


def test_monitoring_is_on_in_the_instance(instance):
    settings = instance.run_monitoring_settings
    assert settings["enabled"] and settings["free_slots_after_run_end_seconds"] > 0


def test_a_dead_runs_slot_is_freed_and_a_live_run_is_left_alone(instance):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_tags = process_tags(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        dead = _started_run(instance, dead_tags, step="warehouse__dim_person")
        live = _started_run(instance, process_tags())
        # a recycled PID: this process's PID, but recorded with another start time
        recycled = _started_run(instance, {**process_tags(), PROC_START_TAG: "1"})
        untagged = _started_run(instance, {})

        # the slot is held: another run's step cannot claim it
        assert not instance.event_log_storage.claim_concurrency_slot(POOL, live, "other_step").is_claimed

        cleared = recover_dead_runs(instance, by="the test")
        assert {c.run_id for c in cleared} == {dead, recycled}
        assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
        message = _failure_message(instance, dead)
        assert f"process {dead_tags[PID_TAG]}" in message and "is gone" in message and "the test" in message
        assert "slots were freed" in message
        assert instance.get_run_by_id(recycled).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(untagged).status == DagsterRunStatus.STARTED, "unknown process: not judged"
        assert dead not in instance.event_log_storage.get_concurrency_run_ids()
        instance.event_log_storage.free_concurrency_slots_for_run(live)  # drop the pending claim made above
        assert instance.event_log_storage.claim_concurrency_slot(POOL, live, "next_step").is_claimed
        assert recover_dead_runs(instance) == [], "a second pass finds nothing"
    finally:
        if child.poll() is None:
            child.kill()


def test_a_run_killed_before_its_resources_started_is_found_by_its_workers_own_announcement(instance):
    """The daemon's run worker writes "Started process for run (pid: N)" first: a run killed before the
    warehouse resource tagged it is judged by that PID. A run STARTING with no process at all is failed
    once the instance's start timeout has passed, not before."""
    from dagster._core.events import EngineEventData

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.send_signal(signal.SIGKILL)
    child.wait()
    dead = _started_run(instance, {}, step="raw__hr__staff")
    live = _started_run(instance, {})
    for run_id, pid in ((dead, child.pid), (live, os.getpid())):
        instance.report_engine_event(f"Started process for run (pid: {pid}).", instance.get_run_by_id(run_id),
                                     EngineEventData.in_process(pid))
    fresh = create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTING).run_id
    cleared = recover_dead_runs(instance, by="the test")
    assert [c.run_id for c in cleared] == [dead]
    assert f"process {child.pid} on" in _failure_message(instance, dead)
    assert instance.get_run_by_id(live).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(fresh).status == DagsterRunStatus.STARTING, "just launched: left alone"

    later = time.time() + instance.run_monitoring_settings["start_timeout_seconds"] + 5
    [stuck] = recover_dead_runs(instance, by="the test", now=later)
    assert stuck.run_id == fresh and "no process after start_timeout_seconds" in stuck.reason
    assert instance.get_run_by_id(fresh).status == DagsterRunStatus.FAILURE


def test_a_run_that_waited_in_the_queue_is_given_its_start_timeout_from_when_it_started(instance):
    """Seen with 8 colleges two at a time: a run queued for 206 s was marked failed 2 s after the daemon
    launched it, before its worker announced its process, because the timeout was counted from the run's
    creation. It counts from when the run became STARTING."""
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    run = create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTING)
    created = instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
    limit = instance.run_monitoring_settings["start_timeout_seconds"]
    launched = created + limit + 26  # dequeued after waiting longer than the start timeout
    instance.handle_new_event(EventLogEntry(
        error_info=None, level=logging.DEBUG, user_message="", run_id=run.run_id, timestamp=launched,
        dagster_event=DagsterEvent(DagsterEventType.RUN_STARTING.value, job_name=run.job_name)))
    assert recover_dead_runs(instance, by="the test", now=launched + 2) == []
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING, "just launched: left alone"
    [stuck] = recover_dead_runs(instance, by="the test", now=launched + limit + 5)
    assert stuck.run_id == run.run_id and "no process after start_timeout_seconds" in stuck.reason


def test_a_finished_run_still_holding_a_slot_gives_it_back(instance):
    run_id = _started_run(instance, process_tags(), step="raw__hr__staff")
    instance.report_run_failed(instance.get_run_by_id(run_id), message="ended elsewhere")
    [item] = recover_dead_runs(instance)
    assert item.run_id == run_id and item.slots_freed
    assert run_id not in instance.event_log_storage.get_concurrency_run_ids()


def test_hub_recover_and_hub_load_clear_dead_runs_on_start(instance, tmp_path):
    """The CLI paths (`hub recover`, which `make ui` runs first, and `hub load`) open the instance themselves."""
    home = Path(instance.root_directory)
    dead = []
    for _ in range(2):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        tags = process_tags(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        dead.append(_started_run(instance, tags, step=f"step_{len(dead)}", claimed=not dead))
    env = {**os.environ, "DAGSTER_HOME": str(home), "HUB_VAR_DIR": str(tmp_path / "var")}
    proc = subprocess.run([sys.executable, "-m", "hub.cli", "recover"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cleared a dead run" in proc.stdout and dead[0][:8] in proc.stdout.replace("\n", "")
    assert "marked failed by hub recover" in _failure_message(instance, dead[0])

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    tags = process_tags(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    later = _started_run(instance, tags, step="step_load")
    # `hub load` of a source that cannot load: it still clears the dead run first
    proc = subprocess.run([sys.executable, "-m", "hub.cli", "load", "nosuchsource"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nosuchsource" in proc.stderr
    assert instance.get_run_by_id(later).status == DagsterRunStatus.FAILURE
    assert "marked failed by hub load" in _failure_message(instance, later)
    assert not instance.event_log_storage.get_concurrency_run_ids()

    proc = subprocess.run([sys.executable, "-m", "hub.cli", "recover"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "No dead runs." in proc.stdout


# ---- end to end: SIGKILL the demo's process group at three moments ------------------------------------

def _env(root: Path, campus_dir: Path) -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    (root / "var").mkdir()
    shutil.copytree(campus_dir, root / "var" / "campus")
    return {**os.environ, "HUB_VAR_DIR": str(root / "var"), "DAGSTER_HOME": str(home),
            "HUB_PERSON_KEY_SECRET": "test-secret"}


# "During publish" means while a dataset is being published, not the snapshot or the report.
NOT_DATASETS = ("publish__analyst_snapshot", "publish__party_report")
DEMO = [sys.executable, "-m", "hub.cli", "demo", "--scale", str(SMALL_SCALE), "--seed", str(SEED)]


def _demo(env: dict[str, str], log: Path, *, kill_at: str | None = None, earlier: tuple[str, ...] = ()
          ) -> tuple[int, str | None]:
    """Run `hub demo`; with kill_at, SIGKILL its process group once a step of that layer has started."""
    with log.open("w") as out:
        proc = subprocess.Popen(DEMO, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    if kill_at is None:
        return proc.wait(timeout=900), None
    home = env["DAGSTER_HOME"]
    killed_run = None
    with dg.DagsterInstance.from_config(home) as instance:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            runs = [r for r in instance.get_runs(limit=1)
                    if r.status == DagsterRunStatus.STARTED and r.run_id not in earlier]
            if runs:
                starts = instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_START)
                if any(e.step_key.startswith(f"{kill_at}__") and e.step_key not in NOT_DATASETS for e in starts):
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed_run = runs[0].run_id
                    break
            time.sleep(0.2)
    code = proc.wait(timeout=60)
    return code, killed_run


# When a load ran and which load it was: they differ between any two runs, and are not the data. SCD2
# versions start at their load's time, and a version's key is made from it.
LOAD_TIME_COLUMNS = ("_load_id", "_extracted_at", "load_id", "loaded_at", "seen_at", "valid_from", "valid_to")
# 数据采集时间 in the national tables: the collection (load) time, stamped into every published row.
PUBLISHED_TIME_COLUMNS = ("sjcjsj",)


def _warehouse(path: Path) -> dict:
    """Row count and an order-independent content hash of every table, without load ids or times."""
    con = connect(path, read_only=True)
    try:
        out = {}
        for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name "
                                         "IN ('raw', 'staging', 'warehouse', 'marts') ORDER BY 1, 2").fetchall():
            cols = [r[0] for r in con.execute(f'DESCRIBE {schema}."{table}"').fetchall()
                    if r[0] not in LOAD_TIME_COLUMNS and not r[0].endswith("_version_key")]
            content = f"sum(hash({', '.join(chr(34) + c + chr(34) for c in cols)})::HUGEINT)" if cols else "0"
            out[f"{schema}.{table}"] = con.execute(
                f'SELECT count(*), {content} FROM {schema}."{table}"').fetchone()
        out["quarantine"] = con.execute("SELECT stage, source, entity, rule, count(*) FROM quality.quarantine "
                                        "GROUP BY ALL ORDER BY ALL").fetchall()
        out["files"] = con.execute("SELECT count(*) FROM meta.loaded_file").fetchone()
        return out
    finally:
        con.close()


def _catalog(published: Path) -> dict:
    """Each current dataset's rows and content: a hash of its Parquet rows without the collection time
    (the catalog's fingerprint for an encrypted dataset, which cannot be read without its key)."""
    import duckdb

    catalog = json.loads((published / "catalog.json").read_text(encoding="utf-8"))
    out = {}
    for name, entry in catalog["datasets"].items():
        manifest = json.loads((published / entry["manifest"]).read_text(encoding="utf-8"))
        if manifest["encrypted"]:
            out[name] = (entry["row_count"], entry["fingerprint"])
            continue
        files = f"{published / name / manifest['version']}/data/*.parquet"
        con = duckdb.connect()
        cols = [c for c in con.sql(f"SELECT * FROM read_parquet('{files}') LIMIT 0").columns
                if c not in PUBLISHED_TIME_COLUMNS]
        expr = ", ".join(f'"{c}"' for c in cols)
        out[name] = (entry["row_count"], con.sql(f"SELECT count(*), sum(hash({expr})::HUGEINT) "
                                                 f"FROM read_parquet('{files}')").fetchall()[0])
        con.close()
    return out


@pytest.mark.slow
def test_sigkill_during_intake_build_and_publish_then_the_same_command_finishes_as_a_clean_run(
        tmp_path, campus_dir):
    clean_env, killed_env = _env(tmp_path / "clean", campus_dir), _env(tmp_path / "killed", campus_dir)
    code, _ = _demo(clean_env, tmp_path / "clean.log")
    assert code == 0, (tmp_path / "clean.log").read_text()[-4000:]

    killed_runs = []
    for moment in ("raw", "warehouse", "publish"):
        log = tmp_path / f"killed_{moment}.log"
        code, run_id = _demo(killed_env, log, kill_at=moment, earlier=tuple(killed_runs))
        assert run_id and code == -signal.SIGKILL, f"the kill must land during {moment}: {log.read_text()[-3000:]}"
        killed_runs.append(run_id)
        with dg.DagsterInstance.from_config(killed_env["DAGSTER_HOME"]) as instance:
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED, "dead, but still STARTED"
    # the same command once more, with no manual step: it clears the dead run and finishes
    code, _ = _demo(killed_env, tmp_path / "rerun.log")
    rerun = (tmp_path / "rerun.log").read_text()
    assert code == 0 and "campus_main_job succeeded" in rerun, rerun[-4000:]
    assert "cleared a dead run" in rerun

    with dg.DagsterInstance.from_config(killed_env["DAGSTER_HOME"]) as instance:
        for run_id in killed_runs:
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
            assert "is gone" in _failure_message(instance, run_id)
        assert not instance.event_log_storage.get_concurrency_run_ids(), "no slot left held"

    clean = Settings.from_env(clean_env)
    killed = Settings.from_env(killed_env)
    assert _warehouse(killed.warehouse_path) == _warehouse(clean.warehouse_path)
    assert _catalog(killed.published_root) == _catalog(clean.published_root)
