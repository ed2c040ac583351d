"""Warehouse layer (group ``warehouse``): the canonical tables analysts and marts use."""


import dagster as dg

from hub.resources import WAREHOUSE_POOL, IdentityResource, WarehouseResource
from models.build import LAYERS, MART_MODELS, WAREHOUSE_MODELS, build_warehouse, model_of
from models.standards import bind_as_of, bind_mart_settings
from pipelines.asset_metadata import materialized_column_schema, table_metadata
from pipelines.common import OWNER, preview, record_check


def _warehouse_asset(name: str, layer: str = "warehouse") -> dg.AssetsDefinition:
    model = LAYERS[layer][name]

    @dg.asset(
        key=[layer, name], group_name=layer, kinds={"duckdb", "sql"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, tags={"layer": layer}, description=model.description,
        deps=sorted({dg.AssetKey(list(model_of(layer, dep))) for layer, dep in model.reads}, key=str),
        code_version=model.code_version, metadata=table_metadata(layer, name),
    )
    def _build(warehouse: WarehouseResource, identity: IdentityResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            if layer == "marts":
                bind_mart_settings(con)  # as-of date and assessment standards, as session variables
            else:
                bind_as_of(con)  # the warehouse judges dates (a receipt overdue) against it too, never the clock
            rows = build_warehouse(con, name, secret=identity.person_key_secret, layer=layer)
            pv = preview(con, f"{layer}.{name}")
            schema = materialized_column_schema(con, layer, name)
            findings = dict(con.execute("SELECT kind, count(*) FROM quality.reconciliation_issue WHERE model = ? "
                                        "GROUP BY ALL ORDER BY 1", [name]).fetchall())
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "preview": pv, "dagster/column_schema": schema,
                                              "findings": dg.MetadataValue.json(findings)})

    return _build


@dg.asset_check(asset=dg.AssetKey(["warehouse", "dim_person"]), name="one_row_per_person", blocking=True,
                pool=WAREHOUSE_POOL,
                description="person_key is unique and never null; an ID number belongs to one person only.")
def dim_person_unique(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        rows, keys, null_keys, with_id, ids, no_id = con.execute(
            "SELECT count(*), count(DISTINCT person_key), count(*) FILTER (WHERE person_key IS NULL), "
            "count(id_number), count(DISTINCT id_number), count(*) FILTER (WHERE NOT has_valid_id) "
            "FROM warehouse.dim_person").fetchone()
        passed = rows == keys and null_keys == 0 and with_id == ids
        record_check(con, check_name="one_row_per_person", asset="warehouse/dim_person", engine="sql",
                     severity="error", passed=passed, evaluated=rows, unexpected=(rows - keys) + null_keys,
                     run_id=context.run.run_id)
    return dg.AssetCheckResult(passed=passed, metadata={
        "rows": rows, "distinct_keys": keys, "null_keys": null_keys, "ids": with_id, "distinct_ids": ids,
        "persons_without_valid_id": no_id})


warehouse_assets = [_warehouse_asset(n) for n in WAREHOUSE_MODELS]
mart_assets = [_warehouse_asset(n, "marts") for n in MART_MODELS]
warehouse_checks = [dim_person_unique]
