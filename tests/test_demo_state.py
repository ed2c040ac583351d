"""`hub demo` owns its state: another scale or seed resets what var/ holds, so two campuses never mix."""

from __future__ import annotations

import io
import json
import shutil

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test
from rich.console import Console

from hub.demo import STATE_MARKER, ensure_campus
from hub.recovery import process_tags
from hub.settings import PROJECT_ROOT, Settings
from hub.warehouse import connect
from tests.conftest import SEED, SMALL_SCALE


@pytest.fixture
def world(tmp_path, campus_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    var = tmp_path / "var"
    shutil.copytree(campus_dir, var / "campus")
    settings = Settings.from_env({"HUB_VAR_DIR": str(var), "DAGSTER_HOME": str(home)})
    # what an earlier demo of this campus left behind
    (settings.raw_dir / "hr" / "staff").mkdir(parents=True)
    (settings.raw_dir / "hr" / "staff" / "part-0.parquet").write_bytes(b"x")
    settings.inbox_dir.mkdir(parents=True)
    (settings.inbox_dir / "党员信息.xlsx").write_bytes(b"x")
    (settings.published_root / "person_directory").mkdir(parents=True)
    (settings.published_root / "catalog.json").write_text("{}")
    settings.snapshot_path.parent.mkdir(parents=True)
    settings.snapshot_path.write_bytes(b"x")
    con = connect(settings.warehouse_path)
    con.execute("INSERT INTO meta.source_cursor VALUES ('hr', 'staff', '2026-01-01', 'l1', now())")
    con.close()
    (var / STATE_MARKER).write_text(json.dumps({"scale": SMALL_SCALE, "seed": SEED}))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        create_run_for_test(instance, job_name="campus_main_job", status=DagsterRunStatus.SUCCESS)
        yield settings, instance


def test_the_same_campus_keeps_everything(world):
    settings, instance = world
    out = io.StringIO()
    ensure_campus(settings, scale=SMALL_SCALE, seed=SEED, console=Console(file=out), instance=instance)
    assert out.getvalue() == ""
    assert settings.warehouse_path.exists() and settings.raw_dir.exists() and len(instance.get_run_ids()) == 1


def test_another_scale_resets_raw_cursors_warehouse_published_and_runs_in_one_line(world):
    settings, instance = world
    out = io.StringIO()
    manifest = ensure_campus(settings, scale=0.01, seed=SEED, console=Console(file=out, width=400),
                             instance=instance)
    assert manifest["scale"] == 0.01
    [line] = [x for x in out.getvalue().splitlines() if "reset the demo" in x]
    assert f"scale {SMALL_SCALE:g} seed {SEED}" in line and "scale 0.01" in line and "1 run(s)" in line
    for gone in (settings.raw_dir, settings.inbox_dir, settings.published_root, settings.snapshot_path,
                 settings.warehouse_path):
        assert not gone.exists(), gone
    assert instance.get_run_ids() == []
    assert json.loads((settings.var_dir / STATE_MARKER).read_text()) == {"scale": 0.01, "seed": SEED}
    con = connect(settings.warehouse_path)  # a new warehouse starts with no cursor
    try:
        assert con.execute("SELECT count(*) FROM meta.source_cursor").fetchone() == (0,)
    finally:
        con.close()
    assert settings.campus_dir.joinpath("manifest.json").exists()


def test_another_seed_is_refused_while_a_run_is_in_progress(world):
    settings, instance = world
    create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTED, tags=process_tags())
    with pytest.raises(ValueError, match="inbox_load_job is STARTED"):
        ensure_campus(settings, scale=SMALL_SCALE, seed=SEED + 1, console=Console(file=io.StringIO()),
                      instance=instance)
    assert settings.warehouse_path.exists(), "nothing removed"
