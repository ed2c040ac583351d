"""The campus built through the asset graph: the real Definitions (hub.factory.build_definitions, from the
settings as the hub reads them) materialised in this process. The one way the tests, and
benchmarks/quality.py, build a warehouse from a simulated campus; tests/conftest.py builds the small
campus's once per test process with it (``campus_warehouse``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

# Named so that its catalog, opened directly with duckdb.connect, is none of the warehouse's schemas.
CAMPUS_WAREHOUSE = "campus_warehouse.duckdb"
AS_OF_VAR = "HUB_AS_OF"


def all_but_suites(check: dg.AssetCheckKey) -> bool:
    """Every check but the expectation suites (Great Expectations on every table: over half the build's
    time), which tests/test_expectations.py runs itself: the business rules (their findings in
    quality.rule_violation hold records back from the national tables), the quarantine rates and
    dim_person's uniqueness, blocking as in a run of the job."""
    from pipelines.expectations import CHECK_NAME

    return check.name != CHECK_NAME


def environment(values: Mapping[str, str | None]):
    """os.environ with ``values`` set (None: removed) while the block runs, as it was afterwards."""
    from hub.settings import temporary_env

    return temporary_env(values)


@contextmanager
def served_campus(campus_dir: Path, work: Path) -> Iterator[dict[str, str]]:
    """A simulated campus's systems served on loopback (its party exports dropped in ``work``'s inbox) and
    the environment that points the hub at them, every path of the settings under ``work`` (the warehouse
    ``work/campus_warehouse.duckdb``) and no HUB_AS_OF (the as-of date left to its default); set in
    os.environ while the block runs. Yields that environment."""
    from campus_sim.inbox import drop_party_exports
    from campus_sim.servers import SourceServers
    from hub.settings import Settings

    inbox = work / "inbox" / "party"
    drop_party_exports(campus_dir, inbox)
    env = {"HUB_VAR_DIR": str(work), "HUB_CAMPUS_DIR": str(campus_dir), "HUB_WAREHOUSE": str(work / CAMPUS_WAREHOUSE),
           "HUB_RAW_DIR": str(work / "raw"), "HUB_INBOX_DIR": str(inbox), "HUB_PUBLISHED_ROOT": str(work / "published"),
           "HUB_SNAPSHOT": str(work / "snapshot" / "analyst.duckdb"),
           "HUB_RESTRICTED_SNAPSHOT": str(work / "restricted" / "restricted.duckdb")}
    with SourceServers(campus_dir) as servers:
        env |= Settings.from_env(env).source_env(servers.urls)
        with environment({**env, AS_OF_VAR: None}):
            yield env


def materialise(selection: dg.AssetSelection, *, warehouse: Path | None = None,
                checks: bool | Callable[[dg.AssetCheckKey], bool] = True) -> dg.ExecuteInProcessResult:
    """Materialise ``selection`` (its materialisable assets) of the real Definitions, built as the hub
    builds them (hub.factory.build_definitions from the settings in os.environ: inside
    :func:`served_campus` for a selection with raw assets), through campus_main_job in this process on an
    ephemeral instance; into ``warehouse`` if given (a copy, say); with no HUB_AS_OF.

    ``checks``: the asset checks of those assets run too, as in a run of the job (True), none of them
    (False), or those the function picks (e.g. :func:`all_but_suites`). Checks write history
    (quality.check_result) and the business rules' findings (quality.rule_violation, which holds records
    back from the national tables); a failing blocking check holds back what is built on its asset.
    Fails in one line naming every selected asset not materialised and every failed step; returns the
    run's result."""
    from hub.factory import build_definitions
    from hub.settings import Settings

    with environment({AS_OF_VAR: None, **({"HUB_WAREHOUSE": str(warehouse)} if warehouse else {})}):
        job = build_definitions(Settings.from_env()).resolve_job_def("campus_main_job")
        graph = job.asset_layer.asset_graph
        # a model that writes several tables is one multi-asset: all of its tables or none
        keys = selection.required_multi_asset_neighbors().resolve(graph) & set(job.asset_layer.executable_asset_keys)
        if checks is True:
            check_keys = None  # every check of the selected assets
        else:
            check_keys = {k for k in graph.asset_check_keys if k.asset_key in keys and checks and checks(k)}
        subset = job.get_subset(asset_selection=keys, asset_check_selection=check_keys)
        with dg.DagsterInstance.ephemeral() as instance:
            result = subset.execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    missing = keys - {e.asset_key for e in result.get_asset_materialization_events()}
    failed = [f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[0]}"
              for e in result.all_events if e.is_step_failure]
    if missing or failed:
        raise RuntimeError(f"not materialised: {sorted(k.to_user_string() for k in missing)}; "
                           f"failed steps: {failed}")
    return result
