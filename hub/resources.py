"""Dagster resources: the warehouse file, the declared campus sources, the published root and the run's
settings. Every setting a run uses is a field of one of them, so the UI shows it and the launchpad can
change it under ``resources:`` (hub/factory.py fills them from hub/settings.py, secrets with dg.EnvVar)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from connectors import DEFAULT_LANDING_MEMORY, Source, load_sources
from hub.publisher import Publisher
from hub.settings import (
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_GX_MAX_ROWS,
    PLAUSIBILITY_FILE,
    RULES_FILE,
    STANDARDS_FILE,
    as_of_value,
)
from hub.warehouse import open_warehouse, open_warehouse_when_free

# Every asset that writes the DuckDB file takes a slot in this pool; dagster_home/dagster.yaml gives it
# one slot, so writers queue instead of failing on DuckDB's single-writer file lock.
WAREHOUSE_POOL = "duckdb_warehouse"


def secret_from_env(name: str) -> dg.EnvVar | str:
    """A secret field read from ``name`` at run time (dg.EnvVar: the UI shows the variable, never the value),
    or empty when ``name`` is not set where the definitions load (an optional secret, e.g. the national key
    the demo and the tests may leave to the person key)."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (one writer at a time: see WAREHOUSE_POOL)."""

    path: str
    snapshot_path: str = ""
    restricted_snapshot_path: str = ""
    # DuckDB's memory limit for the run's connections (HUB_DUCKDB_MEMORY_LIMIT): past it joins spill to disk.
    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    # The Unix groups that may read the analyst / restricted snapshot (HUB_ANALYST_GROUP, HUB_RESTRICTED_GROUP;
    # empty: the analyst file is world-readable, the restricted one the owner's only).
    analyst_group: str = ""
    restricted_group: str = ""
    # Many colleges (hub/colleges.py): the college's folder (its report and Data Docs go there; empty: the
    # single college's HUB_VAR_DIR), and the names of the variables holding its keys, by CollegeSecrets field.
    var_dir: str = ""
    key_vars: dict[str, str] = {}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every asset of every run writes through this resource: without usable keys no run starts
        # (hub.keys: unset, too short or shipped in the repository, outside the demo and the tests).
        from hub.keys import check_keys

        if self.key_vars:  # a college's run: its own variables, under the names hub.keys checks
            from hub.colleges import check_college_keys

            check_college_keys(self.key_vars)
        else:
            check_keys()
        # Every run uses the warehouse: record the process executing it, so that if it is killed a later
        # start can tell the run is dead and free its slot (hub/recovery.py).
        from hub.recovery import tag_current_run

        tag_current_run(context.instance, context.run.run_id if context.run else None)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        # Writing: wait (a while) for a `hub load` that is landing; loads hold the file only to land.
        opened = (open_warehouse(self.path, read_only=True, memory_limit=self.memory_limit) if read_only
                  else open_warehouse_when_free(self.path, memory_limit=self.memory_limit))
        with opened as con:
            yield con


class CampusSourcesResource(dg.ConfigurableResource):
    """The campus systems declared in sources.yaml, and the raw zone they land in."""

    config_path: str
    raw_dir: str
    # DuckDB's memory limit while a load lands (HUB_RAW_MEMORY_LIMIT): peak memory stays flat as sources grow.
    landing_memory: str = DEFAULT_LANDING_MEMORY
    # Where an object-store raw zone spools a load before upload (HUB_RAW_SPOOL_DIR; empty: the temp dir).
    spool_dir: str = ""

    def load(self) -> dict[str, Source]:
        return load_sources(self.config_path)


class IdentityResource(dg.ConfigurableResource):
    """The keys of the keyed hashes: person_key from an ID number, and the national tables' zjsjwyxbs
    (pipelines/national.py; empty: the person key, which only the demo and the tests allow, hub/keys.py).
    Set them from the environment (dg.EnvVar): the UI shows the variable, never the value."""

    person_key_secret: str
    national_key_secret: str = ""

    def national_secret(self) -> str:
        return self.national_key_secret or self.person_key_secret


class QualityResource(dg.ConfigurableResource):
    """Thresholds of the blocking checks (quality/blocking.py): the share of an entity's rows staging may
    quarantine before its table is held back, by default and per ``source.entity``."""

    quarantine_max_rate: float = 0.02
    quarantine_max_rate_by_entity: dict[str, float] = {}
    # Expectation suites run in GX in memory up to this many rows, in SQL above (HUB_QUALITY_GX_MAX_ROWS).
    gx_max_rows: int = DEFAULT_GX_MAX_ROWS

    def max_rate(self, entity: str) -> float:
        return float(self.quarantine_max_rate_by_entity.get(entity, self.quarantine_max_rate))


class PublisherResource(dg.ConfigurableResource):
    """Where versioned datasets are published for the smart brain and the national platform: a local path
    or an fsspec URL. Restricted datasets are encrypted with master keys from the environment; a new
    current version is announced to the platform's catalogue when ``catalogue_url`` is set."""

    root: str
    keep_versions: int = 5
    kms_master_keys: str = ""
    catalogue_url: str = ""
    catalogue_token_env: str = "HUB_CATALOGUE_TOKEN"

    def publisher(self) -> Publisher:
        return Publisher(self.root, keep_versions=self.keep_versions, kms_master_keys=self.kms_master_keys or None)

    def catalogue_token(self) -> str | None:
        return os.environ.get(self.catalogue_token_env) or None


class RunSettingsResource(dg.ConfigurableResource):
    """What a run judges against: the as-of date, and the files of business rules, plausibility checks and
    assessment standards. Set from HUB_AS_OF, HUB_RULES_FILE, HUB_PLAUSIBILITY_FILE, HUB_STANDARDS_FILE,
    HUB_FULL_REBUILD and HUB_SCHOOL_CODE; the launchpad overrides any of them for one run, e.g. to rebuild
    the marts and rerun the rules "as of" another day::

        resources:
          run_settings:
            config:
              as_of: "2026-06-30"
    """

    # YYYY-MM-DD; empty: the rules file's as_of, else the latest date in the data (a meeting, a payment).
    as_of: str = ""
    rules_file: str = str(RULES_FILE)
    plausibility_file: str = str(PLAUSIBILITY_FILE)
    standards_file: str = str(STANDARDS_FILE)
    # Rebuild incremental staging models from every raw load and incremental facts whole (a staging asset's
    # own config can ask it too).
    full_rebuild: bool = False
    # The college's 10-digit 学校代码 (xxdm) the national tables carry.
    school_code: str = "4145000001"

    def as_of_date(self) -> date | None:
        """The launchpad's (or HUB_AS_OF's) date, or None when none is set; a bad one fails in one line."""
        value = as_of_value(self.as_of, "run_settings.as_of")
        return date.fromisoformat(value) if value else None

    def rules(self):
        """The business rules configuration of this run (quality/business_rules.py)."""
        from quality.business_rules import load_config

        return load_config(self.rules_file, standards_file=self.standards_file)

    def configured_as_of(self) -> date | None:
        """The as-of date the run was given: run_settings.as_of, else the rules file's as_of (None: the
        data decides)."""
        return self.as_of_date() or self.rules().as_of

    def plausibility_checks(self):
        """The plausibility checks of this run, per staging model (models/plausibility.py)."""
        from models.plausibility import load_checks

        return load_checks(Path(self.plausibility_file))
