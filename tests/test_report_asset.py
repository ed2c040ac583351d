"""The party office's report is an asset downstream of exactly the marts it reads, in every job that builds them."""

import dagster as dg

from hub.factory import build_definitions
from hub.resources import WarehouseResource
from hub.settings import Settings
from pipelines.report import REPORT_KEY, marts_read_by_report, party_report_asset
from pipelines.warehouse import mart_assets


def test_the_report_depends_on_every_mart_it_reads_and_is_rebuilt_with_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    defs = build_definitions(Settings.from_env())
    graph = defs.resolve_asset_graph()
    parents = {k.path[-1] for k in graph.get(REPORT_KEY).parent_keys}
    read = marts_read_by_report()
    assert len(read) >= 10 and parents == read
    keys = defs.resolve_job_def("campus_main_job").asset_layer.executable_asset_keys
    assert REPORT_KEY in keys and {k for k in keys if k.path[0] == "marts"}
    for job in ("inbox_load_job", "api_sql_refresh_job"):  # raw loads only: hub_automation rebuilds downstream
        keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        assert {k.path[0] for k in keys} == {"raw", "settings"}, job
    assert graph.get(REPORT_KEY).automation_condition is not None


def test_materialising_the_report_writes_var_report_index_html(tmp_path, monkeypatch, con):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    warehouse = tmp_path / "warehouse.duckdb"
    con.close()  # the fixture's fresh warehouse, bootstrapped and released
    report = party_report_asset([a.key for a in mart_assets], Settings.from_env().var_dir / "report")
    result = dg.materialize([report], resources={"warehouse": WarehouseResource(path=str(warehouse))},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    path = tmp_path / "var" / "report" / "index.html"
    page = path.read_text(encoding="utf-8")
    assert "暂无数据" in page and "<script" not in page
    [mat] = result.asset_materializations_for_node("publish__party_report")
    assert mat.metadata["path"].value == str(path)


def test_a_mart_materialised_alone_gets_the_report_rebuilt_and_a_fresh_demo_launches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    defs = build_definitions(Settings.from_env())
    sensor = defs.resolve_sensor_def("hub_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    marts = sorted(defs.resolve_asset_graph().get(REPORT_KEY).parent_keys, key=str)
    instance = dg.DagsterInstance.ephemeral()
    for key in [*marts, REPORT_KEY]:  # a demo: every mart, then the report
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    selection = dg.AssetSelection.assets(REPORT_KEY)

    def tick(cursor=None):
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                 cursor=cursor)

    first = tick()
    assert first.total_requested == 0, "right after a demo nothing is launched"
    instance.report_runless_asset_event(dg.AssetMaterialization(marts[0]))  # one mart, alone
    second = tick(first.cursor)
    assert second.total_requested == 1
    instance.report_runless_asset_event(dg.AssetMaterialization(REPORT_KEY))  # the report rebuilt
    assert tick(second.cursor).total_requested == 0
