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
from pipelines.automation import DOWNSTREAM


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
    assert keys == {"raw/party__members", "settings/as_of"}, \
        "the file's own entity is loaded, nothing else: hub_automation rebuilds what is built on it"
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


def _load(defs, keys, instance, tags=None):
    """Execute a run of these assets in process, as the daemon would launch it (their checks left out to keep
    the test short: the automation below reads materialisations and check results from the instance)."""
    job = defs.resolve_job_def("campus_main_job").get_subset(asset_selection=set(keys), asset_check_selection=set())
    result = job.execute_in_process(instance=instance, tags=tags or {})
    assert result.success
    return result


def _runs(defs, result) -> list[dg.RunRequest]:
    """The runs hub_automation's tick would launch for these results (Dagster's own grouping into runs)."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests

    return list(build_run_requests(list(result._requested_subsets), defs.resolve_asset_graph(), None,
                                   emit_backfills=False))


def _requested(result) -> set[str]:
    return {sub.key.to_user_string() for sub in result._requested_subsets
            if isinstance(sub.key, dg.AssetKey) and not sub.is_empty}


def test_drops_in_separate_ticks_load_raw_each_then_one_coalesced_rebuild_held_back_by_failing_checks(
        tmp_path, monkeypatch, campus_dir, instance):
    """§6: each drop launches its own raw load; hub_automation then launches ONE run for both drops, and a
    failing blocking check on one of the tables holds back what is built on that table only."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluation,
        AssetCheckEvaluationTargetMaterializationData,
    )

    defs, sensor, resources, settings = _defs_and_sensor(tmp_path, monkeypatch)
    automation = defs.resolve_sensor_def("hub_automation")
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    for key in (["staging", "stg_party_members"], ["warehouse", "dim_person"], ["publish", "party_report"]):
        assert graph.get(dg.AssetKey(key)).automation_condition == DOWNSTREAM, key
    assert graph.get(dg.AssetKey(["raw", "party__members"])).automation_condition is None

    _load(defs, [dg.AssetKey(["staging", "code_sets"])], instance)  # built by an earlier run, as in real life
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not _requested(before) & {"staging/stg_party_members", "staging/stg_party_dues"}, \
        "nothing to build on before anything is loaded"

    exports = campus_dir / "party" / "exports"
    settings.inbox_dir.mkdir(parents=True)
    shutil.copy(exports / "党员信息.xlsx", settings.inbox_dir / "党员信息.xlsx")
    [first], cursor = _tick(sensor, defs, resources, instance)
    first_run = _load(defs, first.asset_selection, instance, first.tags)
    dues = sorted(exports.glob("党费缴纳_*.csv"))[0]
    shutil.copy(dues, settings.inbox_dir / dues.name)
    [second], cursor = _tick(sensor, defs, resources, instance, cursor)
    assert _raw(first) == {"raw/party__members"} and _raw(second) == {"raw/party__dues"}, "one raw load per drop"
    second_run = _load(defs, second.asset_selection, instance, second.tags)
    built = {e.asset_key.to_user_string() for r in (first_run, second_run) for e in r.get_asset_materialization_events()}
    assert {"raw/party__members", "raw/party__dues"} <= built and not {k for k in built if k.startswith("staging")}

    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    [run] = _runs(defs, tick)  # both drops are rebuilt by ONE run
    requested = {k.to_user_string() for k in run.asset_selection}
    assert {"staging/stg_party_members", "staging/stg_party_dues"} <= requested
    assert not {k for k in requested if k.startswith(("raw/", "settings/"))}, "the loads are not launched again"
    assert "staging/stg_students" not in requested, "a model whose source was never loaded waits"
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert not _requested(again) & requested, "the same drops are not rebuilt twice"

    # the same two loads, but the members' blocking check failed on its latest load
    members = dg.AssetKey(["raw", "party__members"])
    [record] = instance.fetch_materializations(members, limit=1).records
    instance.report_runless_asset_event(AssetCheckEvaluation(
        asset_key=members, check_name="row_conservation", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        blocking=True, target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)))
    held = _requested(dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor))
    assert "staging/stg_party_dues" in held, "a table whose checks pass is rebuilt on"
    assert "staging/stg_party_members" not in held, "the failing blocking check holds its table's models back"


def test_new_dues_alone_rerun_the_rule_checks_that_read_them_through_the_daemon(tmp_path, monkeypatch):
    """A rule check reads the facts its as-of date comes from: when only the dues are rebuilt, hub_automation
    runs the rule checks on dim_party_member (their table did not change), so the publish gate does not find
    them stale; checks that read nothing that changed are not run."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    job = defs.resolve_job_def("campus_main_job")
    graph = job.asset_layer.asset_graph
    instance = dg.DagsterInstance.ephemeral()
    for key in graph.toposorted_asset_keys:  # a whole run, in order, every check passing
        if key in job.asset_layer.executable_asset_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
            for check in graph.get(key).check_keys:
                instance.report_runless_asset_event(AssetCheckEvaluation(
                    asset_key=key, check_name=check.name, passed=True, severity=dg.AssetCheckSeverity.ERROR,
                    blocking=graph.get_check_spec(check).blocking))
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    dues = dg.AssetKey(["warehouse", "fact_dues_payment"])
    instance.report_runless_asset_event(dg.AssetMaterialization(dues))
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    checks = {sub.key for sub in tick._requested_subsets if isinstance(sub.key, dg.AssetCheckKey) and not sub.is_empty}
    member = dg.AssetKey(["warehouse", "dim_party_member"])
    on_members = {k for k in graph.asset_check_keys if k.asset_key == member
                  and dues in {d.asset_key for d in graph.get_check_spec(k).additional_deps}}
    assert on_members and on_members <= checks, "the rule checks that read the dues judge again"
    assert not {k for k in checks if k.asset_key == dg.AssetKey(["warehouse", "dim_person"])}, \
        "a check that reads nothing that changed is not run"


def test_the_as_of_asset_updates_only_when_the_as_of_setting_changes(tmp_path, monkeypatch, instance):
    """A new as-of day with no new data still rebuilds the date-dependent models: settings/as_of is upstream."""
    from pipelines.as_of import AS_OF_KEY, as_of

    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get(AS_OF_KEY).child_keys} == {
        "marts/mart_parameters", "warehouse/fact_relation_transfer"}
    assert {"marts/mart_member_roster", "marts/mart_dues_compliance"} <= {
        k.to_user_string() for k in dg.AssetSelection.assets(AS_OF_KEY).downstream().resolve(graph)}, \
        "every mart reads mart_parameters"

    from hub.resources import RunSettingsResource

    def run(as_of_day: str = "") -> bool:
        result = dg.materialize([as_of], instance=instance,
                                resources={"run_settings": RunSettingsResource(as_of=as_of_day)})
        return bool(result.get_asset_materialization_events())

    assert run(), "the first time it materialises"
    assert not run(), "the same setting: not materialised, nothing downstream is due"
    assert run("2026-12-04"), "a new as-of day (run_settings.as_of, as the launchpad sets it)"
    assert instance.get_latest_data_version_record(AS_OF_KEY, is_source=False) is not None
    assert not run("2026-12-04")
    assert run(), "back to the data's latest date: a change again"


def test_an_incremental_run_rebuilds_what_an_earlier_run_left_behind_unless_a_blocking_check_failed(
        tmp_path, monkeypatch):
    """pipelines/incremental.py: a model older than one of its inputs (its run was killed) is rebuilt with
    what is built on it; an input whose latest blocking check failed holds it back."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

    from pipelines.incremental import behind, failing_blocking_checks, rebuild_selection

    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    job = defs.resolve_job_def("campus_main_job")
    graph = job.asset_layer.asset_graph
    instance = dg.DagsterInstance.ephemeral()
    for key in graph.toposorted_asset_keys:  # a whole run, in order
        if key in job.asset_layer.executable_asset_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
    assert behind(job, instance) == set() and failing_blocking_checks(job, instance) == set()

    dim_person = dg.AssetKey(["warehouse", "dim_person"])
    instance.report_runless_asset_event(dg.AssetMaterialization(dim_person))  # rebuilt; the run died after it
    children = {k for k in graph.get(dim_person).child_keys if k in job.asset_layer.executable_asset_keys} - {dim_person}
    late = behind(job, instance)
    assert children and late == children | {dim_person}, \
        "the models built on it are behind; it runs again too, so that its checks run before them"
    rebuilt = {k.to_user_string() for k in rebuild_selection(job, late)}
    assert {"marts/mart_member_roster", "publish/analyst_snapshot"} <= rebuilt
    assert not {k for k in rebuilt if k.startswith(("raw/", "settings/", "staging/"))}
    # new dues only: the rule checks on dim_party_member read fact_dues_payment (their as-of date), so the
    # table is rebuilt with them, or the publish gate would find them stale and refuse zt_dyfzsj
    dues = {k.to_user_string() for k in rebuild_selection(job, {dg.AssetKey(["warehouse", "fact_dues_payment"])})}
    assert {"warehouse/fact_dues_payment", "warehouse/dim_party_member", "publish/zt_dyfzsj"} <= dues
    assert "warehouse/dim_person" not in dues, "only the tables whose checks read it, and what is built on them"

    instance.report_runless_asset_event(AssetCheckEvaluation(
        asset_key=dim_person, check_name="one_row_per_person", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        blocking=True))
    blocked = failing_blocking_checks(job, instance)
    assert blocked == {dim_person}
    assert behind(job, instance, blocked) == set(), "held back while dim_person's blocking check fails"


def _staging_requested(defs, instance, cursor=None):
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return {(sub.key.to_user_string(), pk) for sub in tick._requested_subsets
            if isinstance(sub.key, dg.AssetKey) and sub.key.path[0] == "staging" and not sub.is_empty
            for pk in (sorted(sub.expensively_compute_partition_keys()) if sub.is_partitioned else [None])}, tick


def test_nothing_is_requested_for_a_college_while_a_run_of_it_is_in_flight(tmp_path, monkeypatch, instance):
    """A college's run (here: its raw load) queued or in progress holds back every rebuild of that college,
    and of that college only; the tick after the run ends requests what the load made due. Without the
    guard the models on the loaded table were requested while the load was still running (their own
    materialisation is not in progress), and with a main run in flight Dagster re-requested models the run
    had just built (pipelines/automation.py)."""
    from hub.colleges import load_colleges

    members = [dg.AssetKey(["raw", "party__members"])]
    model = "staging/stg_party_members"
    # one college: any run in flight holds everything back
    defs, *_ = _defs_and_sensor(tmp_path, monkeypatch)
    _load(defs, [dg.AssetKey(["staging", "code_sets"])], instance)
    _, before = _staging_requested(defs, instance)
    for key in members:  # what a load that brought rows records
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    loading = create_run_for_test(instance, job_name="inbox_load_job", status=DagsterRunStatus.STARTED)
    held, tick = _staging_requested(defs, instance, before.cursor)
    assert not held, "a run in flight holds the rebuild back"
    instance.report_run_failed(instance.get_run_by_id(loading.run_id), message="finished for the test")
    due, tick = _staging_requested(defs, instance, tick.cursor)
    assert (model, None) in due, "the tick after the run requests what the load made due"

    # two colleges: a run of A in flight holds A back, not B
    a, b = "4145000001", "4145000002"
    conf = tmp_path / "conf"
    conf.mkdir()
    for p in "AB":
        text = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8").replace("${HUB_", f"${{HUB_{p}_")
        (conf / f"{p}.yaml").write_text(text, encoding="utf-8")
    (conf / "colleges.yaml").write_text(yaml.safe_dump({"colleges": [
        {"xxdm": a, "name": "A", "sources": "A.yaml"}, {"xxdm": b, "name": "B", "sources": "B.yaml"}]}),
        encoding="utf-8")
    multi = build_definitions(Settings.from_env(), load_colleges(conf / "colleges.yaml"))
    with dg.instance_for_test() as inst:
        def load(keys):
            for code in (a, b):
                for key in keys:
                    inst.report_runless_asset_event(dg.AssetMaterialization(key, partition=code))

        load([dg.AssetKey(["staging", "code_sets"])])
        _, before = _staging_requested(multi, inst)
        load(members)
        everywhere = create_run_for_test(inst, job_name="api_sql_refresh_job", status=DagsterRunStatus.STARTED)
        requested, _ = _staging_requested(multi, inst, before.cursor)
        assert not requested, "a run that names no college may write any college's file"
        inst.report_run_failed(inst.get_run_by_id(everywhere.run_id), message="finished for the test")
        for status, tags in ((DagsterRunStatus.NOT_STARTED, {"dagster/partition": a}),
                             (DagsterRunStatus.STARTED, {"college": a})):
            run = create_run_for_test(inst, job_name="inbox_load_job", status=status, tags=tags)
            requested, _ = _staging_requested(multi, inst, before.cursor)
            assert (model, b) in requested and (model, a) not in requested, (status, requested)
            inst.report_run_failed(inst.get_run_by_id(run.run_id), message="finished for the test")
        requested, _ = _staging_requested(multi, inst, before.cursor)
        assert {(model, a), (model, b)} <= requested


def test_a_model_is_requested_only_when_an_input_is_really_newer():
    """InputNewer reads the event log itself: due when never built or when an input was materialised after
    the model (per college partition); not due once the model is built after its inputs, whatever a tick
    remembers."""
    from pipelines.automation import InputNewer

    colleges = dg.StaticPartitionsDefinition(["4145000001", "4145000002"])

    def graph(partitions):
        @dg.asset(partitions_def=partitions)
        def raw_t(): ...

        @dg.asset(partitions_def=partitions)
        def other(): ...

        @dg.asset(partitions_def=partitions, deps=[raw_t, other], automation_condition=InputNewer())
        def model(): ...

        return dg.Definitions(assets=[raw_t, other, model])

    def due(defs, instance):
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        [sub] = [s for s in tick._requested_subsets if s.key == dg.AssetKey("model")] or [None]
        if sub is None or sub.is_empty:
            return set()
        return set(sub.expensively_compute_partition_keys()) if sub.is_partitioned else {None}

    with dg.instance_for_test() as instance:
        defs = graph(None)
        done = lambda key: instance.report_runless_asset_event(dg.AssetMaterialization(key))  # noqa: E731
        assert due(defs, instance) == {None}, "never built"
        done("raw_t"), done("model")
        assert due(defs, instance) == set(), "built after its input"
        done("other")
        assert due(defs, instance) == {None}, "an input newer than the model"
        done("model")
        assert due(defs, instance) == due(defs, instance) == set(), "level, not edge: still not due"

    a, b = colleges.get_partition_keys()
    with dg.instance_for_test() as instance:
        defs = graph(colleges)
        done = lambda key, pk: instance.report_runless_asset_event(  # noqa: E731
            dg.AssetMaterialization(key, partition=pk))
        for pk in (a, b):
            done("raw_t", pk), done("model", pk)
        assert due(defs, instance) == set()
        done("raw_t", b)
        assert due(defs, instance) == {b}, "only the college whose input is newer"
        done("model", b), done("other", a)
        assert due(defs, instance) == {a}
