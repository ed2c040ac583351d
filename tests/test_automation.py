"""The inbox sensor and the schedules, evaluated against real files in a real inbox."""

import shutil

import dagster as dg
import pytest
import yaml
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from campus_sim.inbox import drop_party_exports
from hub.factory import build_definitions
from hub.recovery import process_tags
from hub.resources import CampusSourcesResource, WarehouseResource
from hub.settings import PROJECT_ROOT, Settings


def _defs_and_sensor(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HUB_INBOX_DIR", str(tmp_path / "var" / "inbox" / "party"))
    settings = Settings.from_env()
    defs = build_definitions(settings)
    resources = {"campus_sources": CampusSourcesResource(config_path=str(PROJECT_ROOT / "sources.yaml"),
                                                         raw_dir=str(settings.raw_dir)),
                 "warehouse": WarehouseResource(path=str(settings.warehouse_path),
                                                snapshot_path=str(settings.snapshot_path))}
    return defs, defs.resolve_sensor_def("party_inbox_sensor"), resources, settings


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


def _tick(sensor, defs, resources, instance, cursor=None):
    with dg.build_sensor_context(resources=resources, definitions=defs, instance=instance, cursor=cursor) as ctx:
        result = sensor(ctx)
        return result, ctx.cursor


def _raw(request) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection if k.path[0] == "raw"}


def test_a_dropped_file_launches_its_load_once_keyed_by_content(tmp_path, monkeypatch, campus_dir, instance):
    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    settings.inbox_dir.mkdir(parents=True)
    result, _ = _tick(sensor, defs, resources, instance)
    assert isinstance(result, dg.SkipReason), "an empty inbox launches nothing"

    export = campus_dir / "party" / "exports" / "党员信息.xlsx"
    shutil.copy(export, settings.inbox_dir / export.name)
    [request], cursor = _tick(sensor, defs, resources, instance)
    keys = {k.to_user_string() for k in request.asset_selection}
    assert "raw/party__members" in keys, "the file's own entity is loaded"
    assert {"staging/stg_party_members", "warehouse/dim_person", "publish/person_directory"} <= keys, \
        "and what is built on it is rebuilt"
    assert "raw/party__dues" not in keys and "raw/hr__staff" not in keys, "other sources are not touched"
    assert request.tags["hub/entities"] == "party__members"

    result, _ = _tick(sensor, defs, resources, instance, cursor)
    assert isinstance(result, dg.SkipReason), "the same file does not launch twice"

    shutil.copy(export, settings.inbox_dir / "党员信息_再次.xlsx")  # same content, another name
    result, _ = _tick(sensor, defs, resources, instance, cursor)
    assert isinstance(result, dg.SkipReason)


def test_files_dropped_together_launch_one_run_for_the_entities_they_touch(tmp_path, monkeypatch, campus_dir,
                                                                          instance):
    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    dropped = drop_party_exports(campus_dir, settings.inbox_dir)
    assert len(dropped) >= 6
    [request], _ = _tick(sensor, defs, resources, instance)
    assert _raw(request) == {"raw/party__orgs", "raw/party__members", "raw/party__development",
                             "raw/party__dues", "raw/party__transfers", "raw/party__assessments"}
    assert request.tags["hub/files"] == str(len(dropped))


def test_an_entity_with_a_run_in_progress_waits_for_a_later_tick(tmp_path, monkeypatch, campus_dir, instance):
    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    running = create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTED,
                                  tags=process_tags(),
                                  asset_selection=frozenset({dg.AssetKey(["raw", "party__members"])}))
    exports = campus_dir / "party" / "exports"
    settings.inbox_dir.mkdir(parents=True)
    dues = sorted(exports.glob("党费缴纳_*.csv"))[0]
    for path in (exports / "党员信息.xlsx", dues):
        shutil.copy(path, settings.inbox_dir / path.name)

    [request], cursor = _tick(sensor, defs, resources, instance)
    assert _raw(request) == {"raw/party__dues"}, "members are being loaded by the run in progress"
    result, cursor = _tick(sensor, defs, resources, instance, cursor)
    assert isinstance(result, dg.SkipReason) and "party__members" in result.skip_message

    instance.report_run_failed(instance.get_run_by_id(running.run_id), message="finished for the test")
    [request], cursor = _tick(sensor, defs, resources, instance, cursor)
    assert _raw(request) == {"raw/party__members"}, "a later tick picks up what waited"
    result, _ = _tick(sensor, defs, resources, instance, cursor)
    assert isinstance(result, dg.SkipReason)


def test_after_a_demo_like_load_the_sensor_launches_nothing(tmp_path, monkeypatch, campus_dir, instance):
    """`make ui` right after `make demo`: serve-sources re-drops nothing, and a re-dropped file is skipped."""
    from connectors import load_entity, load_sources
    from hub.warehouse import open_warehouse

    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    drop_party_exports(campus_dir, settings.inbox_dir)
    party = load_sources(settings.sources_file)["party"]
    with open_warehouse(settings.warehouse_path) as con:
        for entity in party.entities.values():
            load_entity(con, settings.raw_dir, party, entity, landing_memory=settings.raw_memory_limit)
    assert not list(settings.inbox_dir.iterdir()), "the load archived every file"

    assert drop_party_exports(campus_dir, settings.inbox_dir) == [], "serve-sources does not re-drop them"
    result, _ = _tick(sensor, defs, resources, instance)
    assert isinstance(result, dg.SkipReason)

    for path in (campus_dir / "party" / "exports").iterdir():  # dropped again by hand, same content
        shutil.copy(path, settings.inbox_dir / path.name)
    result, _ = _tick(sensor, defs, resources, instance)
    assert isinstance(result, dg.SkipReason) and "already loaded" in result.skip_message
    assert instance.get_runs() == []


def test_the_demo_run_is_listed_on_the_job_page(instance):
    """The UI lists a job's runs by job name and code-location label; the demo tags its run with it."""
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    from hub.demo import ui_tags

    @dg.op
    def step():
        return 1

    @dg.job(name="campus_main_job")
    def job():
        step()

    job.execute_in_process(instance=instance, tags=ui_tags())
    label = "__repository__@" + yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"][0][
        "python_module"]["location_name"]
    assert instance.get_runs(dg.RunsFilter(job_name="campus_main_job", tags={REPOSITORY_LABEL_TAG: label}))


def test_daily_schedule_refreshes_api_and_sql_sources_only(tmp_path, monkeypatch):
    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    job = defs.resolve_job_def("api_sql_refresh_job")
    raw = {k.to_user_string() for k in job.asset_layer.executable_asset_keys if k.path[0] == "raw"}
    assert raw == {"raw/hr__staff", "raw/student__students", "raw/academic__courses", "raw/academic__grades",
                   "raw/activity__meetings", "raw/activity__attendance", "raw/learning__courses",
                   "raw/learning__study_records"}
    schedule = defs.resolve_schedule_def("daily_api_sql_refresh")
    assert schedule.job_name == "api_sql_refresh_job" and schedule.execution_timezone == "Asia/Shanghai"
