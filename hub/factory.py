"""Builds the Dagster Definitions from the settings and sources.yaml."""

from __future__ import annotations

import dagster as dg

from connectors import load_sources
from hub.recovery import dead_run_sweeper
from hub.resources import (
    CampusSourcesResource,
    IdentityResource,
    PublisherResource,
    QualityResource,
    WarehouseResource,
)
from hub.settings import Settings
from pipelines.as_of import as_of
from pipelines.automation import automation_sensor, with_downstream_conditions
from pipelines.expectations import expectation_checks
from pipelines.jobs import build_automation
from pipelines.publish import publish_assets
from pipelines.quality_tables import quality_table_specs
from pipelines.quarantine import quarantine_rate_checks
from pipelines.raw import build_raw
from pipelines.report import party_report_asset
from pipelines.rules import rule_checks
from pipelines.snapshot import analyst_snapshot_asset
from pipelines.staging import staging_assets, staging_checks
from pipelines.warehouse import mart_assets, warehouse_assets, warehouse_checks


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    sources = load_sources(settings.sources_file)
    raw_assets, raw_checks = build_raw(sources)
    assets = [*raw_assets, *staging_assets, *warehouse_assets, *mart_assets, *publish_assets]
    assets.append(analyst_snapshot_asset([k for a in [*warehouse_assets, *mart_assets] for k in a.keys]))
    assets.append(party_report_asset([a.key for a in mart_assets], settings.var_dir / "report"))
    assets = [as_of, *with_downstream_conditions(assets)]
    jobs, schedules, sensors = build_automation(sources, assets)
    return dg.Definitions(
        assets=[*assets, *quality_table_specs([a.key for a in raw_assets])],  # not materialised: see module
        asset_checks=[*raw_checks, *staging_checks, *warehouse_checks, *rule_checks, *quarantine_rate_checks,
                      *expectation_checks([k for a in assets for k in a.keys])],
        jobs=jobs,
        schedules=schedules,
        sensors=[*sensors, dead_run_sweeper(), automation_sensor()],
        executor=dg.in_process_executor,
        resources={
            "warehouse": WarehouseResource(path=str(settings.warehouse_path),
                                           snapshot_path=str(settings.snapshot_path),
                                           restricted_snapshot_path=str(settings.restricted_snapshot_path)),
            "campus_sources": CampusSourcesResource(config_path=str(settings.sources_file),
                                                    raw_dir=settings.raw_root_url or str(settings.raw_dir),
                                                    landing_memory=settings.raw_memory_limit),
            "identity": IdentityResource(person_key_secret=dg.EnvVar("HUB_PERSON_KEY_SECRET")),
            "quality": QualityResource(quarantine_max_rate=settings.quarantine_max_rate,
                                       quarantine_max_rate_by_entity=settings.quarantine_max_rate_by_entity),
            "publisher": PublisherResource(root=settings.published_root_url,
                                           kms_master_keys=dg.EnvVar("HUB_KMS_MASTER_KEYS"),
                                           catalogue_url=settings.catalogue_url),
        },
    )
