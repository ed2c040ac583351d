"""Builds the Dagster Definitions from the settings and sources.yaml."""

from __future__ import annotations

import dagster as dg

from connectors import load_sources
from hub.colleges import (
    CollegeConfigError,
    Colleges,
    college_resources,
    college_schedules,
    colleges_from_env,
    partitioned,
    without_pools,
)
from hub.recovery import dead_run_sweeper
from hub.resources import (
    CampusSourcesResource,
    IdentityResource,
    PublisherResource,
    QualityResource,
    RunSettingsResource,
    WarehouseResource,
    secret_from_env,
)
from hub.settings import Settings
from pipelines.as_of import as_of
from pipelines.automation import automation_sensor, with_downstream_conditions
from pipelines.data_docs import data_docs_index_sensor
from pipelines.expectations import expectation_checks
from pipelines.jobs import build_automation, college_inbox_sensor
from pipelines.publish import publish_assets
from pipelines.quality_tables import quality_table_specs
from pipelines.quarantine import quarantine_rate_checks
from pipelines.raw import build_raw, source_specs
from pipelines.report import party_report_asset
from pipelines.rules import build_rule_checks
from pipelines.snapshot import analyst_snapshot_asset
from pipelines.staging import staging_assets, staging_checks
from pipelines.warehouse import mart_assets, warehouse_assets, warehouse_checks
from quality.business_rules import load_config as load_rules
from quality.expectations import quality_dir


def build_definitions(settings: Settings | None = None, colleges: Colleges | None = None) -> dg.Definitions:
    """The hub's Definitions: one college (the default), or every college of ``colleges`` (default: the
    HUB_COLLEGES_FILE setting) as partitions of every asset (hub/colleges.py)."""
    settings = settings or Settings.from_env()
    colleges = colleges if colleges is not None else colleges_from_env()
    if colleges is not None:
        return _with_colleges(_build(settings, load_sources(colleges.paths(colleges.codes[0], settings)
                                                            .sources_file)), colleges, settings)
    return _build(settings, load_sources(settings.sources_file))


def _with_colleges(defs: dg.Definitions, colleges: Colleges, settings: Settings) -> dg.Definitions:
    """The single college's graph, partitioned by college, its resources per college, a schedule per college.

    Every college's sources.yaml must declare the same sources and entities (the graph is one for all);
    checked here. The single college's daily schedule is left out (each college's schedule launches its
    partition of campus_main_job) and its inbox sensor is replaced by one that watches every college's inbox
    and launches that college's partition of inbox_load_job (pipelines/jobs.py college_inbox_sensor)."""
    from connectors import load_sources as _load

    first = colleges.colleges[0].xxdm
    shape = {n: sorted(s.entities) for n, s in _load(colleges.paths(first, settings).sources_file).items()}
    for c in colleges.colleges[1:]:
        other = {n: sorted(s.entities) for n, s in _load(colleges.paths(c.xxdm, settings).sources_file).items()}
        if other != shape:
            raise CollegeConfigError(f"{colleges.file}: college {c.xxdm}: sources: declares {other} but college "
                                     f"{first} declares {shape}; every college's graph is the same")
    assets = partitioned(list(defs.assets or []), colleges)
    checks = [without_pools(c) for c in defs.asset_checks or []]
    main = next(j for j in defs.jobs if getattr(j, "name", "") == "campus_main_job")
    inbox_job = next(j for j in defs.jobs if getattr(j, "name", "") == "inbox_load_job")
    file_sources = {n: s for n, s in _load(colleges.paths(first, settings).sources_file).items() if s.kind == "files"}
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=list(defs.jobs),
        schedules=college_schedules(colleges, main),
        sensors=[college_inbox_sensor(file_sources, inbox_job, colleges, settings),
                 *(s for s in defs.sensors if s.name not in ("party_inbox_sensor", "data_docs_index")),
                 data_docs_index_sensor(lambda run: _college_quality_dir(colleges, settings, run))],
        executor=defs.executor, resources=college_resources(dict(defs.resources), colleges, settings))


def _college_quality_dir(colleges: Colleges, settings: Settings, run: dg.DagsterRun):
    """The quality folder of the run's college; None for a run that names no college."""
    key = run.tags.get("dagster/partition")
    return quality_dir(colleges.paths(key, settings).var_dir) if key in colleges.codes else None


def _build(settings: Settings, sources) -> dg.Definitions:
    raw_assets, raw_checks = build_raw(sources)
    assets = [*raw_assets, *staging_assets, *warehouse_assets, *mart_assets, *publish_assets]
    assets.append(analyst_snapshot_asset([k for a in [*warehouse_assets, *mart_assets] for k in a.keys]))
    assets.append(party_report_asset([a.key for a in mart_assets], settings.var_dir / "report"))
    assets = [as_of, *with_downstream_conditions(assets)]
    jobs, schedules, sensors = build_automation(sources, assets)
    # one check per rule of the rules file the settings name (HUB_RULES_FILE)
    rule_checks = build_rule_checks(load_rules(settings.rules_file, standards_file=settings.standards_file))
    return dg.Definitions(
        assets=[*assets, *source_specs(sources),  # campus systems and quality tables: external, not materialised
                *quality_table_specs([a.key for a in raw_assets])],
        asset_checks=[*raw_checks, *staging_checks, *warehouse_checks, *rule_checks, *quarantine_rate_checks,
                      *expectation_checks([k for a in assets for k in a.keys])],
        jobs=jobs,
        schedules=schedules,
        sensors=[*sensors, dead_run_sweeper(), automation_sensor(),
                 data_docs_index_sensor(lambda run: quality_dir(settings.var_dir))],
        executor=dg.in_process_executor,
        resources={
            "warehouse": WarehouseResource(path=str(settings.warehouse_path),
                                           snapshot_path=str(settings.snapshot_path),
                                           restricted_snapshot_path=str(settings.restricted_snapshot_path),
                                           memory_limit=settings.duckdb_memory_limit,
                                           analyst_group=settings.analyst_group,
                                           restricted_group=settings.restricted_group),
            "campus_sources": CampusSourcesResource(config_path=str(settings.sources_file),
                                                    raw_dir=settings.raw_root_url or str(settings.raw_dir),
                                                    landing_memory=settings.raw_memory_limit,
                                                    spool_dir=settings.raw_spool_dir),
            "identity": IdentityResource(person_key_secret=dg.EnvVar("HUB_PERSON_KEY_SECRET"),
                                         national_key_secret=secret_from_env("HUB_NATIONAL_KEY_SECRET")),
            "quality": QualityResource(quarantine_max_rate=settings.quarantine_max_rate,
                                       quarantine_max_rate_by_entity=settings.quarantine_max_rate_by_entity,
                                       gx_max_rows=settings.quality_gx_max_rows),
            # what the run judges against; the launchpad overrides any field for one run (e.g. as_of)
            "run_settings": RunSettingsResource(as_of=settings.as_of, rules_file=str(settings.rules_file),
                                                plausibility_file=str(settings.plausibility_file),
                                                standards_file=str(settings.standards_file),
                                                full_rebuild=settings.full_rebuild,
                                                school_code=settings.school_code),
            "publisher": PublisherResource(root=settings.published_root_url,
                                           kms_master_keys=dg.EnvVar("HUB_KMS_MASTER_KEYS"),
                                           catalogue_url=settings.catalogue_url),
        },
    )
