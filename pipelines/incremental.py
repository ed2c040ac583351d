"""One incremental run of ``campus_main_job``, as ``hub demo`` and the pipeline benchmark execute it in process.

The daemon does this with the automation conditions (pipelines/automation.py): raw loads first, then one
coalesced rebuild of what is downstream of the tables that changed. In process there is no daemon, so the same
rule is applied in two phases of the same job:

1. **intake**: the raw assets and ``settings/as_of`` only. A raw asset whose load brings nothing new does not
   materialise (pipelines/raw.py), nor does the as-of setting when it is unchanged (pipelines/as_of.py).
2. **rebuild**: what is downstream of the assets that materialised in phase 1, and of any asset an earlier
   run left older than one of its inputs (a run killed in its rebuild; see :func:`behind`). A model is
   rebuilt when ANY of its inputs changed, which Dagster's own skipping of unproduced outputs cannot
   express (it skips a step when any input is missing). Nothing to rebuild: no second run, and nothing
   downstream is shown as rebuilt.

When an asset of the job was never materialised (an empty instance: the first run), the job runs whole, in
one run, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

INTAKE = dg.AssetSelection.groups("raw")  # the raw assets and settings/as_of


def intake_keys(job: dg.JobDefinition) -> list[dg.AssetKey]:
    graph = job.asset_layer.asset_graph
    keys = INTAKE.resolve(graph) & job.asset_layer.executable_asset_keys
    return sorted(keys, key=lambda k: k.to_user_string())


def never_materialised(job: dg.JobDefinition, instance: dg.DagsterInstance) -> list[dg.AssetKey]:
    keys = sorted(job.asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
    latest = instance.get_latest_materialization_events(keys)
    return [k for k in keys if latest.get(k) is None]


def rebuild_selection(job: dg.JobDefinition, changed: set[dg.AssetKey]) -> list[dg.AssetKey]:
    """Every asset of the job downstream of ``changed``, and of the tables whose checks read one of those,
    without the intake assets themselves."""
    if not changed:
        return []
    graph = job.asset_layer.asset_graph
    # A check that also reads other tables (a rule check reads the facts its as-of date comes from) must
    # judge again when one of them changes, or the publish gate finds it stale: its table is rebuilt too
    # (a check runs with its table), and what is built on that.
    readers: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for key in graph.asset_check_keys:
        for dep in graph.get_check_spec(key).additional_deps:
            readers.setdefault(dep.asset_key, set()).add(key.asset_key)
    down: set[dg.AssetKey] = set()
    todo = set(changed)
    while todo:
        down |= dg.AssetSelection.assets(*todo).downstream().resolve(graph)
        todo = {a for d in down for a in readers.get(d, ())} - down
    keys = (down & job.asset_layer.executable_asset_keys) - set(intake_keys(job))
    return sorted(keys, key=lambda k: k.to_user_string())


def behind(job: dg.JobDefinition, instance: dg.DagsterInstance,
           blocked: set[dg.AssetKey] = frozenset()) -> set[dg.AssetKey]:
    """Assets left behind by an earlier run: a non-intake asset older than one of its parents (a run killed or
    failed in its rebuild, or held back by a blocking check), with those newer parents when they are not
    intake assets, so that their checks run again before anything is built on them."""
    graph = job.asset_layer.asset_graph
    keys = set(job.asset_layer.executable_asset_keys)
    latest = instance.get_latest_materialization_events(sorted(keys, key=lambda k: k.to_user_string()))
    when = {k: e.timestamp for k, e in latest.items() if e is not None}
    intake = set(intake_keys(job))
    out: set[dg.AssetKey] = set()
    for key in keys - intake:
        newer = {p for p in graph.get(key).parent_keys
                 if p in when and p not in blocked and when[p] > when.get(key, 0.0)}
        if newer:
            out |= {key, *(newer - intake)}
    return out


def failing_blocking_checks(job: dg.JobDefinition, instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    """Assets whose latest execution of a blocking check failed with severity ERROR (Dagster's check storage)."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    graph = job.asset_layer.asset_graph
    checks = [k for k in graph.asset_check_keys if graph.get(k).blocking]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
    out = set()
    for key, record in latest.items():
        if record.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        evaluation = record.evaluation
        if evaluation is None or evaluation.severity == dg.AssetCheckSeverity.ERROR:
            out.add(key.asset_key)
    return out


def execute_incremental(job: dg.JobDefinition, instance: dg.DagsterInstance,
                        execute: Callable[[Sequence[dg.AssetKey] | None, str], Any]) -> list[tuple[str, Any]]:
    """Run the job as described above; ``execute(selection, phase)`` runs it (selection None: the whole job)
    and returns its ExecuteInProcessResult. Returns [(phase, result)] for the runs made."""
    if never_materialised(job, instance):
        return [("whole", execute(None, "whole"))]
    first = execute(intake_keys(job), "intake")
    done = [("intake", first)]
    changed = {e.asset_key for e in first.get_asset_materialization_events()}
    # a blocking check whose latest result failed (in phase 1 or, for a table not reloaded, earlier) holds
    # back what is built on its table, as it would in one run
    blocked = failing_blocking_checks(job, instance)
    selection = rebuild_selection(job, (changed - blocked) | behind(job, instance, blocked))
    if selection:
        done.append(("rebuild", execute(selection, "rebuild")))
    return done
