"""`hub status` and the operator commands, against a real warehouse, real inbox files and a real instance."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from connectors import load_entity, load_sources
from hub.recovery import process_tags
from hub.settings import PROJECT_ROOT, Settings
from hub.status import gather, reset_cursor, retry_inbox_file
from hub.warehouse import connect, open_warehouse


@pytest.fixture
def world(tmp_path, monkeypatch, campus_dir):
    var = tmp_path / "var"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {"HUB_VAR_DIR": str(var), "DAGSTER_HOME": str(home), "HUB_INBOX_DIR": str(var / "inbox" / "party"),
           "HUB_ACADEMIC_URL": f"sqlite:///{campus_dir / 'academic' / 'academic.sqlite'}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env()
    settings.inbox_dir.mkdir(parents=True)
    shutil.copy(campus_dir / "party" / "exports" / "党员信息.xlsx", settings.inbox_dir)
    (settings.inbox_dir / "党员信息_坏.xlsx").write_bytes(b"not a spreadsheet")
    sources = load_sources(settings.sources_file)
    with open_warehouse(settings.warehouse_path) as con:
        for source, entity in (("academic", "grades"), ("party", "members")):
            load_entity(con, settings.raw_dir, sources[source], sources[source].entities[entity],
                        landing_memory=settings.raw_memory_limit)
        con.execute("INSERT INTO quality.check_result (check_name, asset, engine, severity, passed, unexpected) "
                    "VALUES ('one_row_per_person', 'warehouse/dim_person', 'sql', 'error', false, 3)")
    shutil.copy(campus_dir / "party" / "exports" / "党组织信息.xlsx", settings.inbox_dir)  # arrives later
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield settings, instance, {**os.environ, **env}


def test_status_shows_runs_cursors_inbox_checks_and_cleared_dead_runs(world):
    settings, instance, _ = world
    create_run_for_test(instance, job_name="campus_main_job", status=DagsterRunStatus.SUCCESS)
    running = create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTED,
                                  tags=process_tags())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    tags = process_tags(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    dead = create_run_for_test(instance, job_name="api_sql_refresh_job", status=DagsterRunStatus.STARTED, tags=tags)

    status = gather(settings, instance)

    last = {job: result for job, _, result, _ in status.runs_last}
    assert last["campus_main_job"] == "SUCCESS" and last["api_sql_refresh_job"] == "FAILURE"
    assert [(j, r) for j, r, _, _ in status.runs_active] == [("inbox_load_job", running.run_id[:8])]
    [cleared] = status.runs_cleared
    assert cleared[1] == dead.run_id[:8] and cleared[2] == "hub status" and "is gone" in cleared[3]

    entities = {e[0]: e for e in status.entities}
    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        cursor = con.execute("SELECT cursor_value FROM meta.source_cursor WHERE entity = 'grades'").fetchone()[0]
        landed = con.execute("SELECT rows_landed FROM quality.load_audit WHERE entity = 'grades'").fetchone()[0]
    assert entities["academic.grades"][1] == cursor and entities["academic.grades"][2] != "—"
    assert entities["academic.grades"][3].startswith(f"ok: read {landed:,}, landed {landed:,}")
    assert entities["hr.staff"][3] == "never loaded"
    inbox = {(where, name): why for where, name, why in status.inbox}
    assert inbox[("inbox", "党组织信息.xlsx")] == "waiting: party.orgs"
    [(rejected, reason)] = [(n, w) for (where, n), w in inbox.items() if where == "_rejected"]
    assert rejected.endswith("党员信息_坏.xlsx") and reason and reason != "no reason recorded"
    assert ("error", "warehouse/dim_person", "one_row_per_person", 3) in status.failing_checks
    assert status.published == []


def test_cursor_reset_and_set_are_audited(world):
    settings, instance, _ = world
    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        before = con.execute("SELECT cursor_value FROM meta.source_cursor WHERE entity = 'grades'").fetchone()[0]
    line = reset_cursor(settings, "academic.grades", None)
    assert "academic.grades" in line and before in line
    reset_cursor(settings, "academic.grades", "2025-09-01 00:00:00")
    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT cursor_value FROM meta.source_cursor WHERE entity = 'grades'").fetchone() == \
               ("2025-09-01 00:00:00",)
        log = con.execute("SELECT action, target, before, after FROM meta.operator_log ORDER BY logged_at").fetchall()
    assert log == [("cursor reset", "academic.grades", before, None),
                   ("cursor reset", "academic.grades", None, "2025-09-01 00:00:00")]

    # and the UI shows it on the raw asset
    observations = instance.fetch_observations(dg.AssetKey(["raw", "academic__grades"]), limit=5).records
    assert [o.asset_observation.metadata["cursor after"].value for o in observations] == \
        ["2025-09-01 00:00:00", "None"]

    with pytest.raises(ValueError, match="'academic.nope' is not a SOURCE.ENTITY"):
        reset_cursor(settings, "academic.nope", None)
    with pytest.raises(ValueError, match="academic.courses: has no cursor"):
        reset_cursor(settings, "academic.courses", None)
    with pytest.raises(ValueError, match="content hash"):
        reset_cursor(settings, "party.members", None)


def test_inbox_retry_moves_a_fixed_file_back_and_is_audited(world, campus_dir):
    settings, instance, _ = world
    [stored] = [p for p in (settings.inbox_dir.parent / "_rejected" / "party").iterdir()
                if not p.name.endswith(".reason.txt")]
    shutil.copy(campus_dir / "party" / "exports" / "党员信息.xlsx", stored)  # the operator fixes it in place
    line = retry_inbox_file(settings, "党员信息_坏.xlsx")
    assert "moved back" in line
    assert (settings.inbox_dir / "党员信息_坏.xlsx").exists() and not stored.exists()
    assert not stored.with_name(stored.name + ".reason.txt").exists()
    with open_warehouse(settings.warehouse_path, read_only=True) as con:
        [(action, detail)] = con.execute("SELECT action, detail FROM meta.operator_log").fetchall()
    assert action == "inbox retry" and detail.startswith("was rejected: ")
    [obs] = instance.fetch_observations(dg.AssetKey(["raw", "party__members"]), limit=5).records
    assert obs.asset_observation.metadata["file"].value == "党员信息_坏.xlsx"
    with pytest.raises(FileNotFoundError, match="not in any _rejected/ folder"):
        retry_inbox_file(settings, "党员信息_坏.xlsx")


def test_operator_commands_wait_for_a_writer_with_one_line(world):
    settings, _, env = world
    holder = connect(settings.warehouse_path)  # a run writing
    try:
        proc = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", "cursor", "reset",
                               "academic.grades"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 2 and "being written by a run" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    proc = subprocess.run([sys.executable, "-m", "hub.cli", "status"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for heading in ("Last run of each job", "Sources", "Inbox", "Failing checks", "Published datasets"):
        assert heading in proc.stdout
