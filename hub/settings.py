"""Where the hub keeps things, read once from the environment.

Every path defaults to a folder under the project's ``var/`` so that a fresh clone works with no
configuration; each can be moved with a ``HUB_*`` variable. Secrets are not settings: connectors read
them from the environment variables that ``sources.yaml`` names, at the moment they are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


def _memory_setting(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    try:
        memory_bytes(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return value
