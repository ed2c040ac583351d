"""The publish gate: what Dagster's check storage says about the checks a dataset is built on.

A published dataset is held back — the publisher is not called, its current version stays — while a
**blocking** asset check on any asset it is built from (its ancestors in the asset graph) has not passed
against that asset's current data. For each such check the gate reads the latest completed evaluation from
the Dagster instance (``event_log_storage.get_latest_asset_check_execution_by_key``; a run still planned or
skipped falls back to the last completed one) and judges it:

* **passed** — the evaluation passed, or failed with severity WARN (Dagster itself lets downstream run
  after a WARN: row-level findings report, they never stop anything; ``quality/blocking.py``);
* **failed** — it failed with severity ERROR: held back, as Dagster holds back the steps downstream;
* **not evaluated** — the check never completed an evaluation: held back. A check that has not looked at
  the data has not passed;
* **stale** — its evaluation is older than its asset's latest materialization (the evaluation targeted
  another materialization: ``AssetCheckEvaluation.target_materialization_data``), or older than the latest
  materialization of an asset the check also reads (``additional_deps``): held back. An evaluation of
  yesterday's table says nothing about today's.

Non-blocking checks never hold a table back; they are listed in the manifest with their state.

The business rules judge records, not tables (their checks are not blocking): a dataset whose query reads
``quality.rule_violation`` leaves out the records breaking an error-severity rule, as the rule checks wrote
them. It is published only when every error-rule check evaluated the current data of the tables it reads
(:func:`rule_states`); else it is refused with one line — the rules are not run a second time here.

``quality.check_result`` is history for analysts (each check appends to it); it decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._check import CheckError
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    AssetCheckExecutionRecord,
)

PASSED, FAILED, NOT_EVALUATED, STALE = "passed", "failed", "not evaluated", "stale"


@dataclass(frozen=True)
class CheckState:
    """One check as the instance knows it, judged against its asset's current data."""

    key: dg.AssetCheckKey
    blocking: bool
    state: str                  # passed | failed | not evaluated | stale
    severity: str | None        # ERROR or WARN of the evaluation (None: none completed)
    run_id: str | None          # the run of the evaluation
    description: str | None = None

    @property
    def name(self) -> str:
        return f"{self.key.asset_key.to_user_string()}:{self.key.name}"

    @property
    def current(self) -> bool:
        """The check evaluated the data its asset holds now."""
        return self.state in (PASSED, FAILED)

    @property
    def holds_back(self) -> bool:
        """A blocking check that failed with severity ERROR, or has not evaluated the current data."""
        return self.blocking and (not self.current or (self.state == FAILED and self.severity == "ERROR"))

    def line(self) -> str:
        if self.state == NOT_EVALUATED:
            return f"{self.name} never evaluated"
        if self.state == STALE:
            return f"{self.name} not evaluated since its data last changed (last run {self.run_id})"
        return f"{self.name} {self.state}" + (f" ({self.severity})" if self.state == FAILED else "")

    def manifest_entry(self) -> str:
        return f"{self.name}:{self.state}:{(self.severity or 'none').lower()}"


def latest_evaluations(instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey],
                       ) -> dict[dg.AssetCheckKey, AssetCheckExecutionRecord | None]:
    """The latest completed evaluation of each check (None: never completed). One query for all checks; a
    check whose latest execution is only planned (in progress, skipped, or its step failed) falls back to
    its last completed one."""
    storage = instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(list(keys)) if keys else {}
    out: dict[dg.AssetCheckKey, AssetCheckExecutionRecord | None] = {}
    for key in keys:
        record = latest.get(key)
        if record is not None and record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
            older = storage.get_asset_check_execution_history(
                key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES)
            record = older[0] if older else None
        out[key] = record
    return out


def check_states(instance: dg.DagsterInstance, checks: Mapping[dg.AssetCheckKey, tuple[bool, Iterable[dg.AssetKey]]],
                 ) -> list[CheckState]:
    """Each check (key -> (blocking, the other assets it reads)) judged against the latest materializations in
    the instance, sorted by name."""
    keys = sorted(checks, key=lambda k: (k.asset_key.to_user_string(), k.name))
    evaluations = latest_evaluations(instance, keys)
    assets = sorted({k.asset_key for k in keys} | {d for _, deps in checks.values() for d in deps}, key=str)
    materialized = {r.asset_entry.asset_key: r.asset_entry.last_materialization_record
                    for r in (instance.get_asset_records(assets) if assets else [])}
    out = []
    for key in keys:
        blocking, deps = checks[key]
        record = evaluations[key]
        evaluation = record.evaluation if record is not None else None
        if record is None or evaluation is None or record.event is None:
            out.append(CheckState(key, blocking, NOT_EVALUATED, None, None))
            continue
        at = record.event.timestamp
        target = materialized.get(key.asset_key)
        if target is not None:
            aimed = evaluation.target_materialization_data
            current = aimed.storage_id == target.storage_id if aimed is not None else target.timestamp < at
        else:
            current = True  # an asset Dagster never materialised: the evaluation is of what there is
        current = current and all(m is None or m.timestamp < at
                                  for m in (materialized.get(d) for d in deps if d != key.asset_key))
        state = (PASSED if evaluation.passed else FAILED) if current else STALE
        out.append(CheckState(key, blocking, state, evaluation.severity.value, record.run_id,
                              evaluation.description))
    return out


def full_asset_graph(context: dg.AssetExecutionContext):
    """The asset graph of everything the run's definitions hold, not only what the run selected (a job's
    own graph lacks the checks of the assets it does not select): the code location's graph for runs
    launched by the UI, a schedule, a sensor or automation; for a run executed in this process the graph
    of the job its selection was taken from (``hub demo`` runs the whole main job;
    ``job.execute_in_process(asset_selection=...)`` keeps its parent job). ``dg.materialize(...,
    selection=...)`` builds a job of the selection alone, so there only the checks of what it was given
    and selected are seen."""
    try:
        return context.repository_def.asset_graph
    except CheckError:  # no repository on the step context: an in-process run
        pass
    job = context.job_def
    while job.asset_selection_data is not None:
        job = job.asset_selection_data.parent_job_def
    return job.asset_layer.asset_graph


def upstream_checks(asset_graph, asset_key: dg.AssetKey,
                    ) -> dict[dg.AssetCheckKey, tuple[bool, tuple[dg.AssetKey, ...]]]:
    """Every check in ``asset_graph`` on an asset ``asset_key`` is built from: key -> (blocking, other
    assets it reads)."""
    ancestors = set(asset_graph.get_ancestor_asset_keys(asset_key)) - {asset_key}
    out = {}
    for key in asset_graph.asset_check_keys:
        if key.asset_key in ancestors:
            spec = asset_graph.get_check_spec(key)
            out[key] = (spec.blocking, tuple(d.asset_key for d in spec.additional_deps))
    return out


def rule_checks_needed(config=None) -> dict[dg.AssetCheckKey, tuple[bool, tuple[dg.AssetKey, ...]]]:
    """The checks of the error-severity business rules (their violations are what a dataset reading
    ``quality.rule_violation`` leaves out), with the tables each rule reads; not blocking. ``config``: the
    run's rules (``run_settings.rules()``); default quality/rules.yaml."""
    from pipelines.rules import rule_check_deps
    from quality.business_rules import load_config

    config = config or load_config()
    return {dg.AssetCheckKey(dg.AssetKey(rule.asset_path), rule.name): (False, tuple(rule_check_deps(rule)))
            for rule in config.rules.values() if rule.severity == "error"}


def rule_inputs() -> set[dg.AssetKey]:
    """The assets the error-severity rule checks evaluate: what a dataset reading their violations waits for."""
    return {k.asset_key for k in rule_checks_needed()} | {d for _, deps in rule_checks_needed().values() for d in deps}
