"""Shared fixtures: a real DuckDB warehouse per test, a small simulated campus per session, and that
campus's warehouse materialised through the asset graph once per session (``campus_warehouse``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
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


# ------------------------------------------------------------------------------------ through the asset graph

# The layers the campus warehouse is materialised through (every asset of them): what the tests read.
# Publishing, the analyst snapshot and the report are left to the tests of those.
GRAPH_LAYERS = ("raw", "staging", "warehouse", "marts")


@pytest.fixture(scope="session")
def campus_warehouse(tmp_path_factory: pytest.TempPathFactory, campus_dir: Path) -> Path:
    """The small campus's warehouse file: every raw, staging, warehouse and mart asset materialised through
    the asset graph (the real Definitions, in one run), once per test process, with every asset check but
    the expectation suites (tests/campus_graph.all_but_suites: those would double the build, and
    test_expectations runs them itself). Read-only (the file is mode 0444): a test that changes the
    warehouse works on a copy (``copy_campus_warehouse``)."""
    import dagster as dg
    import duckdb

    from tests.campus_graph import all_but_suites, materialise, served_campus

    work = tmp_path_factory.mktemp("graph")
    with served_campus(campus_dir, work) as env:
        materialise(dg.AssetSelection.key_prefixes(*([layer] for layer in GRAPH_LAYERS)), checks=all_but_suites)
    path = Path(env["HUB_WAREHOUSE"])
    with duckdb.connect(str(path)) as con:  # everything in the file itself: a copy needs no WAL
        con.execute("CHECKPOINT")
    path.chmod(0o444)
    return path


@pytest.fixture(scope="session")
def copy_campus_warehouse(campus_warehouse: Path) -> Callable[[Path], Path]:
    """Copies the campus warehouse to a path (writable), for a test that changes it; returns the path."""

    def _copy(target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(campus_warehouse, target)  # the contents only, not the read-only mode
        return target

    return _copy


@pytest.fixture
def pair(tmp_path):
    """Two warehouses with the code sets loaded: one built incrementally, one in full, to compare table by
    table (tests/test_incremental_staging*.py; a test file may define its own ``pair``)."""
    from hub.warehouse import connect
    from models.build import load_code_sets

    a, b = connect(tmp_path / "incremental.duckdb"), connect(tmp_path / "full.duckdb")
    for c in (a, b):
        load_code_sets(c)
    yield a, b
    a.close()
    b.close()
