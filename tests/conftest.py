"""Shared fixtures: a real DuckDB warehouse per test, a small simulated campus per session, and that
campus's warehouse materialised through the asset graph once per session (``campus_warehouse``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
# Named so that its catalog, opened directly with duckdb.connect, is none of the warehouse's schemas.
CAMPUS_WAREHOUSE = "campus_warehouse.duckdb"


@contextmanager
def served_campus(campus_dir: Path, work: Path) -> Iterator[dict[str, str]]:
    """The small campus's systems served on loopback (its party exports dropped in ``work``'s inbox) and
    the environment that points the hub at them, with every path of the settings under ``work`` and no
    HUB_AS_OF (the as-of date left to its default). Set in os.environ while the block runs."""
    from campus_sim.inbox import drop_party_exports
    from campus_sim.servers import SourceServers
    from hub.settings import Settings

    inbox = work / "inbox" / "party"
    drop_party_exports(campus_dir, inbox)
    env = {"HUB_VAR_DIR": str(work), "HUB_CAMPUS_DIR": str(campus_dir), "HUB_WAREHOUSE": str(work / CAMPUS_WAREHOUSE),
           "HUB_RAW_DIR": str(work / "raw"), "HUB_INBOX_DIR": str(inbox), "HUB_PUBLISHED_ROOT": str(work / "published"),
           "HUB_SNAPSHOT": str(work / "snapshot" / "analyst.duckdb"),
           "HUB_RESTRICTED_SNAPSHOT": str(work / "restricted" / "restricted.duckdb")}
    with SourceServers(campus_dir) as servers, pytest.MonkeyPatch.context() as mp:
        env |= Settings.from_env(env).source_env(servers.urls)
        mp.delenv("HUB_AS_OF", raising=False)
        for k, v in env.items():
            mp.setenv(k, v)
        yield env


def materialise(selection, *, warehouse: Path | None = None, checks: bool = False):
    """Materialise ``selection`` (a dg.AssetSelection) of the real Definitions, built as the hub builds them
    (hub.factory.build_definitions from the settings in os.environ: inside :func:`served_campus` for a
    selection with raw assets), through campus_main_job in this process on an ephemeral instance; into
    ``warehouse`` if given (a copy, say), with no HUB_AS_OF. With ``checks`` the asset checks of those assets
    run too (and a failing blocking check holds back what is built on its asset). Fails in one line naming
    every selected asset not materialised and every failed step; returns the run's result."""
    import dagster as dg

    from hub.factory import build_definitions
    from hub.settings import Settings

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HUB_AS_OF", raising=False)
        if warehouse is not None:
            mp.setenv("HUB_WAREHOUSE", str(warehouse))
        job = build_definitions(Settings.from_env()).resolve_job_def("campus_main_job")
        keys = selection.resolve(job.asset_layer.asset_graph)
        if not checks:
            job = job.get_subset(asset_selection=keys, asset_check_selection=set())
        with dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance, asset_selection=sorted(keys), raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    missing = keys - {e.asset_key for e in result.get_asset_materialization_events()}
    failed = [f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[0]}"
              for e in result.all_events if e.is_step_failure]
    assert not missing and not failed, (f"not materialised: {sorted(k.to_user_string() for k in missing)}; "
                                        f"failed steps: {failed}")
    return result


@pytest.fixture(scope="session")
def campus_warehouse(tmp_path_factory: pytest.TempPathFactory, campus_dir: Path) -> Path:
    """The small campus's warehouse file: every raw, staging, warehouse and mart asset materialised through
    the asset graph (the real Definitions, in one run), once per test process. The asset checks are left
    out: they are what test_expectations, test_business_rules and test_blocking test, each on its own
    terms, and would double the build. Read-only (the file is mode 0444): a test that changes the
    warehouse works on a copy (``copy_campus_warehouse``)."""
    import dagster as dg
    import duckdb

    work = tmp_path_factory.mktemp("graph")
    with served_campus(campus_dir, work) as env:
        materialise(dg.AssetSelection.key_prefixes(*([layer] for layer in GRAPH_LAYERS)))
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
