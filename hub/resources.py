"""Dagster resources: the warehouse file, the declared campus sources, and the published root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from connectors import DEFAULT_LANDING_MEMORY, Source, load_sources
from hub.publisher import Publisher
from hub.warehouse import open_warehouse, open_warehouse_when_free

# Every asset that writes the DuckDB file takes a slot in this pool; dagster_home/dagster.yaml gives it
# one slot, so writers queue instead of failing on DuckDB's single-writer file lock.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (one writer at a time: see WAREHOUSE_POOL)."""

    path: str
    snapshot_path: str = ""
    restricted_snapshot_path: str = ""
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
        opened = open_warehouse(self.path, read_only=True) if read_only else open_warehouse_when_free(self.path)
        with opened as con:
            yield con


class CampusSourcesResource(dg.ConfigurableResource):
    """The campus systems declared in sources.yaml, and the raw zone they land in."""

    config_path: str
    raw_dir: str
    # DuckDB's memory limit while a load lands (HUB_RAW_MEMORY_LIMIT): peak memory stays flat as sources grow.
    landing_memory: str = DEFAULT_LANDING_MEMORY

    def load(self) -> dict[str, Source]:
        return load_sources(self.config_path)


class IdentityResource(dg.ConfigurableResource):
    """The key of the keyed hash that turns an ID number into person_key. Set it from the environment."""

    person_key_secret: str


class QualityResource(dg.ConfigurableResource):
    """Thresholds of the blocking checks (quality/blocking.py): the share of an entity's rows staging may
    quarantine before its table is held back, by default and per ``source.entity``."""

    quarantine_max_rate: float = 0.02
    quarantine_max_rate_by_entity: dict[str, float] = {}

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
    # Many colleges (hub/colleges.py): the college's 学校代码 and zjsjwyxbs key for the national tables;
    # empty: HUB_SCHOOL_CODE and HUB_NATIONAL_KEY_SECRET as for one college (pipelines.national.bind_national).
    school_code: str = ""
    national_key_secret: str = ""

    def publisher(self) -> Publisher:
        return Publisher(self.root, keep_versions=self.keep_versions, kms_master_keys=self.kms_master_keys or None)

    def catalogue_token(self) -> str | None:
        return os.environ.get(self.catalogue_token_env) or None
