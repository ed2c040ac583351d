"""Shared fixtures: a real DuckDB warehouse per test, a small simulated campus per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")
# The tests' own keys, accepted only because HUB_MODE=test (hub.keys refuses them in production).
os.environ.setdefault("HUB_MODE", "test")
os.environ.setdefault("HUB_PERSON_KEY_SECRET", "test-only-person-key-not-for-production")
os.environ.setdefault("HUB_NATIONAL_KEY_SECRET", "test-only-national-key-not-for-production")
os.environ.setdefault("HUB_KMS_MASTER_KEYS", "hub_footer:dGVzdC1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=")

SMALL_SCALE = 0.05
SEED = 7


@pytest.fixture
def con(tmp_path: Path):
    from hub.warehouse import connect

    c = connect(tmp_path / "warehouse.duckdb")
    yield c
    c.close()


@pytest.fixture(scope="session")
def campus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated campus, generated once per test process."""
    from campus_sim.generate import generate

    out = tmp_path_factory.mktemp("campus")
    generate(out, scale=SMALL_SCALE, seed=SEED)
    return out
