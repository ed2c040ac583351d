"""Staging layer (group ``staging``): code sets, then one normalised model per source entity."""


import dagster as dg

from hub.resources import WAREHOUSE_POOL, RunSettingsResource, WarehouseResource
from models.build import STAGING_MODELS, build_staging, load_code_sets, model_of
from models.incremental import INCREMENTAL_STAGING, build_staging_incremental
from models.row_rules import conservation
from pipelines.asset_metadata import materialized_column_schema, table_metadata
from pipelines.common import OWNER, preview, record_check
from pipelines.content import data_version_of, forget_content, record_content

CODE_SETS_KEY = dg.AssetKey(["staging", "code_sets"])


@dg.asset(
    key=CODE_SETS_KEY, group_name="staging", kinds={"duckdb", "csv"}, owners=[OWNER], pool=WAREHOUSE_POOL,
    tags={"layer": "staging"},
    description="Code sets (GB/T 2261.1, GB/T 4762, GB 3304, GB/T 4658, GB/T 8561, GB/T 2260 area codes, staff "
                "category and status, party stages, dues rates, grade words and points), field-level "
                "survivorship priorities and per-source value mappings (map_*.csv), from models/codesets.",
)
def code_sets(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        counts = load_code_sets(con)
    return dg.MaterializeResult(metadata={"tables": dg.MetadataValue.json(counts),
                                          "dagster/row_count": sum(counts.values())})


class StagingBuildConfig(dg.Config):
    full_rebuild: bool = False  # rebuild from every raw load even where the model is incremental


def _staging_asset(name: str) -> dg.AssetsDefinition:
    model = STAGING_MODELS[name]
    if name in INCREMENTAL_STAGING:
        return _incremental_staging_asset(name)

    @dg.asset(
        key=["staging", name], group_name="staging", kinds={"duckdb", "sql"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, tags={"layer": "staging", "source": model.source},
        code_version=model.code_version, metadata=table_metadata("staging", name),
        deps=[dg.AssetKey(["raw", model.raw_table]), CODE_SETS_KEY,
              *sorted({dg.AssetKey(list(model_of(layer, dep))) for layer, dep in model.reads}, key=str)],
        description=f"{model.description} Rows failing row-level rules (duplicate or conflicting copies, "
                    "missing required values, wrong shapes, unmapped codes, unparseable values) go to "
                    "quality.quarantine with the reason; older versions of a key in one load go to "
                    "quality.superseded.",
    )
    def _build(warehouse: WarehouseResource, run_settings: RunSettingsResource) -> dg.MaterializeResult:
        # the run's plausibility checks and as-of date (past_date), from the run_settings resource
        checks, as_of = run_settings.plausibility_checks(), run_settings.configured_as_of()
        with warehouse.connect() as con:
            forget_content(con, [("staging", name)])
            stats = build_staging(con, name, checks=checks, as_of=as_of)
            pv = preview(con, f"staging.{name}")
            schema = materialized_column_schema(con, "staging", name)
            content = record_content(con, [("staging", name)])[("staging", name)]  # data version (pipelines/content.py)
        return dg.MaterializeResult(data_version=data_version_of(content), metadata={
            "dagster/row_count": stats["rows_accepted"], "rows_in": stats["rows_in"],
            "rows_rejected": stats["rows_rejected"], "rows_superseded": stats["rows_superseded"],
            "rejected_by_rule": dg.MetadataValue.json(stats["rejected_by_rule"]), "preview": pv,
            "dagster/column_schema": schema, **content})

    return _build


def _conservation_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey(["staging", name]), name="rows_conserved", blocking=True,
                    pool=WAREHOUSE_POOL,
                    description="Every latest raw version of the entity is staged, quarantined or superseded: "
                                "latest raw versions = staged + quarantined + superseded.")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            c = conservation(con, STAGING_MODELS[name])
            accounted = c["staged"] + c["quarantined"] + c["superseded"]
            passed = c["latest_raw_versions"] == accounted
            record_check(con, check_name="rows_conserved", asset=f"staging/{name}", engine="sql",
                         severity="error", passed=passed, evaluated=c["latest_raw_versions"],
                         unexpected=abs(c["latest_raw_versions"] - accounted), detail=c, run_id=context.run.run_id)
        return dg.AssetCheckResult(passed=passed, metadata={**c, "difference": c["latest_raw_versions"] - accounted})

    return _check


def _incremental_staging_asset(name: str) -> dg.AssetsDefinition:
    """A key-local staging model that takes in only the raw loads new since its last build
    (models/incremental.py); ``full_rebuild`` (the asset's config, or run_settings.full_rebuild, which
    HUB_FULL_REBUILD=1 sets) rebuilds it whole."""
    model = STAGING_MODELS[name]

    @dg.asset(
        key=["staging", name], group_name="staging", kinds={"duckdb", "sql"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, tags={"layer": "staging", "source": model.source, "build": "incremental"},
        code_version=model.code_version, metadata=table_metadata("staging", name),
        deps=[dg.AssetKey(["raw", model.raw_table]), CODE_SETS_KEY,
              *sorted({dg.AssetKey(list(model_of(layer, dep))) for layer, dep in model.reads}, key=str)],
        description=f"{model.description} Rows failing row-level rules (duplicate or conflicting copies, "
                    "missing required values, wrong shapes, unmapped codes, unparseable values) go to "
                    "quality.quarantine with the reason; older versions of a key in one load go to "
                    "quality.superseded. Incremental: "
                    "only the keys in raw loads new since the last build are recomputed (build_mode in the "
                    "metadata says full, incremental or skipped, and why).",
    )
    def _build(config: StagingBuildConfig, warehouse: WarehouseResource,
               run_settings: RunSettingsResource) -> dg.MaterializeResult:
        checks, as_of = run_settings.plausibility_checks(), run_settings.configured_as_of()
        with warehouse.connect() as con:
            forget_content(con, [("staging", name)])
            stats = build_staging_incremental(con, name, full=config.full_rebuild or run_settings.full_rebuild,
                                              checks=checks, as_of=as_of)
            pv = preview(con, f"staging.{name}")
            rows = con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0]
            schema = materialized_column_schema(con, "staging", name)
            # the data version is the content's (pipelines/content.py): a skipped or no-op build keeps it
            content = record_content(con, [("staging", name)], rebuilt=stats["mode"] != "skipped")[("staging", name)]
        return dg.MaterializeResult(data_version=data_version_of(content), metadata={**content,
            "dagster/row_count": rows, "build_mode": stats["mode"], "build_reason": stats["reason"],
            "loads_processed": stats["loads_processed"], "keys_touched": stats["keys_touched"] or 0,
            "rows_in": stats["rows_in"], "rows_rejected": stats["rows_rejected"],
            "rows_superseded": stats["rows_superseded"],
            "rejected_by_rule": dg.MetadataValue.json(stats["rejected_by_rule"]), "preview": pv,
            "dagster/column_schema": schema})

    return _build


staging_assets = [code_sets, *(_staging_asset(n) for n in STAGING_MODELS)]
staging_checks = [_conservation_check(n) for n in STAGING_MODELS]
