"""Versioned, atomic publishing: manifests, the catalog switch, no new version for the same content."""

import hashlib
import json

import duckdb
import pyarrow.dataset as pads
import pytest

from hub.publisher import Column, DatasetSpec, Publisher, PublishError, read_catalog

SPEC = DatasetSpec(
    name="orgs", description="test orgs", query="SELECT code, name FROM orgs", order_by="code",
    columns=(Column("code", "org code", "public"), Column("name", "org name", "public")), audience="public")


@pytest.fixture
def orgs(con):
    con.execute("CREATE TABLE orgs AS SELECT 'B' || i AS code, '支部' || i AS name FROM range(1000) t(i)")
    return con


def _current(root):
    entry = read_catalog(root)["datasets"]["orgs"]
    return entry, json.loads((root / entry["manifest"]).read_text(encoding="utf-8"))


def test_publish_writes_data_then_manifest_and_switches_catalog(tmp_path, orgs):
    root = tmp_path / "published"
    m = Publisher(root).publish(orgs, SPEC, lineage=["l1", "l1", "l2"], quality={"status": "passed"})
    entry, manifest = _current(root)
    assert m["changed"] and entry["current_version"] == manifest["version"] == m["version"]
    assert manifest["row_count"] == 1000 and manifest["lineage"] == {"load_ids": ["l1", "l2"]}
    assert [c["name"] for c in manifest["schema"]["columns"]] == ["code", "name"]
    folder = root / entry["manifest"].rsplit("/", 1)[0]
    for f in manifest["files"]:
        data = (folder / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    files = [str(folder / f["path"]) for f in manifest["files"]]
    back = duckdb.sql(f"SELECT * FROM read_parquet({files}) ORDER BY code").fetchall()
    assert back == orgs.execute("SELECT code, name FROM orgs ORDER BY code").fetchall()
    assert pads.dataset(folder / "data", format="parquet").count_rows() == 1000


def test_same_content_makes_no_new_version_and_changed_content_does(tmp_path, orgs):
    root = tmp_path / "published"
    pub = Publisher(root)
    first = pub.publish(orgs, SPEC, lineage=[], quality={})
    again = pub.publish(orgs, SPEC, lineage=[], quality={})
    assert not again["changed"] and again["version"] == first["version"]
    orgs.execute("UPDATE orgs SET name = '改名' WHERE code = 'B1'")  # one value in one row
    third = pub.publish(orgs, SPEC, lineage=[], quality={})
    assert third["changed"] and third["version"] != first["version"]
    assert _current(root)[0]["current_version"] == third["version"]


def test_failed_publish_leaves_previous_version_current(tmp_path, orgs):
    root = tmp_path / "published"
    pub = Publisher(root)
    first = pub.publish(orgs, SPEC, lineage=[], quality={})
    orgs.execute("UPDATE orgs SET name = 'x'")
    bad = DatasetSpec(**{**SPEC.__dict__, "order_by": "no_such_column"})
    with pytest.raises(duckdb.Error):
        pub.publish(orgs, bad, lineage=[], quality={})
    assert _current(root)[0]["current_version"] == first["version"]
    assert not list((root / "orgs").glob(".tmp-*")), "the partial version is cleaned up"


def test_old_versions_are_pruned_but_current_kept(tmp_path, orgs):
    root = tmp_path / "published"
    pub = Publisher(root, keep_versions=2)
    for i in range(4):
        orgs.execute(f"UPDATE orgs SET name = 'v{i}'")
        last = pub.publish(orgs, SPEC, lineage=[], quality={})
    versions = sorted(p.name for p in (root / "orgs").iterdir() if p.name.startswith("v"))
    assert len(versions) == 2 and versions[-1] == last["version"]


def test_restricted_column_refused_outside_restricted_audience(tmp_path, orgs):
    spec = DatasetSpec(**{**SPEC.__dict__, "columns": (Column("code", "c", "public"),
                                                        Column("name", "n", "restricted"))})
    with pytest.raises(PublishError, match="restricted column name"):
        Publisher(tmp_path).publish(orgs, spec, lineage=[], quality={})


def test_every_column_must_be_described(tmp_path, orgs):
    spec = DatasetSpec(**{**SPEC.__dict__, "columns": (Column("code", "c", "public"),)})
    with pytest.raises(PublishError, match="name"):
        Publisher(tmp_path).publish(orgs, spec, lineage=[], quality={})


def _org_warehouse(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS warehouse")
    con.execute("CREATE OR REPLACE TABLE warehouse.dim_party_org AS SELECT 'B1' AS org_code, '支部' AS name, "
                "'党支部' AS org_type, NULL AS parent_code, NULL AS parent_name, '教工' AS branch_kind, "
                "'101' AS unit_code, '张三' AS secretary_name, DATE '2020-01-01' AS founded_on, "
                "DATE '2023-01-01' AS elected_on, DATE '2026-01-01' AS term_end, 3 AS committee_size, "
                "5 AS full_members, 1 AS probationary_members, true AS is_current, 'active' AS status")


def test_publish_gate_reads_dagsters_check_storage_not_check_result(tmp_path, con):
    """The publish gate: the latest evaluation of a blocking check in the Dagster instance decides, against
    the current data of its table. quality.check_result is history and says the opposite here on purpose."""
    import dagster as dg

    from hub.resources import IdentityResource, PublisherResource, RunSettingsResource, WarehouseResource
    from hub.warehouse import connect
    from pipelines.common import record_check
    from pipelines.publish import publish_assets

    _org_warehouse(con)
    con.close()
    path = tmp_path / "warehouse.duckdb"
    orgs = dg.AssetKey(["warehouse", "dim_party_org"])
    outcome = {"passed": False, "severity": dg.AssetCheckSeverity.ERROR}

    @dg.asset(key=orgs)
    def dim_party_org() -> None:
        return None

    @dg.asset_check(asset=orgs, name="unique_keys", blocking=True)
    def unique_keys(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        c = connect(path)  # the history says the opposite of what Dagster is told
        record_check(c, check_name="unique_keys", asset="warehouse/dim_party_org", engine="sql", severity="error",
                     passed=not outcome["passed"], unexpected=0 if outcome["passed"] else 2, run_id=context.run.run_id)
        c.close()
        return dg.AssetCheckResult(passed=outcome["passed"], severity=outcome["severity"])

    publish = next(a for a in publish_assets if a.key.path[-1] == "party_organisations")
    assets = [dim_party_org, unique_keys, publish]
    resources = {"warehouse": WarehouseResource(path=str(path)),
                 "publisher": PublisherResource(root=str(tmp_path / "published")),
                 "identity": IdentityResource(person_key_secret="test-only-person-key-not-for-production"),
                 "run_settings": RunSettingsResource()}
    instance = dg.DagsterInstance.ephemeral()
    table_only = dg.AssetSelection.assets(orgs).without_checks()

    def run(selection):
        return dg.materialize(assets, selection=selection, resources=resources, instance=instance,
                              raise_on_error=False)

    # The publish step alone, as the UI launches a selection of a job: the gate sees the checks of the
    # whole job, not only of what the run selected.
    job = dg.Definitions(assets=assets, resources=resources).resolve_implicit_global_asset_job_def()

    def publish_alone():
        return job.execute_in_process(instance=instance, asset_selection=[publish.key], raise_on_error=False)

    def refusal() -> str:
        result = publish_alone()
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        return failure.step_failure_data.user_failure_data.description

    def published() -> int | None:
        catalog = tmp_path / "published" / "catalog.json"
        return read_catalog(tmp_path / "published")["datasets"]["party_organisations"]["row_count"] \
            if catalog.exists() else None

    # the table is there but its blocking check never evaluated it: not passed, held back
    assert run(table_only).success
    message = refusal()
    assert message.startswith("party_organisations not published: 1 blocking check(s) not passed")
    assert "warehouse/dim_party_org:unique_keys never evaluated" in message and published() is None

    # Dagster says failed (ERROR), check_result says passed: held back
    failed = run(dg.AssetSelection.checks(unique_keys)).get_asset_check_evaluations()
    assert [(e.passed, e.severity) for e in failed] == [(False, dg.AssetCheckSeverity.ERROR)]
    assert "warehouse/dim_party_org:unique_keys failed (ERROR)" in refusal() and published() is None

    # Dagster says passed, check_result says failed: published, the manifest lists what Dagster says
    outcome["passed"] = True
    assert run(dg.AssetSelection.checks(unique_keys)).success
    assert publish_alone().success and published() == 1
    entry = read_catalog(tmp_path / "published")["datasets"]["party_organisations"]
    manifest = json.loads((tmp_path / "published" / entry["manifest"]).read_text(encoding="utf-8"))
    assert manifest["quality"]["checks"] == ["warehouse/dim_party_org:unique_keys:passed:error"]
    assert manifest["quality"]["checks_from"] == "dagster check storage"

    # the table is rebuilt (two rows now) and the passed evaluation is of the old data: held back
    c = connect(path)
    c.execute("INSERT INTO warehouse.dim_party_org SELECT * REPLACE ('B2' AS org_code) FROM warehouse.dim_party_org")
    c.close()
    assert run(table_only).success
    assert "warehouse/dim_party_org:unique_keys not evaluated since its data last changed" in refusal()
    assert published() == 1, "the current version stays"

    # a failure of severity WARN does not block (as in Dagster itself); the new rows are published
    outcome.update(passed=False, severity=dg.AssetCheckSeverity.WARN)
    assert run(dg.AssetSelection.checks(unique_keys)).success
    assert publish_alone().success and published() == 2

    # and a failing blocking check in the same run: Dagster skips the publish step itself
    outcome.update(severity=dg.AssetCheckSeverity.ERROR)
    result = run(dg.AssetSelection.all())
    assert not result.success and publish.key not in {e.asset_key for e in result.get_asset_materialization_events()}
    assert "failed (ERROR)" in refusal() and published() == 2
