"""Raw layer: one asset per source entity declared in sources.yaml (group ``raw``), downstream of its campus
system, an external asset (group ``sources``, key ``source/<name>``) that Dagster shows but never materialises.

Each materialisation runs one load (one per new file for file drops) through the connectors into
the raw zone, and reports rows, bytes, retries, cursor and encoding. A row-conservation check follows.
"""


import dagster as dg

from connectors import Entity, LoadResult, Source, SourceError, load_entity
from connectors.raw_zone import q
from connectors.redact import redact, redact_value, register_source_secrets
from hub.resources import WAREHOUSE_POOL, CampusSourcesResource, WarehouseResource
from pipelines.common import record_check, table_rows

KIND_TAG = {"rest": "rest", "sql": "sql", "files": "file"}


def raw_key(entity: Entity) -> dg.AssetKey:
    return dg.AssetKey(["raw", entity.table])


def source_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["source", source.name])


def source_specs(sources: dict[str, Source]) -> list[dg.AssetSpec]:
    """The campus systems as external assets: one per source of sources.yaml, with its kind (rest, sql or
    files), description and owner, upstream of its raw assets. They have no materialisation function, so no
    job runs them (an asset job keeps only executable assets). No endpoint, URL or credential is shown: those
    come from the environment when a load runs."""
    return [dg.AssetSpec(
        key=source_key(s), group_name="sources", kinds={s.kind}, owners=[s.owner],
        description=s.description or f"The campus system {s.name} ({s.kind}).",
        tags={"layer": "source", "source": s.name},
        metadata={"entities": dg.MetadataValue.json(sorted(s.entities)),
                  "declared_in": "sources.yaml"}) for s in sources.values()]


def _summarise(results: list[LoadResult]) -> dict:
    ok = [r for r in results if r.status == "ok"]
    total = {k: sum(getattr(r, k) for r in ok) for k in
             ("rows_read", "rows_landed", "rows_skipped", "rows_rejected", "pages", "files", "retries", "bytes")}
    last = ok[-1] if ok else None
    return {**total,
            "loads": [r.load_id for r in ok],
            "files_rejected": [r.message for r in results if r.status == "rejected"],
            "notes": [r.message for r in ok if r.message],
            "files_skipped": sum(1 for r in results if r.status == "skipped"),
            "cursor_before": results[0].cursor_before if results else None,
            "cursor_after": last.cursor_after if last else None,
            "encoding": sorted({r.encoding for r in ok if r.encoding}),
            "new_columns": sorted({c for r in ok for c in r.new_columns}),
            "type_changes": sorted({c for r in ok for c in r.type_changes})}


def nothing_new(summary: dict) -> bool:
    """A load brought nothing new: no row landed or quarantined, no file set aside, no schema change."""
    return not (summary["rows_landed"] or summary["rows_rejected"] or summary["files_rejected"]
                or summary["new_columns"] or summary["type_changes"])


def downstream_in_run(context: dg.AssetExecutionContext) -> bool:
    """Whether the run also builds something downstream of this raw asset.

    Dagster skips a step when ANY of its inputs was not produced, but a model must be rebuilt when ANY of
    its inputs changed; and a blocking check whose asset produced nothing is skipped, which lets the steps
    after it run ungated. In a run that builds raw and downstream together (campus_main_job launched whole,
    or a selection that spans the layers) an unchanged raw table therefore still materialises, so that its
    checks run and gate what the run builds on it. Runs that load raw only (the inbox sensor, the
    daily schedule, the first phase of ``pipelines.incremental``) skip it, and the automation conditions
    or the second phase rebuild only what is downstream of the tables that changed.
    """
    # None or empty: the whole job (execute_in_process records an empty frozenset)
    selection = context.run.asset_selection or context.job_def.asset_layer.executable_asset_keys
    return any(k.path[0] not in ("raw", "settings") for k in selection)


def _progress_log(context: dg.AssetExecutionContext, entity: Entity, every: float = 30.0):
    """Rows and pages read so far, in the run's log at most every ``every`` seconds: a slow source shows."""
    import time

    last = [time.monotonic()]

    def log(rows: int, pages: int, files: int) -> None:
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            context.log.info(f"{entity.source}.{entity.name}: {files or pages:,} {'file' if files else 'page'}(s), "
                             f"{rows:,} rows read so far")

    return log


def _raw_asset(source: Source, entity: Entity) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_key(entity),
        group_name="raw",
        description=f"{source.description} — `{entity.name}` as received (text), with load metadata "
                    f"on every row. Primary key: {', '.join(entity.primary_key)}.",
        kinds={"duckdb", "parquet", KIND_TAG[source.kind]},
        owners=[source.owner],
        tags={"layer": "raw", "source": source.name},
        pool=WAREHOUSE_POOL,
        metadata={"dagster/table_name": f"raw.{entity.table}"},
        deps=[source_key(source)],
        output_required=False,  # a load that brings nothing new does not materialise (see nothing_new)
    )
    def _load(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              campus_sources: CampusSourcesResource):
        live = campus_sources.load()[source.name]  # re-read at run time: the file may have changed
        register_source_secrets([live])  # its token, key or password never reaches the event log
        try:  # the warehouse is opened to read the cursor and to land, not while the source is read
            results = load_entity(warehouse.connect, campus_sources.raw_dir, live, live.entities[entity.name],
                                  landing_memory=campus_sources.landing_memory,
                                  progress=_progress_log(context, entity),
                                  spool_dir=campus_sources.spool_dir or None)
        except SourceError as exc:
            raise dg.Failure(description=redact(exc)) from None
        except Exception as exc:  # anything unforeseen: its text may hold a URL with a password
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise dg.Failure(description=redact(f"{source.name}.{entity.name}: {type(exc).__name__}: "
                                                f"{first}")) from None
        with warehouse.connect() as con:
            rows_total = table_rows(con, f"raw.{q(entity.table)}") if con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema='raw' AND table_name=?",
                [entity.table]).fetchone()[0] else 0
        s = _summarise(results)
        for msg in s["files_rejected"]:
            context.log.warning(redact(f"file set aside: {msg}"))
        for msg in s["notes"]:  # e.g. a table too wide for the landing memory limit
            context.log.warning(redact(f"raw.{entity.table}: {msg}"))
        if s["new_columns"]:
            context.log.warning(f"schema drift: new column(s) {s['new_columns']} added to raw.{entity.table}")
        if s["type_changes"]:
            context.log.warning(f"schema drift: {entity.source}.{entity.name} changed type: {s['type_changes']} "
                                "(kept as text, not coerced)")
        if nothing_new(s) and not downstream_in_run(context):
            # No materialisation: the run skips what is built on this table (and its checks), and the
            # automation conditions see no update, so nothing downstream is rebuilt for it.
            context.log.info(f"raw.{entity.table}: skipped, nothing new at the source ({s['rows_read']:,} rows "
                             f"read, {s['rows_skipped']:,} already loaded, {s['files_skipped']} file(s) already "
                             "loaded); not materialised, so nothing downstream is rebuilt for it")
            return
        yield dg.MaterializeResult(metadata=redact_value({
            "dagster/row_count": rows_total,
            "rows_read": s["rows_read"], "rows_landed": s["rows_landed"], "rows_skipped": s["rows_skipped"],
            "rows_rejected": s["rows_rejected"], "pages": s["pages"], "files": s["files"],
            "files_rejected": len(s["files_rejected"]), "files_skipped": s["files_skipped"], "retries": s["retries"], "bytes": s["bytes"],
            "cursor_before": str(s["cursor_before"]), "cursor_after": str(s["cursor_after"]),
            "encoding": ", ".join(s["encoding"]) or "n/a",
            "new_columns": ", ".join(s["new_columns"]) or "none",
            "type_changes": ", ".join(s["type_changes"]) or "none",
            "load_ids": dg.MetadataValue.json(s["loads"]),
        }))

    return _load


def _conservation_check(entity: Entity) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=raw_key(entity), name="row_conservation", blocking=True, pool=WAREHOUSE_POOL,
                    description="Every row read is landed, skipped as already loaded, or quarantined: "
                                "rows_read = rows_landed + rows_skipped + rows_rejected for every load, and "
                                "every rejected row is in quality.quarantine.")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            bad = con.execute("""
                SELECT a.load_id, a.rows_read, a.rows_landed, a.rows_skipped, a.rows_rejected,
                       (SELECT count(*) FROM quality.quarantine qq WHERE qq.load_id = a.load_id) AS quarantined
                FROM quality.load_audit a
                WHERE a.source = ? AND a.entity = ? AND a.status = 'ok'
                  AND (a.rows_read <> a.rows_landed + a.rows_skipped + a.rows_rejected
                       OR a.rows_rejected <> (SELECT count(*) FROM quality.quarantine qq
                                              WHERE qq.load_id = a.load_id AND qq.stage = 'raw'))""",
                              [entity.source, entity.name]).fetchall()
            loads = con.execute("SELECT count(*) FROM quality.load_audit WHERE source = ? AND entity = ?",
                                [entity.source, entity.name]).fetchone()[0]
            record_check(con, check_name="row_conservation", asset=f"raw/{entity.table}", engine="sql",
                         severity="error", passed=not bad, evaluated=loads, unexpected=len(bad),
                         detail=[list(map(str, r)) for r in bad[:20]], run_id=context.run.run_id)
        return dg.AssetCheckResult(passed=not bad, metadata={
            "loads_checked": loads, "loads_failing": len(bad),
            "failing": dg.MetadataValue.json([list(map(str, r)) for r in bad[:20]])})

    return _check


def build_raw(sources: dict[str, Source]) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    entities = [(s, e) for s in sources.values() for e in s.entities.values()]
    return [_raw_asset(s, e) for s, e in entities], [_conservation_check(e) for _, e in entities]
