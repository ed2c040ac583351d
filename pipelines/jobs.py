"""Jobs, schedules and sensors."""

import json

import dagster as dg

from connectors import Source
from connectors.files import FileExtractor
from hub.resources import CampusSourcesResource
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
    api_sql_job = dg.define_asset_job(
        "api_sql_refresh_job", selection=_raw_selection(sources, {"rest", "sql"}).downstream(),
        description="Refresh the API and database sources and everything built on them.")
    inbox_job = dg.define_asset_job(
        "inbox_load_job", selection=_raw_selection(sources, {"files"}).downstream(),
        description="Load newly dropped files and rebuild what depends on them (launched by the inbox sensor).")
    daily = dg.ScheduleDefinition(
        name="daily_api_sql_refresh", job=api_sql_job, cron_schedule="0 2 * * *",
        execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.STOPPED,
        description="02:00 every day: pull the API and SQL sources (incremental) and rebuild downstream.")
    file_sources = {name: s for name, s in sources.items() if s.kind == "files"}
    downstream = {e.table: sorted(dg.AssetSelection.assets(raw_key(e)).downstream().resolve(assets), key=str)
                  for s in file_sources.values() for e in s.entities.values()}
    return [campus_main_job, api_sql_job, inbox_job], [daily], [_inbox_sensor(file_sources, inbox_job, downstream)]


def _inbox_sensor(file_sources: dict[str, Source], job, downstream: dict[str, list[dg.AssetKey]],
                  ) -> dg.SensorDefinition:
    @dg.sensor(
        name="party_inbox_sensor", job=job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the file-drop inboxes; a new file launches the load of its entity. The run key "
                    "is the file's sha256, so the same content never launches twice.",
    )
    def _sensor(context: dg.SensorEvaluationContext, campus_sources: CampusSourcesResource):
        live = campus_sources.load()
        seen = json.loads(context.cursor) if context.cursor else {}
        now_seen = {}
        requests = []
        for name in file_sources:
            source = live[name]
            for entity in source.entities.values():
                for item in FileExtractor(source, entity).pending():
                    stamp = f"{item.path.name}:{item.size}"
                    now_seen[item.sha256] = stamp
                    if item.sha256 in seen:
                        continue
                    requests.append(dg.RunRequest(
                        run_key=item.sha256, asset_selection=downstream[entity.table],
                        tags={"hub/file": item.path.name, "hub/entity": entity.table}))
        context.update_cursor(json.dumps(now_seen, sort_keys=True))
        if not requests:
            return dg.SkipReason("no new files in the inbox")
        return requests

    return _sensor
