"""Jobs and schedules."""

from __future__ import annotations

import dagster as dg

# The main job: every asset, raw to publish. Runs in one process (in_process executor, set on the
# Definitions) so a run pays Dagster's start-up once; the warehouse pool still serialises writers
# across concurrent runs.
campus_main_job = dg.define_asset_job(
    "campus_main_job", selection=dg.AssetSelection.all(),
    description="Pull every campus source into the raw zone, rebuild staging and the warehouse, publish.",
)

daily_refresh = dg.ScheduleDefinition(
    name="daily_campus_refresh", job=campus_main_job, cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="02:00 every day: refresh from the campus systems (turn on in the UI where wanted).",
)
