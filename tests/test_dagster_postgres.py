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

from hub.instance import (
    AUTOMATION_ENV,
    COLLEGE_TAG,
    PG_URL_VAR,
    InstanceConfigError,
    college_tags,
    instance_home,
)
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
        env = {**os.environ, **AUTOMATION_ENV, PG_URL_VAR: url, "HUB_VAR_DIR": str(tmp_path / "var")}
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



from tests import s3_server  # noqa: E402 (the colleges' queue test below)

s3_endpoint, s3_bucket = s3_server.s3_endpoint, s3_server.s3_bucket  # fixtures: moto's S3 server on loopback


@pytest.mark.slow
def test_colleges_partition_runs_through_the_queue_with_the_raw_zone_on_s3(tmp_path, campus_dir, s3_bucket):
    """The hub's own code location with two colleges (HUB_COLLEGES_FILE): each college's partition of
    inbox_load_job submitted to the PostgreSQL instance's queue as `dagster job launch` does, started by the
    real daemon in a process of its own (DefaultRunLauncher), on the college's own resources: its files from
    its inbox, its parts in its prefix of the S3 raw zone, its loads in its own warehouse. The automation and
    inbox sensors are stopped so that the queue holds only these runs. (~1.5-3 min on 2 shared cores: the code
    server and each run worker load the hub's definitions.)"""
    import duckdb
    import fsspec
    import yaml
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._cli.job import execute_launch_command
    from dagster._cli.workspace.cli_target import WorkspaceOpts

    from campus_sim.inbox import drop_party_exports
    from hub.colleges import load_colleges
    from hub.instance import stop_sensors
    from hub.settings import Settings

    conf = tmp_path / "conf"
    conf.mkdir()
    entries = []
    env_colleges = {}
    for code, prefix in ((A, "A"), (B, "B")):
        text = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8").replace("${HUB_", f"${{HUB_{prefix}_")
        (conf / f"{prefix}.yaml").write_text(text, encoding="utf-8")
        entries.append({"xxdm": code, "name": f"{prefix} 学院", "sources": f"{prefix}.yaml"})
        inbox = tmp_path / "inbox" / code
        assert drop_party_exports(campus_dir, inbox)
        env_colleges[f"HUB_{prefix}_INBOX_DIR"] = str(inbox)
    colleges_file = conf / "colleges.yaml"
    colleges_file.write_text(yaml.safe_dump({"colleges": entries}, allow_unicode=True), encoding="utf-8")
    raw_root = f"s3://{s3_bucket}/hub"
    with fresh_database("hub_dagster_colleges") as plain:
        url = plain.replace("postgresql://", "postgresql+psycopg2://")
        env = {**os.environ, **AUTOMATION_ENV, **env_colleges, PG_URL_VAR: url, "HUB_VAR_DIR": str(tmp_path / "var"),
               "HUB_COLLEGES_FILE": str(colleges_file), "HUB_RAW_DIR": raw_root, "HUB_MODE": "test"}
        home = instance_home(env=env)
        env["DAGSTER_HOME"] = str(home)
        with contextlib.ExitStack() as stack:
            stack.enter_context(pytest.MonkeyPatch.context()).setenv(PG_URL_VAR, url)
            instance = stack.enter_context(DagsterInstance.from_config(str(home)))
            port = _free_port()
            # python -m: a copied virtualenv's scripts may name another checkout's interpreter in their #! line
            code_server = subprocess.Popen(
                [sys.executable, "-m", "dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
                 "--location-name", "colleges", "-m", "hub.definitions", "-a", "defs"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop, code_server)
            workspace = tmp_path / "workspace.yaml"
            workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                                 f"      port: {port}\n      location_name: colleges\n")
            _wait_for_port(port, code_server)
            assert sorted(stop_sensors(instance, workspace, ("hub_automation", "party_inbox_sensor"))) == [
                "hub_automation", "party_inbox_sensor"]
            for code in (A, B):
                execute_launch_command(instance=instance, workspace_opts=WorkspaceOpts(workspace=[str(workspace)]),
                                       job_name="inbox_load_job",
                                       tags=json.dumps({"dagster/partition": code, **college_tags(code)}))
            assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.QUEUED] * 2
            daemon = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace)],
                                      env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop, daemon)
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and not all(
                    r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in instance.get_runs()):
                time.sleep(1)
            records = instance.get_run_records()
            assert sorted((r.dagster_run.tags["dagster/partition"], r.dagster_run.status) for r in records) == [
                (A, DagsterRunStatus.SUCCESS), (B, DagsterRunStatus.SUCCESS)]
            assert all(r.start_time and r.end_time for r in records)
    colleges = load_colleges(colleges_file)
    settings = Settings.from_env({"HUB_VAR_DIR": str(tmp_path / "var"), "HUB_RAW_DIR": raw_root})
    fs = fsspec.filesystem("s3")
    for code in (A, B):
        paths = colleges.paths(code, settings)
        assert paths.raw_root == f"{raw_root}/xxdm={code}/raw"
        parts = fs.glob(f"{s3_bucket}/hub/xxdm={code}/raw/party/**/*.parquet")
        assert parts, f"college {code}'s raw parts are on the S3 server, in its prefix"
        with duckdb.connect(str(paths.warehouse_path), read_only=True) as con:
            loaded = con.execute("SELECT count(*) FROM meta.loaded_file").fetchone()[0]
            ok = con.execute("SELECT count(*) FROM quality.load_audit WHERE source = 'party' AND status = 'ok'"
                             ).fetchone()[0]
        assert loaded > 0 and ok > 0, f"college {code}'s files were loaded into its own warehouse"
