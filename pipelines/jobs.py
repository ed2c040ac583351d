"""Jobs, schedules and sensors."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from connectors import Source
from connectors.files import FileExtractor
from hub.resources import CampusSourcesResource, WarehouseResource
from pipelines.as_of import AS_OF_KEY
from pipelines.raw import raw_key

# The main job: every asset, raw to publish. Runs in one process (in_process executor, set on the
# Definitions) so a run pays Dagster's start-up once; the warehouse pool still serialises writers
# across concurrent runs.
campus_main_job = dg.define_asset_job(
    "campus_main_job", selection=dg.AssetSelection.all(),
    description="Pull every campus source into the raw zone, rebuild staging and the warehouse, publish.",
)


def _raw_selection(sources: dict[str, Source], kinds: set[str]) -> dg.AssetSelection:
    keys = [raw_key(e) for s in sources.values() if s.kind in kinds for e in s.entities.values()]
    return dg.AssetSelection.assets(*keys)


def build_automation(sources: dict[str, Source], assets: list[dg.AssetsDefinition]) -> tuple[list, list, list]:
    """Jobs, schedules and sensors that depend on which sources are declared."""
    # Both load raw tables (and settings/as_of) only: the hub_automation sensor rebuilds what is downstream
    # of the tables that changed, in one run for all the loads of a tick (pipelines/automation.py).
    api_sql_job = dg.define_asset_job(
        "api_sql_refresh_job", selection=_raw_selection(sources, {"rest", "sql"}) | dg.AssetSelection.assets(AS_OF_KEY),
        description="Refresh the API and database sources into the raw zone; the hub_automation sensor rebuilds "
                    "what is built on the tables that changed.")
    inbox_job = dg.define_asset_job(
        "inbox_load_job", selection=_raw_selection(sources, {"files"}) | dg.AssetSelection.assets(AS_OF_KEY),
        description="Load newly dropped files into the raw zone (launched by the inbox sensor); the "
                    "hub_automation sensor rebuilds what is built on them.")
    daily = dg.ScheduleDefinition(
        name="daily_api_sql_refresh", job=api_sql_job, cron_schedule="0 2 * * *",
        execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.STOPPED,
        description="02:00 every day: pull the API and SQL sources (incremental) into the raw zone; the "
                    "hub_automation sensor rebuilds downstream.")
    file_sources = {name: s for name, s in sources.items() if s.kind == "files"}
    return [campus_main_job, api_sql_job, inbox_job], [daily], [_inbox_sensor(file_sources, inbox_job)]


IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def _loaded_hashes(warehouse: WarehouseResource) -> set[str] | None:
    """sha256 of every file already loaded (meta.loaded_file); None while the warehouse cannot be read.

    A run that is writing holds DuckDB's file lock; then the analyst snapshot (a copy taken after each
    run) is read instead: it may lack the newest files, which only means a later tick decides for them.
    """
    import duckdb

    from hub.warehouse import open_warehouse

    for path in (warehouse.path, warehouse.snapshot_path):
        if not path:
            continue
        if not Path(path).exists():
            if path == warehouse.path:
                return set()  # no warehouse yet: nothing loaded
            continue
        try:
            with open_warehouse(path, read_only=True) as con:
                return {r[0] for r in con.execute("SELECT sha256 FROM meta.loaded_file").fetchall()}
        except duckdb.Error:
            continue
    return None


def _tables_in_flight(instance, file_tables: dict[str, dg.AssetKey], partition: str | None = None) -> set[str]:
    """File entities that a queued or running run is about to load (or is loading); with ``partition`` (a
    college's 学校代码), only that college's runs count: another college's run loads other files."""
    busy: set[str] = set()
    statuses = [dg.DagsterRunStatus[s] for s in IN_FLIGHT]
    tags = {"dagster/partition": partition} if partition is not None else None
    for run in instance.get_runs(dg.RunsFilter(statuses=statuses, tags=tags)):
        if run.asset_selection is None:  # the whole job: the main job and the inbox job load every file entity
            if run.job_name != "api_sql_refresh_job":
                busy |= set(file_tables)
            continue
        busy |= {t for t, key in file_tables.items() if key in run.asset_selection}
    return busy


def _new_files(file_sources: dict[str, Source], live: dict[str, Source], loaded: set[str],
               launched: dict[str, str], busy: set[str]) -> tuple[dict[str, list[str]], dict[str, str], set[str]]:
    """The inbox files to load, by entity table; the cursor without the files that have left the inbox; the
    tables whose new files wait for a run in progress."""
    new: dict[str, list[str]] = {}
    waiting: set[str] = set()
    pending: set[str] = set()
    for name in file_sources:
        source = live[name]
        for entity in source.entities.values():
            for item in FileExtractor(source, entity).pending():
                pending.add(item.sha256)
                if item.sha256 in loaded or item.sha256 in launched:
                    continue
                if entity.table in busy:
                    waiting.add(entity.table)
                    continue
                new.setdefault(entity.table, []).append(item.sha256)
    # forget launched files that have left the inbox (archived or set aside): the cursor stays small
    return new, {sha: run for sha, run in launched.items() if sha in pending}, waiting


def _skip_reason(waiting: set[str]) -> str:
    return f"files for {', '.join(sorted(waiting))} wait for the run in progress" if waiting else \
        "no new files in the inbox (files already loaded launch nothing)"


def _inbox_sensor(file_sources: dict[str, Source], job) -> dg.SensorDefinition:
    file_tables = {e.table: raw_key(e) for s in file_sources.values() for e in s.entities.values()}

    @dg.sensor(
        name="party_inbox_sensor", job=job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the file-drop inboxes. Files already loaded (same sha256) launch nothing; the new "
                    "files of one tick launch ONE run that loads the entities they touch into the raw zone (the "
                    "hub_automation sensor then rebuilds what is built on them, coalescing several drops); an "
                    "entity with a run queued or in progress waits for a later tick.",
    )
    def _sensor(context: dg.SensorEvaluationContext, campus_sources: CampusSourcesResource,
                warehouse: WarehouseResource):
        from hub.recovery import recover_dead_runs

        # a dead run would count as "in progress" forever: clear it first (hub/recovery.py)
        for item in recover_dead_runs(context.instance, by="party_inbox_sensor"):
            context.log.warning(item.line())
        loaded = _loaded_hashes(warehouse)
        if loaded is None:
            return dg.SkipReason("the warehouse and its snapshot cannot be read now; looking again next tick")
        launched = json.loads(context.cursor) if context.cursor else {}
        busy = _tables_in_flight(context.instance, file_tables)
        new, cursor, waiting = _new_files(file_sources, campus_sources.load(), loaded, launched, busy)
        if not new:
            context.update_cursor(json.dumps(cursor, sort_keys=True))
            return dg.SkipReason(_skip_reason(waiting))
        shas = sorted(sha for files in new.values() for sha in files)
        run_key = hashlib.sha256("\n".join(shas).encode()).hexdigest()
        cursor.update({sha: run_key for sha in shas})
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        selection = sorted({file_tables[table] for table in new}, key=lambda k: k.to_user_string()) + [AS_OF_KEY]
        return [dg.RunRequest(run_key=run_key, asset_selection=selection,
                              tags={"hub/entities": ",".join(sorted(new)), "hub/files": str(len(shas))})]

    return _sensor


def college_inbox_sensor(file_sources: dict[str, Source], job, colleges, settings) -> dg.SensorDefinition:
    """Many colleges (hub/colleges.py): the same sensor, watching each college's inbox (its sources.yaml)
    against its own warehouse, and launching that college's partition of ``job``. The run key starts with
    the college's 学校代码 (two colleges dropping the same file each load it); the cursor keeps the launched
    files per college; a college's run in flight holds back only that college's files."""
    from hub.instance import college_tags
    from hub.recovery import recover_dead_runs

    file_tables = {e.table: raw_key(e) for s in file_sources.values() for e in s.entities.values()}

    @dg.sensor(
        name="party_inbox_sensor", job=job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Watches every college's file-drop inboxes ({colleges.file.name}). A college's new files "
                    "launch ONE run of its partition loading the entities they touch; files already loaded in its "
                    "warehouse launch nothing; its entities with a run of its partition queued or in progress wait.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        from connectors import load_sources

        for item in recover_dead_runs(context.instance, by="party_inbox_sensor"):
            context.log.warning(item.line())
        state = json.loads(context.cursor) if context.cursor else {}
        requests, skipped = [], []
        for college in colleges.colleges:
            xxdm = college.xxdm
            paths = colleges.paths(xxdm, settings)
            launched = state.get(xxdm, {})
            loaded = _loaded_hashes(WarehouseResource(path=str(paths.warehouse_path),
                                                      snapshot_path=str(paths.snapshot_path)))
            if loaded is None:
                skipped.append(f"{xxdm}: its warehouse and snapshot cannot be read now")
                continue
            busy = _tables_in_flight(context.instance, file_tables, partition=xxdm)
            new, state[xxdm], waiting = _new_files(file_sources, load_sources(paths.sources_file), loaded,
                                                   launched, busy)
            if not new:
                skipped.append(f"{xxdm}: {_skip_reason(waiting)}")
                continue
            shas = sorted(sha for files in new.values() for sha in files)
            run_key = f"{xxdm}:" + hashlib.sha256("\n".join(shas).encode()).hexdigest()
            state[xxdm].update({sha: run_key for sha in shas})
            selection = sorted({file_tables[t] for t in new}, key=lambda k: k.to_user_string()) + [AS_OF_KEY]
            requests.append(dg.RunRequest(run_key=run_key, partition_key=xxdm, asset_selection=selection,
                                          tags={**college_tags(xxdm), "hub/entities": ",".join(sorted(new)),
                                                "hub/files": str(len(shas))}))
        context.update_cursor(json.dumps(state, sort_keys=True))
        return requests or dg.SkipReason("; ".join(skipped))

    return _sensor
