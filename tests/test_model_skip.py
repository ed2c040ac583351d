"""A model whose inputs did not change is not built again (pipelines/warehouse.py, pipelines/content.py;
issue #17): on a copy of the campus warehouse, through Dagster on one instance, the real model assets of
``warehouse/dim_party_org`` (a multi-asset with ``warehouse/member_group``) and ``marts/mart_org_tree``.

The second run with nothing changed skips both, says why and keeps their data versions; a changed input row
rebuilds the model and the mart after it, with the new row in the tables; a table changed by hand since its
build is rebuilt (its content no longer what the build wrote); a full rebuild builds whatever it is.
"""

from __future__ import annotations

import dagster as dg
import pytest

from hub.warehouse import connect

ORGS = dg.AssetKey(["warehouse", "dim_party_org"])
TREE = dg.AssetKey(["marts", "mart_org_tree"])


@pytest.fixture
def graph(tmp_path, copy_campus_warehouse):
    from hub.factory import build_definitions
    from hub.settings import Settings
    from pipelines.warehouse import mart_assets, warehouse_assets
    from tests.campus_graph import environment

    path = copy_campus_warehouse(tmp_path / "warehouse.duckdb")
    with connect(path) as con:  # the fixture's build remembered its models' inputs: start with no memory
        con.execute("DELETE FROM meta.model_inputs")
    env = {"HUB_WAREHOUSE": str(path), "HUB_VAR_DIR": str(tmp_path), "HUB_AS_OF": None}
    instance = dg.DagsterInstance.ephemeral()
    assets = [next(a for a in warehouse_assets if ORGS in a.keys), next(a for a in mart_assets if TREE in a.keys)]

    def run(full_rebuild: bool = False) -> dict[dg.AssetKey, dg.AssetMaterialization]:
        with environment(env):
            resources = dict(build_definitions(Settings.from_env()).resources)
            settings = resources["run_settings"]
            resources["run_settings"] = type(settings)(**{**{f: getattr(settings, f) for f in type(settings).model_fields},
                                                          "full_rebuild": full_rebuild})
            result = dg.materialize(assets, resources=resources, instance=instance)
        assert result.success
        return {e.asset_key: e.materialization for e in result.get_asset_materialization_events()}

    yield run, path
    instance.dispose()


def _mode(m: dg.AssetMaterialization) -> str:
    return m.metadata["build_mode"].value


def test_unchanged_inputs_skip_the_model_and_a_changed_row_rebuilds_it(graph):
    run, path = graph
    first = run()
    assert _mode(first[ORGS]) == "full" and _mode(first[TREE]) == "full"
    with connect(path) as con:
        before = con.execute("SELECT count(*) FROM marts.mart_org_tree").fetchone()[0]

    again = run()
    assert _mode(again[ORGS]) == "skipped" and _mode(again[TREE]) == "skipped", again
    assert "inputs unchanged since run" in again[ORGS].metadata["build_reason"].value
    assert again[ORGS].tags["dagster/data_version"] == first[ORGS].tags["dagster/data_version"]
    assert again[TREE].tags["dagster/data_version"] == first[TREE].tags["dagster/data_version"]

    # one branch renamed at the source: the dimension and the mart after it are built, with the new name
    with connect(path) as con:
        org = con.execute("SELECT org_code FROM staging.stg_party_orgs ORDER BY org_code LIMIT 1").fetchone()[0]
        for table in ("stg_party_orgs", "stg_party_orgs_history"):  # the register and its versions
            con.execute(f"UPDATE staging.{table} SET name = '改名后的党支部' WHERE org_code = ?", [org])
    changed = run()
    assert _mode(changed[ORGS]) == "full" and _mode(changed[TREE]) == "full"
    assert changed[ORGS].tags["dagster/data_version"] != first[ORGS].tags["dagster/data_version"]
    with connect(path) as con:
        assert con.execute("SELECT name FROM warehouse.dim_party_org WHERE org_code = ? AND is_current",
                           [org]).fetchone()[0] == "改名后的党支部"
        assert con.execute("SELECT count(*) FROM marts.mart_org_tree").fetchone()[0] == before


def test_a_table_changed_since_its_build_or_a_full_rebuild_builds_the_model(graph):
    run, path = graph
    run()
    with connect(path) as con:  # the mart's table edited by hand: not what its last build wrote
        con.execute("DELETE FROM marts.mart_org_tree WHERE rowid IN (SELECT min(rowid) FROM marts.mart_org_tree)")
    after_edit = run()
    assert _mode(after_edit[ORGS]) == "skipped" and _mode(after_edit[TREE]) == "full"
    full = run(full_rebuild=True)
    assert _mode(full[ORGS]) == "full" and _mode(full[TREE]) == "full"
