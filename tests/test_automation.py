"""The inbox sensor and the schedules, evaluated against real files in a real inbox."""

import shutil

import dagster as dg

from hub.factory import build_definitions
from hub.resources import CampusSourcesResource
from hub.settings import PROJECT_ROOT, Settings


def _defs_and_sensor(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HUB_INBOX_DIR", str(tmp_path / "var" / "inbox" / "party"))
    settings = Settings.from_env()
    defs = build_definitions(settings)
    resources = {"campus_sources": CampusSourcesResource(config_path=str(PROJECT_ROOT / "sources.yaml"),
                                                         raw_dir=str(settings.raw_dir))}
    return defs, defs.resolve_sensor_def("party_inbox_sensor"), resources, settings


def test_a_dropped_file_launches_its_load_once_keyed_by_content(tmp_path, monkeypatch, campus_dir):
    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    settings.inbox_dir.mkdir(parents=True)
    with dg.build_sensor_context(resources=resources, definitions=defs) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason), "an empty inbox launches nothing"

    export = campus_dir / "party" / "exports" / "党员信息.xlsx"
    shutil.copy(export, settings.inbox_dir / export.name)
    with dg.build_sensor_context(resources=resources, definitions=defs) as ctx:
        [request] = sensor(ctx)
        cursor = ctx.cursor
    from connectors.files import sha256_of

    assert request.run_key == sha256_of(export)
    keys = {k.to_user_string() for k in request.asset_selection}
    assert "raw/party__members" in keys, "the file's own entity is loaded"
    assert {"staging/stg_party_members", "warehouse/dim_person", "publish/person_directory"} <= keys, \
        "and what is built on it is rebuilt"
    assert "raw/party__dues" not in keys and "raw/hr__staff" not in keys, "other sources are not touched"

    with dg.build_sensor_context(resources=resources, definitions=defs, cursor=cursor) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason), "the same file does not launch twice"

    shutil.copy(export, settings.inbox_dir / "党员信息_再次.xlsx")  # same content, another name
    with dg.build_sensor_context(resources=resources, definitions=defs, cursor=cursor) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason)


def test_daily_schedule_refreshes_api_and_sql_sources_only(tmp_path, monkeypatch):
    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    job = defs.resolve_job_def("api_sql_refresh_job")
    raw = {k.to_user_string() for k in job.asset_layer.executable_asset_keys if k.path[0] == "raw"}
    assert raw == {"raw/hr__staff", "raw/student__students", "raw/academic__courses", "raw/academic__grades",
                   "raw/activity__meetings", "raw/activity__attendance", "raw/learning__courses",
                   "raw/learning__study_records"}
    schedule = defs.resolve_schedule_def("daily_api_sql_refresh")
    assert schedule.job_name == "api_sql_refresh_job" and schedule.execution_timezone == "Asia/Shanghai"
