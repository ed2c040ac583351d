"""Warehouse layer (group ``warehouse``): the canonical tables analysts and marts use.

A model whose inputs are what its last build read (the content versions of every table its SQL reads,
its SQL and macros, the bound settings, the person-key secret's digest) and whose tables still hold what
that build wrote is not built again: its asset materialises with the same data version and
``build_mode: skipped`` and the reason (pipelines/content.py). Date-dependent models, a full rebuild and a
model reading a table without a content version (raw, quality) are always built.
"""

import hashlib
import hmac
from pathlib import Path

import dagster as dg

from hub.resources import WAREHOUSE_POOL, IdentityResource, RunSettingsResource, WarehouseResource
from models.build import LAYERS, MART_MODELS, WAREHOUSE_MODELS, asset_of, build_warehouse
from models.incremental_facts import INCREMENTAL_FACTS, build_fact
from models.incremental_scd2 import INCREMENTAL_SCD2, build_scd2
from models.standards import bind_as_of, bind_mart_settings
from pipelines.as_of import AS_OF_KEY, DATE_DEPENDENT
from pipelines.asset_metadata import materialized_column_schema, table_metadata
from pipelines.common import OWNER, preview, record_check, table_rows
from pipelines.content import (
    current_run_id,
    data_version_of,
    file_digest,
    forget_content,
    inputs_fingerprint,
    record_content,
    remember_model,
    restore_content,
    unchanged_model,
)

# the warehouse models with an incremental build of their own, and that build
INCREMENTAL = {**{n: build_fact for n in INCREMENTAL_FACTS}, **{n: build_scd2 for n in INCREMENTAL_SCD2}}


def _definition(con, model, secret: str) -> dict:
    """What a model's output depends on besides its input tables: its SQL with the macros it calls, the
    model runner, the settings bound to the session (the mart settings), and the person-key secret (as a
    keyed digest, never the secret)."""
    variables = con.execute("SELECT coalesce(string_agg(name || '=' || CAST(value AS VARCHAR), ';' ORDER BY name), '') "
                            "FROM duckdb_variables()").fetchone()[0]
    return {"model": f"{model.layer}.{model.name}", "code": model.code_version,
            "runner": file_digest(Path(build_warehouse.__code__.co_filename)),
            "variables": hashlib.sha256(variables.encode("utf-8")).hexdigest(),
            "secret": hmac.new(secret.encode("utf-8"), b"model inputs", hashlib.sha256).hexdigest()}


def _skipped(con, tables: list[tuple[str, str]], reason: str) -> dict[tuple[str, str], dict]:
    """A model not built: its tables as they are, the same data version, and why."""
    out = {}
    for (s, t), meta in record_content(con, tables, rebuilt=False).items():
        out[(s, t)] = {"dagster/row_count": table_rows(con, f"{s}.{t}"), "build_mode": "skipped",
                       "build_reason": reason, **meta}
    return out


def _warehouse_asset(name: str, layer: str = "warehouse") -> dg.AssetsDefinition:
    """A model's asset; a model whose script writes more tables of the model layers (dim_person:
    bridge_person_record and person_number) is a multi-asset with one spec per table."""
    model = LAYERS[layer][name]
    tables = [(layer, name), *sorted(model.creates - {(layer, name)})]
    own = {dg.AssetKey(list(t)) for t in tables}
    deps = sorted({dg.AssetKey(list(asset_of(s, t))) for s, t in model.reads} - own, key=str)
    if dg.AssetKey([layer, name]) in DATE_DEPENDENT:  # it reads the as-of date: rebuilt when that changes
        deps.append(AS_OF_KEY)

    def build(context, warehouse: WarehouseResource, identity: IdentityResource,
              run_settings: RunSettingsResource) -> dict[tuple[str, str], dict]:
        as_of = run_settings.as_of_date()  # the launchpad's run_settings.as_of (HUB_AS_OF); None: the data's
        with warehouse.connect() as con:
            if layer == "marts":  # as-of date and assessment standards, as session variables
                bind_mart_settings(con, as_of=as_of, standards_path=run_settings.standards_file)
            else:
                bind_as_of(con, as_of)  # the warehouse judges dates (a receipt overdue) against it too, never the clock
            run_id = current_run_id()
            incremental = {}
            if layer == "warehouse" and name in INCREMENTAL:
                # only what changed since the last build (models/incremental_facts.py, the party members'
                # SCD2 in models/incremental_scd2.py); full_rebuild: whole. Its own change log says whether
                # anything changed: not the generic skip below.
                inputs = None
                forget_content(con, tables)  # its content versions (pipelines/content.py) stand again once built
                stats = INCREMENTAL[name](con, name, secret=identity.person_key_secret, full=run_settings.full_rebuild)
                rows = stats["table_rows"]
                incremental = {
                    "build_mode": stats["mode"], "build_reason": stats["reason"],
                    "keys_touched": dg.MetadataValue.json(stats["keys_touched"] or {}),
                    "rows_deleted": stats["rows_deleted"] or 0, "rows_inserted": stats["rows_inserted"],
                    "issues_deleted": stats["issues_deleted"], "issues_inserted": stats["issues_inserted"]}
                if stats["mode"] == "skipped":
                    context.log.info(f"warehouse.{name}: skipped, {stats['reason']}")
                    restore_content(con, tables)  # nothing was written: the last version stands
            else:
                # what the build would read: the tables (content versions), its SQL and macros, the settings
                inputs = None if run_settings.full_rebuild or dg.AssetKey([layer, name]) in DATE_DEPENDENT else \
                    inputs_fingerprint(con, sorted(set(model.reads) - set(tables)),
                                       _definition(con, model, identity.person_key_secret), run_id)
                last = unchanged_model(con, f"{layer}.{name}", inputs, tables, run_id)
                if last is not None:  # the same inputs as its last build, which its tables still hold
                    context.log.info(f"{layer}.{name}: skipped, inputs unchanged since run {last}")
                    return _skipped(con, tables, f"inputs unchanged since run {last}")
                forget_content(con, tables)  # its content versions (pipelines/content.py) stand again once built
                rows = build_warehouse(con, name, secret=identity.person_key_secret, layer=layer)
            findings = dict(con.execute("SELECT kind, count(*) FROM quality.reconciliation_issue WHERE model = ? "
                                        "GROUP BY ALL ORDER BY 1", [name]).fetchall())
            out = {}
            for s, t in tables:
                out[(s, t)] = {"dagster/row_count": rows if (s, t) == (layer, name) else table_rows(con, f"{s}.{t}"),
                               "preview": preview(con, f"{s}.{t}"),
                               "dagster/column_schema": materialized_column_schema(con, s, t)}
            out[(layer, name)]["findings"] = dg.MetadataValue.json(findings)
            content = record_content(con, tables, rebuilt=incremental.get("build_mode") != "skipped")
            for table, meta in content.items():  # data version, content_changed
                out[table].update(meta, build_mode="full", build_reason="inputs changed" if inputs else
                                  "full rebuild requested, date-dependent, or an input without a content version")
            out[(layer, name)] |= incremental
            remember_model(con, f"{layer}.{name}", inputs, content, run_id)
        return out

    if len(tables) == 1:
        @dg.asset(
            key=[layer, name], group_name=layer, kinds={"duckdb", "sql"}, owners=[OWNER],
            pool=WAREHOUSE_POOL, tags={"layer": layer}, description=model.description, deps=deps,
            code_version=model.code_version, metadata=table_metadata(layer, name),
        )
        def _build(context: dg.AssetExecutionContext, warehouse: WarehouseResource, identity: IdentityResource,
                   run_settings: RunSettingsResource) -> dg.MaterializeResult:
            metadata = build(context, warehouse, identity, run_settings)[(layer, name)]
            return dg.MaterializeResult(metadata=metadata, data_version=data_version_of(metadata))

        return _build

    specs = [dg.AssetSpec(
        key=[s, t], group_name=layer, kinds={"duckdb", "sql"}, owners=[OWNER], tags={"layer": layer}, deps=deps,
        description=model.description if (s, t) == (layer, name) else
        f"{s}.{t}, built by models/sql/{layer}/{name}.sql in one transaction with {layer}.{name}: "
        f"{model.description}",
        code_version=model.code_version, metadata=table_metadata(s, t)) for s, t in tables]

    @dg.multi_asset(name=f"{layer}__{name}", specs=specs, pool=WAREHOUSE_POOL)
    def _build_many(context: dg.AssetExecutionContext, warehouse: WarehouseResource, identity: IdentityResource,
                    run_settings: RunSettingsResource):
        for (s, t), metadata in build(context, warehouse, identity, run_settings).items():
            yield dg.MaterializeResult(asset_key=[s, t], metadata=metadata, data_version=data_version_of(metadata))

    return _build_many


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
