"""The Dagster instance on PostgreSQL (hub/instance.py, deploy/dagster.yaml), on the machine's real server:
runs, event logs and schedules stored there; runs queued and started by the real daemon, at most one
run per college at a time while another college's run goes ahead."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.instance import COLLEGE_TAG, PG_URL_VAR, InstanceConfigError, college_tags, instance_home
from hub.settings import PROJECT_ROOT
from tests.pg_database import fresh_database

pytestmark = pytest.mark.postgres
# the queue test starts a code server, the daemon and three run workers: ~25 s on an idle machine
A, B = "4145000001", "4145000002"


def test_without_the_variable_the_instance_is_the_default_one(tmp_path):
    env = {"DAGSTER_HOME": str(tmp_path / "home")}
    assert instance_home(env=env) == (tmp_path / "home").resolve()
    assert not (tmp_path / "home").exists(), "nothing written for the default instance"
    with pytest.raises(InstanceConfigError, match="postgresql\\+psycopg2://user@host:port/database URL, got mysql://"):
        instance_home(env={PG_URL_VAR: "mysql://root@127.0.0.1/x", "HUB_VAR_DIR": str(tmp_path)})


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the code server did not listen on 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_runs_events_and_the_queue_live_in_postgresql(tmp_path, monkeypatch):
    import psycopg
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus
    from dagster._cli.job import execute_launch_command
    from dagster._cli.workspace.cli_target import WorkspaceOpts
    from dagster._core.run_coordinator import QueuedRunCoordinator

    with fresh_database("hub_dagster_test") as plain:
        url = plain.replace("postgresql://", "postgresql+psycopg2://")  # the driver dagster-postgres speaks
        env = {**os.environ, PG_URL_VAR: url, "HUB_VAR_DIR": str(tmp_path / "var")}
        home = instance_home(env=env)
        assert home == tmp_path / "var" / "dagster_pg"
        env["DAGSTER_HOME"] = str(home)
        monkeypatch.setenv(PG_URL_VAR, url)  # deploy/dagster.yaml reads it: `postgres_url: {env: ...}`
        instance = DagsterInstance.from_config(str(home))
        with contextlib.ExitStack() as stack:
            stack.callback(instance.dispose)
            for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
                assert type(storage).__module__.startswith("dagster_postgres"), type(storage)
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            queue = instance.get_concurrency_config().run_queue_config
            assert queue.max_concurrent_runs == 8
            # one run per college: by its tag, and by its partition key (colleges.yaml, hub/colleges.py)
            assert [(x["key"], x["value"], x["limit"]) for x in queue.tag_concurrency_limits] == [
                (COLLEGE_TAG, {"applyLimitPerUniqueValue": True}, 1),
                ("dagster/partition", {"applyLimitPerUniqueValue": True}, 1)]

            # the code location as its own gRPC server (as in deploy/docker-compose.yaml); the daemon and the
            # submissions reach it over loopback
            port = _free_port()
            code_server = subprocess.Popen(
                [_bin("dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port), "--location-name", "pg_test",
                 "-f", str(PROJECT_ROOT / "tests" / "dagster_pg_code.py"), "-d", str(PROJECT_ROOT)],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop, code_server)
            workspace = tmp_path / "workspace.yaml"
            workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                                 f"      port: {port}\n      location_name: pg_test\n")
            _wait_for_port(port, code_server)
            # three runs submitted as `dagster job launch` does: two for college A, one for college B
            for i, xxdm in enumerate((A, A, B)):
                execute_launch_command(instance=instance, workspace_opts=WorkspaceOpts(workspace=[str(workspace)]),
                                       job_name="college_job", tags=json.dumps({**college_tags(xxdm), "order": str(i)}))
            with psycopg.connect(plain) as pg:
                statuses = [r[0] for r in pg.execute("SELECT status FROM runs").fetchall()]
            assert statuses == ["QUEUED"] * 3, "submitted runs wait in PostgreSQL's queue"

            daemon = subprocess.Popen([_bin("dagster-daemon"), "run", "-w", str(workspace)], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop, daemon)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                runs = instance.get_runs()
                if all(r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in runs):
                    break
                time.sleep(0.5)
            records = instance.get_run_records()
            assert [r.dagster_run.status for r in records] == [DagsterRunStatus.SUCCESS] * 3
            by_college = {}
            for r in records:
                by_college.setdefault(r.dagster_run.tags[COLLEGE_TAG], []).append(r)
            first_a, second_a = sorted(by_college[A], key=lambda r: r.start_time)
            [b] = by_college[B]
            assert first_a.end_time <= second_a.start_time, "college A's runs never overlapped"
            assert b.start_time < second_a.start_time, "college B did not wait for college A"

            with psycopg.connect(plain) as pg:
                events = dict(pg.execute(
                    "SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "GROUP BY 1").fetchall())
                tags = sorted(r[0] for r in pg.execute(
                    "SELECT value FROM run_tags WHERE key = %s", [COLLEGE_TAG]).fetchall())
            assert events == {r.dagster_run.run_id: 1 for r in records}
            assert tags == [A, A, B]
            mat = instance.get_latest_materialization_event(
                AssetKey("college_heartbeat")).asset_materialization
            assert mat.metadata["college"].value in (A, B)

