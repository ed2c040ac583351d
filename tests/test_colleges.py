"""Many colleges on one hub (hub/colleges.py, issue 18 §1): colleges.yaml, every asset partitioned by
college, each college's run on its own warehouse file, raw zone, published root, sources and keys.

The run test serves two small simulated campuses of different seeds on loopback, materialises both
partitions of campus_main_job through the real graph, and compares each college's published national
tables with a single-college run of the same campus."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from campus_sim.inbox import drop_party_exports
from campus_sim.servers import SourceServers
from hub.colleges import (
    CollegeConfigError,
    add_college,
    check_college_keys,
    load_colleges,
)
from hub.encryption import KeyConfigError
from hub.publisher import read_manifest
from hub.resources import CampusSourcesResource  # at module level: an asset's annotation below names it
from hub.settings import PROJECT_ROOT, Settings
from pipelines.national import NATIONAL_TABLES
from tests.conftest import SMALL_SCALE

A, B = "4145000001", "4145000002"
slow = pytest.mark.slow  # the two-college run: three runs of 40 assets (228 s at load average 6 on 2 cores)
SEED_B = 8


def _sources_for(prefix: str, out: Path) -> Path:
    """The project's sources.yaml with every variable renamed HUB_<prefix>_…: a college's own endpoints."""
    text = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8").replace("${HUB_", f"${{HUB_{prefix}_")
    out.write_text(text, encoding="utf-8")
    return out


def _colleges_yaml(folder: Path, entries: list[dict]) -> Path:
    path = folder / "colleges.yaml"
    path.write_text(yaml.safe_dump({"colleges": entries}, allow_unicode=True), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ config


def test_bad_colleges_yaml_is_one_line_naming_file_college_and_field(tmp_path):
    _sources_for("A", tmp_path / "a.yaml")
    good = {"xxdm": A, "name": "A 学院", "sources": "a.yaml"}
    cases = [
        ([{**good, "xxdm": 4145000001}], "colleges[0]: xxdm: must be the 10-digit 学校代码"),
        ([{**good, "xxdm": "41450001"}], "college 41450001: xxdm: must be the 10-digit 学校代码 written as a string"),
        ([{**good, "schedule": "every day"}], f"college {A}: schedule: not a cron schedule: 'every day'"),
        ([{**good, "secrets": {"person_key": "not a name"}}], f"college {A}: secrets.person_key: String should match"),
        ([{**good, "colour": "red"}], f"college {A}: colour: unknown key"),
        ([good, {**good, "name": "again"}], f"college {A} is listed twice"),
        ([{**good, "sources": "missing.yaml"}], f"college {A} (A 学院): sources: file not found"),
        ([{k: v for k, v in good.items() if k != "name"}], f"college {A}: name: Field required"),
    ]
    for entries, expected in cases:
        path = _colleges_yaml(tmp_path, entries)
        with pytest.raises(CollegeConfigError) as exc:
            load_colleges(path)
        line = str(exc.value)
        assert "\n" not in line and line.startswith(f"{path}: "), line
        assert expected in line, line
    (tmp_path / "colleges.yaml").write_text("colleges: [\n", encoding="utf-8")
    with pytest.raises(CollegeConfigError, match=r"colleges.yaml line \d+: not valid YAML"):
        load_colleges(tmp_path / "colleges.yaml")


def test_college_add_validates_and_appends(tmp_path):
    from click.testing import CliRunner

    from hub.cli import main

    _sources_for("A", tmp_path / "a.yaml")
    _sources_for("B", tmp_path / "b.yaml")
    path = tmp_path / "colleges.yaml"
    run = CliRunner().invoke(main, ["college", "add", A, "--name", "A", "--sources", "a.yaml", "--file", str(path)])
    assert run.exit_code == 0, run.output
    bad = CliRunner().invoke(main, ["college", "add", "12", "--name", "B", "--sources", "b.yaml", "--file", str(path)])
    assert bad.exit_code == 2 and "xxdm: must be the 10-digit" in bad.output and str(path) in bad.output
    assert [c.xxdm for c in load_colleges(path).colleges] == [A], "a refused entry is not written"
    add_college(path, {"xxdm": B, "name": "B", "sources": "b.yaml", "schedule": "30 3 * * *",
                       "secrets": {"person_key": "HUB_B_PERSON_KEY"}})
    colleges = load_colleges(path)
    assert colleges.codes == [A, B]
    assert colleges.get(B).secrets.person_key == "HUB_B_PERSON_KEY"
    assert colleges.get(B).secrets.national_key == "HUB_NATIONAL_KEY_SECRET"
    with pytest.raises(CollegeConfigError, match=f"college {B} is listed twice"):
        add_college(path, {"xxdm": B, "name": "B again", "sources": "b.yaml"})
    assert load_colleges(path).codes == [A, B]


def test_a_college_keys_are_checked_under_its_own_variable_names():
    env = {"HUB_MODE": "", "HUB_B_PERSON": "x" * 20, "HUB_B_NATIONAL": "short", "HUB_B_KMS": ""}
    with pytest.raises(KeyConfigError, match="^HUB_B_NATIONAL is shorter than 16"):
        check_college_keys({"person_key": "HUB_B_PERSON", "national_key": "HUB_B_NATIONAL",
                            "kms_master_keys": "HUB_B_KMS"}, env)


def test_partitioned_graph(tmp_path):
    """Every executable asset gets the college partitions; no op keeps the single college's global pool;
    one schedule per college; single-college definitions are unchanged (pools, no partitions)."""
    from hub.factory import build_definitions
    from hub.resources import WAREHOUSE_POOL

    _sources_for("A", tmp_path / "a.yaml")
    _sources_for("B", tmp_path / "b.yaml")
    path = _colleges_yaml(tmp_path, [{"xxdm": A, "name": "A", "sources": "a.yaml"},
                                     {"xxdm": B, "name": "B", "sources": "b.yaml", "schedule": "0 3 * * *"}])
    settings = Settings.from_env({"HUB_VAR_DIR": str(tmp_path / "var")})
    multi = build_definitions(settings, load_colleges(path))
    single = build_definitions(settings)
    for defs, partitioned in ((multi, True), (single, False)):
        job = defs.resolve_job_def("campus_main_job")
        nodes = [n for n in defs.resolve_asset_graph().asset_nodes if n.is_executable]
        assert nodes
        if partitioned:
            assert all(n.partitions_def is not None and n.partitions_def.get_partition_keys() == [A, B] for n in nodes)
            assert not [op.name for op in job.graph.node_defs if op.pool]
        else:
            assert all(n.partitions_def is None for n in nodes)
            assert len([op for op in job.graph.node_defs if op.pool == WAREHOUSE_POOL]) > 50
    schedule = multi.resolve_schedule_def(f"college_{B}_daily")
    assert schedule.cron_schedule == "0 3 * * *"
    with dg.build_schedule_context(repository_def=multi.get_repository_def()) as ctx:
        request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == B and request.tags["college"] == B
    inbox = multi.resolve_sensor_def("party_inbox_sensor")  # every college's inbox (tested below)
    assert inbox.job_name == "inbox_load_job" and "every college" in inbox.description
    assert "every college" not in single.resolve_sensor_def("party_inbox_sensor").description


# ------------------------------------------------------------------------------------------ runs


def _national(root: Path) -> dict[str, list[tuple]]:
    """Every national table's current published rows, sorted, without sjcjsj (the load's start time)."""
    out = {}
    con = duckdb.connect()
    for table in (t.dataset for t in NATIONAL_TABLES):
        manifest = read_manifest(root, table)
        files = [str(root / table / manifest["version"] / f["path"]) for f in manifest["files"]]
        rel = con.execute("SELECT * EXCLUDE (sjcjsj) FROM read_parquet(?) ORDER BY ALL", [files])
        out[table] = rel.fetchall()
    return out


@pytest.fixture(scope="module")
def campus_b(tmp_path_factory) -> Path:
    from campus_sim.generate import generate

    out = tmp_path_factory.mktemp("campus_b")
    generate(out, scale=SMALL_SCALE, seed=SEED_B)
    return out


def _env_for(prefix: str, servers: SourceServers, campus: Path, inbox: Path) -> dict[str, str]:
    urls = servers.urls
    return {f"HUB_{prefix}_HR_URL": urls["hr"], f"HUB_{prefix}_XG_URL": urls["student"],
            f"HUB_{prefix}_ACTIVITY_URL": urls["activity"], f"HUB_{prefix}_LEARNING_URL": urls["learning"],
            f"HUB_{prefix}_ACADEMIC_URL": f"sqlite:///{campus / 'academic' / 'academic.sqlite'}",
            f"HUB_{prefix}_INBOX_DIR": str(inbox)}


def _national_job(defs: dg.Definitions) -> dg.JobDefinition:
    """campus_main_job limited to the six national datasets and what they are built from (40 of the 88
    assets), with only the checks the publish gate needs (pipelines/gate.py: the blocking checks on what
    they are built from, and the error-severity rule checks whose violations zt_dyfzsj leaves out), the same
    on both sides of the comparison: what the comparison needs, in a fraction of the run time."""
    from pipelines.gate import rule_checks_needed, upstream_checks

    keys = [dg.AssetKey(["publish", t.dataset]) for t in NATIONAL_TABLES]
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.assets(*keys).upstream().required_multi_asset_neighbors()
    needed = {k for key in keys for k, (blocking, _) in upstream_checks(graph, key).items() if blocking}
    return defs.resolve_job_def("campus_main_job").get_subset(
        asset_selection=selection.resolve(graph), asset_check_selection=needed | set(rule_checks_needed()))


@slow
def test_two_colleges_run_as_partitions_each_on_its_own_files(tmp_path, campus_dir, campus_b, monkeypatch):
    """College A keeps the default key variables and folder; college B has its own keys and var_dir. Both
    partitions run through the real graph against their own loopback campus; college B's national tables
    equal those of the same campus run as the only college of a hub (its keys under the standard names)."""
    from hub.factory import build_definitions

    keys = {"HUB_B_PERSON_KEY": "college-b-person-key-for-tests", "HUB_B_NATIONAL_KEY": "college-b-national-key-4-tests"}
    for k, v in keys.items():
        monkeypatch.setenv(k, v)
    folder = tmp_path / "conf"
    folder.mkdir()
    _sources_for("A", folder / "a.yaml")
    _sources_for("B", folder / "b.yaml")
    path = _colleges_yaml(folder, [
        {"xxdm": A, "name": "A 职业技术学院", "sources": "a.yaml"},
        {"xxdm": B, "name": "B 职业技术学院", "sources": "b.yaml", "var_dir": str(tmp_path / "b_own_dir"),
         "secrets": {"person_key": "HUB_B_PERSON_KEY", "national_key": "HUB_B_NATIONAL_KEY"}}])
    colleges = load_colleges(path)
    settings = Settings.from_env({"HUB_VAR_DIR": str(tmp_path / "var")})
    for code, campus in ((A, campus_dir), (B, campus_b)):
        drop_party_exports(campus, tmp_path / "inbox" / code)
    with SourceServers(campus_dir) as sa, SourceServers(campus_b) as sb, dg.instance_for_test() as instance:
        for k, v in {**_env_for("A", sa, campus_dir, tmp_path / "inbox" / A),
                     **_env_for("B", sb, campus_b, tmp_path / "inbox" / B)}.items():
            monkeypatch.setenv(k, v)
        job = _national_job(build_definitions(settings, colleges))
        for code in (A, B):
            result = job.execute_in_process(partition_key=code, instance=instance, raise_on_error=False)
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            assert result.success, f"college {code}: failed steps {failed}"
            assert result.dagster_run.tags["dagster/partition"] == code
    paths = {code: colleges.paths(code, settings) for code in (A, B)}
    assert paths[A].warehouse_path == tmp_path / "var" / "colleges" / A / "warehouse.duckdb"
    assert paths[B].warehouse_path == tmp_path / "b_own_dir" / "warehouse.duckdb"
    assert paths[B].published_root == str(tmp_path / "b_own_dir" / "published")
    assert not (tmp_path / "var" / "warehouse.duckdb").exists(), "nothing in the single college's place"
    assert not (tmp_path / "var" / "published").exists()
    multi = {}
    for code, p in paths.items():
        assert p.warehouse_path.exists() and any((p.var_dir / "raw").iterdir())
        multi[code] = _national(Path(p.published_root))
        for table, rows in multi[code].items():
            assert rows, f"{code} {table} published no rows"
            assert {r[1] for r in rows} == {code}, f"{code}'s {table} rows carry another xxdm"
        with duckdb.connect(str(p.warehouse_path), read_only=True) as con:
            sources = {r[0] for r in con.execute("SELECT DISTINCT source FROM quality.load_audit WHERE status = 'ok'")
                       .fetchall()}
            assert {"hr", "student", "party"} <= sources
    assert multi[A]["zt_dyfzsj"] != multi[B]["zt_dyfzsj"], "two campuses, two different tables"
    # the same campus run as the only college of a hub (keys under the standard names) publishes the same
    single_var = tmp_path / "single_b"
    drop_party_exports(campus_b, single_var / "inbox")
    with SourceServers(campus_b) as servers, dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_SCHOOL_CODE", B)
        mp.setenv("HUB_PERSON_KEY_SECRET", keys["HUB_B_PERSON_KEY"])
        mp.setenv("HUB_NATIONAL_KEY_SECRET", keys["HUB_B_NATIONAL_KEY"])
        for k, v in _env_for("B", servers, campus_b, single_var / "inbox").items():
            mp.setenv(k, v)
        alone = Settings.from_env({**os.environ, "HUB_VAR_DIR": str(single_var),
                                   "HUB_SOURCES_FILE": str(folder / "b.yaml")})
        job = _national_job(build_definitions(alone, None))
        assert job.partitions_def is None
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert result.success
    assert _national(single_var / "published") == multi[B], "college B differs from the same campus run alone"


# ------------------------------------------------------------------------------------------ inbox sensor


def test_inbox_sensor_watches_each_college_inbox_and_launches_its_partition(tmp_path, campus_dir, monkeypatch):
    """Many colleges: party_inbox_sensor looks at every college's inbox (its own sources.yaml) and launches
    that college's partition of inbox_load_job; the run key and the cursor are per college, and a run of one
    college's partition in flight holds back that college's files only. Real files, a real instance."""
    import json

    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from hub.factory import build_definitions

    folder = tmp_path / "conf"
    folder.mkdir()
    _sources_for("A", folder / "a.yaml")
    _sources_for("B", folder / "b.yaml")
    path = _colleges_yaml(folder, [{"xxdm": A, "name": "A", "sources": "a.yaml"},
                                   {"xxdm": B, "name": "B", "sources": "b.yaml"}])
    inbox = {code: tmp_path / "inbox" / code for code in (A, B)}
    for code, prefix in ((A, "A"), (B, "B")):
        monkeypatch.setenv(f"HUB_{prefix}_INBOX_DIR", str(inbox[code]))
        inbox[code].mkdir(parents=True)
    settings = Settings.from_env({"HUB_VAR_DIR": str(tmp_path / "var")})
    defs = build_definitions(settings, load_colleges(path))
    sensor = defs.resolve_sensor_def("party_inbox_sensor")
    job = defs.resolve_job_def("inbox_load_job")
    assert job.partitions_def is not None and job.partitions_def.get_partition_keys() == [A, B]

    def tick(instance, cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx:
            data = sensor.evaluate_tick(ctx)
        return data.run_requests or [], data.skip_message, data.cursor

    with dg.instance_for_test() as instance:
        requests, skip, cursor = tick(instance, None)
        assert not requests and "no new files" in skip
        dropped_a = drop_party_exports(campus_dir, inbox[A])
        assert dropped_a
        requests, _, cursor = tick(instance, cursor)
        [req] = requests
        assert req.partition_key == A and req.tags["college"] == A and req.run_key.startswith(f"{A}:")
        assert req.tags["hub/files"] == str(len(dropped_a))
        assert set(json.loads(cursor)[A].values()) == {req.run_key} and not json.loads(cursor).get(B)
        requests, skip, cursor = tick(instance, cursor)
        assert not requests, "A's files were launched once; the next tick launches nothing"
        # the same files dropped for college B: B's own run, another run key
        drop_party_exports(campus_dir, inbox[B])
        requests, _, cursor = tick(instance, cursor)
        [req_b] = requests
        assert req_b.partition_key == B and req_b.run_key.startswith(f"{B}:")
        assert req_b.run_key.split(":")[1] == req.run_key.split(":")[1], "same files, same hash, other college"
        # a run of B's partition in progress holds back B's files; A's go ahead (fresh cursor: nothing launched yet)
        instance.add_run(DagsterRun(job_name="campus_main_job", run_id="b" * 32, status=DagsterRunStatus.STARTED,
                                    tags={"dagster/partition": B, "college": B}))
        requests, skip, _ = tick(instance, None)
        assert [r.partition_key for r in requests] == [A]


def test_each_college_run_spools_its_object_store_loads_in_its_own_folder(tmp_path):
    """With the raw zone on object storage a load spools its parts locally and sweeps its entity's
    uncommitted spool files first: one spool folder for all colleges let college B's load of an entity delete
    the parts college A's load of the same entity was uploading (benchmarks/colleges.py, two at a time)."""
    from hub.colleges import college_resources, partitions_def

    _sources_for("A", tmp_path / "a.yaml")
    _sources_for("B", tmp_path / "b.yaml")
    colleges = load_colleges(_colleges_yaml(tmp_path, [{"xxdm": A, "name": "A", "sources": "a.yaml"},
                                                       {"xxdm": B, "name": "B", "sources": "b.yaml"}]))
    spools = {}

    @dg.asset(partitions_def=partitions_def(colleges))
    def spool(context, campus_sources: CampusSourcesResource) -> None:
        spools[context.partition_key] = (campus_sources.raw_dir, campus_sources.spool_dir)

    for env in ({}, {"HUB_RAW_SPOOL_DIR": str(tmp_path / "spool")}):
        settings = Settings.from_env({"HUB_VAR_DIR": str(tmp_path / "var"), "HUB_RAW_DIR": "s3://bucket/hub", **env})
        resources = college_resources({"campus_sources": CampusSourcesResource(
            config_path=str(tmp_path / "a.yaml"), raw_dir=settings.raw_root_url, spool_dir=settings.raw_spool_dir)},
            colleges, settings)
        with dg.instance_for_test() as instance:
            for code in (A, B):
                assert dg.materialize([spool], partition_key=code, resources=resources, instance=instance).success
        assert spools[A][0] == f"s3://bucket/hub/xxdm={A}/raw"
        assert spools[A][1] != spools[B][1], "one spool folder per college"
        for code in (A, B):
            base = tmp_path / "spool" if env else colleges.paths(code, settings).var_dir
            assert Path(spools[code][1]).is_relative_to(base) and code in spools[code][1]
