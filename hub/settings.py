"""Where the hub keeps things and how a run behaves, read once from the environment.

Every path defaults to a folder under the project's ``var/`` so that a fresh clone works with no
configuration; each can be moved with a ``HUB_*`` variable. Secrets are not settings: connectors read
them from the environment variables that ``sources.yaml`` names, at the moment they are used, and the
Dagster resources take theirs with ``dg.EnvVar``.

This module and ``hub/resources.py`` are the only places that read the process environment
(tests/test_settings_env.py holds every other module to that). A run's settings reach the assets as
fields of the Dagster resources (hub/factory.py builds them from :class:`Settings`; the launchpad shows
and overrides them under ``resources:``); library code takes them as parameters. The command-line
modules read what they need through :func:`environ` / :func:`env_value` and set what child processes
inherit through :func:`export` / :func:`temporary_env`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from connectors.config import DEFAULT_LANDING_MEMORY, memory_bytes
from quality.blocking import (
    DEFAULT_MAX_QUARANTINE_RATE,
    RATE_BY_ENTITY_VAR,
    RATE_VAR,
    parse_rate,
    parse_rates,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The shipped configuration files (quality/business_rules.py, models/plausibility.py, models/standards.py
# name the same files); a HUB_* variable, or the launchpad's run_settings, points a run at another.
RULES_FILE = PROJECT_ROOT / "quality" / "rules.yaml"
PLAUSIBILITY_FILE = PROJECT_ROOT / "quality" / "plausibility.yaml"
STANDARDS_FILE = PROJECT_ROOT / "models" / "assessment_standards.yaml"
DEFAULT_DUCKDB_MEMORY_LIMIT = "1.7GB"  # the job at scale 20 peaks at 2.4 GB with it (docs/benchmarks.md)
DEFAULT_GX_MAX_ROWS = 250_000  # quality/expectations.py: GX in memory up to this many rows, SQL above
TRUE_WORDS = ("1", "true", "yes")

# Ports the simulated campus is served on when the UI (or a person) runs ``hub serve-sources``.
DEFAULT_PORTS = {"hr": 18081, "student": 18082, "activity": 18083, "learning": 18084}


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    campus_dir: Path
    warehouse_path: Path
    snapshot_path: Path
    restricted_snapshot_path: Path
    raw_dir: Path
    inbox_dir: Path
    published_root: Path
    sources_file: Path
    dagster_home: Path
    school_code: str
    person_key_secret: str
    published_root_url: str
    catalogue_url: str
    raw_memory_limit: str = DEFAULT_LANDING_MEMORY
    # Blocking is for what is systemic (quality/blocking.py): a staging model's quarantine rate above this.
    quarantine_max_rate: float = 0.02
    quarantine_max_rate_by_entity: dict[str, float] = field(default_factory=dict)
    raw_root_url: str = ""  # HUB_RAW_DIR as given: a path, or an s3:// URL (connectors/object_raw_zone.py)
    data_docs_url: str = "http://127.0.0.1:3001"
    # What a run judges dates against (YYYY-MM-DD; empty: rules.yaml's as_of, else the latest date in the data).
    as_of: str = ""
    rules_file: Path = RULES_FILE
    plausibility_file: Path = PLAUSIBILITY_FILE
    standards_file: Path = STANDARDS_FILE
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    quality_gx_max_rows: int = DEFAULT_GX_MAX_ROWS
    full_rebuild: bool = False
    raw_spool_dir: str = ""  # where an object-store raw zone spools a load (empty: under the system temp dir)
    analyst_group: str = ""  # the Unix group that may read the analyst snapshot (pipelines/snapshot.py)
    restricted_group: str = ""  # ... and the restricted one

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        var = Path(env.get("HUB_VAR_DIR", PROJECT_ROOT / "var")).resolve()
        return cls(
            var_dir=var,
            campus_dir=Path(env.get("HUB_CAMPUS_DIR", var / "campus")).resolve(),
            warehouse_path=Path(env.get("HUB_WAREHOUSE", var / "warehouse.duckdb")).resolve(),
            # What analysts read while runs write: a copy taken after each run, replaced atomically, with
            # restricted columns masked (pipelines/snapshot.py). Named so that its catalog ('analyst') is
            # none of its schemas: opened directly, `warehouse.dim_person` is not ambiguous.
            snapshot_path=Path(env.get("HUB_SNAPSHOT", var / "snapshot" / "analyst.duckdb")).resolve(),
            # The same with every column in clear, for the restricted role only (mode 0600 or its group).
            restricted_snapshot_path=Path(env.get("HUB_RESTRICTED_SNAPSHOT",
                                                  var / "restricted" / "restricted.duckdb")).resolve(),
            raw_dir=Path(env.get("HUB_RAW_DIR", var / "raw")).resolve()
            if "://" not in env.get("HUB_RAW_DIR", "") else var / "raw",
            inbox_dir=Path(env.get("HUB_INBOX_DIR", var / "inbox" / "party")).resolve(),
            published_root=Path(env.get("HUB_PUBLISHED_ROOT", var / "published")).resolve()
            if "://" not in env.get("HUB_PUBLISHED_ROOT", "") else var / "published",
            sources_file=Path(env.get("HUB_SOURCES_FILE", PROJECT_ROOT / "sources.yaml")).resolve(),
            dagster_home=Path(env.get("DAGSTER_HOME", PROJECT_ROOT / "dagster_home")).resolve(),
            school_code=env.get("HUB_SCHOOL_CODE", "4145000001"),
            # HMAC-SHA256 under this key turns an ID number into person_key; the key is what keeps the ID out
            # of it. No default: hub.keys refuses a run without one (hub demo and the tests set their own).
            person_key_secret=env.get("HUB_PERSON_KEY_SECRET", ""),
            # A path or an fsspec URL (s3://…, memory://…): where datasets are published.
            published_root_url=env.get("HUB_PUBLISHED_ROOT", str(var / "published")),
            # The national platform's catalogue, told of each new current version (empty: no notification).
            catalogue_url=env.get("HUB_CATALOGUE_URL", ""),
            # DuckDB's memory limit while a raw load lands (the warehouse's own is HUB_DUCKDB_MEMORY_LIMIT).
            raw_memory_limit=_memory_setting(env, "HUB_RAW_MEMORY_LIMIT", DEFAULT_LANDING_MEMORY),
            # The share of an entity's rows staging may quarantine before its table stops what is built on
            # it (2% or 0.02), and per source.entity: HUB_QUARANTINE_MAX_RATE_BY_ENTITY=hr.staff=5%,…
            quarantine_max_rate=parse_rate(env.get(RATE_VAR, DEFAULT_MAX_QUARANTINE_RATE), RATE_VAR),
            quarantine_max_rate_by_entity=parse_rates(env.get(RATE_BY_ENTITY_VAR, "")),
            # A path or an fsspec URL (s3://…): where the raw zone's Parquet parts are kept.
            raw_root_url=env["HUB_RAW_DIR"] if "://" in env.get("HUB_RAW_DIR", "")
            else str(Path(env.get("HUB_RAW_DIR", var / "raw")).resolve()),
            # Where `hub serve-docs` serves the Data Docs (<var>/quality/docs): the checks link there.
            data_docs_url=env.get("HUB_DATA_DOCS_URL", "http://127.0.0.1:3001"),
            # The as-of date of every date judgement (rules, marts, past_date checks): a default for the
            # launchpad's run_settings.as_of, which rebuilds "as of" another day.
            as_of=as_of_value(env.get("HUB_AS_OF", ""), "HUB_AS_OF"),
            rules_file=Path(env.get("HUB_RULES_FILE") or RULES_FILE).resolve(),
            plausibility_file=Path(env.get("HUB_PLAUSIBILITY_FILE") or PLAUSIBILITY_FILE).resolve(),
            standards_file=Path(env.get("HUB_STANDARDS_FILE") or STANDARDS_FILE).resolve(),
            duckdb_memory_limit=duckdb_memory_limit(env),
            quality_gx_max_rows=_int_setting(env, "HUB_QUALITY_GX_MAX_ROWS", DEFAULT_GX_MAX_ROWS),
            full_rebuild=env.get("HUB_FULL_REBUILD", "").strip().lower() in TRUE_WORDS,
            raw_spool_dir=env.get("HUB_RAW_SPOOL_DIR", ""),
            analyst_group=env.get("HUB_ANALYST_GROUP", "").strip(),
            restricted_group=env.get("HUB_RESTRICTED_GROUP", "").strip(),
        )

    def source_env(self, urls: dict[str, str] | None = None) -> dict[str, str]:
        """Environment that points ``sources.yaml`` at the simulated campus."""
        urls = urls or {k: f"http://127.0.0.1:{p}" for k, p in DEFAULT_PORTS.items()}
        return {
            "HUB_HR_URL": urls["hr"],
            "HUB_XG_URL": urls["student"],
            "HUB_ACTIVITY_URL": urls["activity"],
            "HUB_LEARNING_URL": urls["learning"],
            "HUB_ACADEMIC_URL": f"sqlite:///{self.campus_dir / 'academic' / 'academic.sqlite'}",
            "HUB_INBOX_DIR": str(self.inbox_dir),
        }


def as_of_value(value: str, where: str) -> str:
    """``value`` stripped if it is empty or a date YYYY-MM-DD; else ValueError naming ``where``."""
    value = (value or "").strip()
    if value:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}={value!r} is not a date YYYY-MM-DD") from None
    return value


def duckdb_memory_limit(env: Mapping[str, str] | None = None) -> str:
    """DuckDB's memory limit for a warehouse connection (HUB_DUCKDB_MEMORY_LIMIT, default 1.7GB); the Dagster
    runs take it from the warehouse resource's ``memory_limit``."""
    return _memory_setting(environ() if env is None else env, "HUB_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return number


# ---------------------------------------------------------------------------- the process environment


def environ() -> dict[str, str]:
    """A copy of the process environment, for the command-line modules that read several variables or
    hand them on (hub.keys, hub.instance, hub.province, the ``${VAR}`` expansion of sources.yaml)."""
    return dict(os.environ)


def env_value(name: str, default: str = "") -> str:
    """One variable of the process environment (``default`` when it is not set)."""
    return os.environ.get(name, default)


def export(name: str, value: str, *, overwrite: bool = True) -> None:
    """Set ``name`` for this process and the processes it starts (``overwrite=False``: only if unset)."""
    if overwrite:
        os.environ[name] = value
    else:
        os.environ.setdefault(name, value)


@contextmanager
def temporary_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set ``values`` (None: remove the variable) in the process environment for the block, then put back
    what was there."""
    def put(items) -> None:
        for k, v in items:
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    saved = {k: os.environ.get(k) for k in values}
    try:
        put(values.items())
        yield
    finally:
        put(saved.items())


def _memory_setting(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    try:
        memory_bytes(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return value
