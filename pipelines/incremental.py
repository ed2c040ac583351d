"""One incremental run of ``campus_main_job``, as ``hub demo`` and the pipeline benchmark execute it in process.

The daemon does this with the automation conditions (pipelines/automation.py): raw loads first, then one
coalesced rebuild of what is downstream of the tables that changed. In process there is no daemon, so the same
rule is applied in two phases of the same job:

1. **intake**: the raw assets and ``settings/as_of`` only. A raw asset whose load brings nothing new does not
   materialise (pipelines/raw.py), nor does the as-of setting when it is unchanged (pipelines/as_of.py).
2. **rebuild**: what is downstream of the assets that materialised in phase 1 (a model is rebuilt when ANY
   of its inputs changed, which Dagster's own skipping of unproduced outputs cannot express: it skips a
   step when any input is missing). Nothing materialised: no second run, and nothing downstream is shown
   as rebuilt.

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
    """Every asset of the job downstream of ``changed``, without the intake assets themselves."""
    if not changed:
        return []
    graph = job.asset_layer.asset_graph
    down = dg.AssetSelection.assets(*changed).downstream().resolve(graph)
    keys = (down & job.asset_layer.executable_asset_keys) - set(intake_keys(job))
    return sorted(keys, key=lambda k: k.to_user_string())


def execute_incremental(job: dg.JobDefinition, instance: dg.DagsterInstance,
                        execute: Callable[[Sequence[dg.AssetKey] | None, str], Any]) -> list[tuple[str, Any]]:
    """Run the job as described above; ``execute(selection, phase)`` runs it (selection None: the whole job)
    and returns its ExecuteInProcessResult. Returns [(phase, result)] for the runs made."""
    if never_materialised(job, instance):
        return [("whole", execute(None, "whole"))]
    first = execute(intake_keys(job), "intake")
    done = [("intake", first)]
    changed = {e.asset_key for e in first.get_asset_materialization_events()}
    # a blocking check that failed in phase 1 holds back what is built on its table, as it would in one run
    changed -= {e.asset_key for e in first.get_asset_check_evaluations()
                if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR and getattr(e, "blocking", True)}
    selection = rebuild_selection(job, changed)
    if selection:
        done.append(("rebuild", execute(selection, "rebuild")))
    return done
