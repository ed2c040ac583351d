"""Declarative automation of everything downstream of the raw assets (issue #16 §6).

The inbox sensor and the daily schedule load raw tables only (and ``settings/as_of``); every staging,
warehouse, mart and publish asset carries :data:`DOWNSTREAM` and one sensor, ``hub_automation`` (on by
default, every 30 s in the daemon), evaluates them and launches what is due in ONE run per tick. Files
dropped in separate ticks therefore become one coalesced rebuild, not one rebuild per drop.

:data:`DOWNSTREAM` is Dagster's ``eager`` (a dependency updated since the asset was last handled, or the
asset newly missing; nothing upstream missing or in progress) and, in addition, no dependency has a blocking
check that failed on its latest materialisation: a failing blocking check holds back what is built on its
table until the table is rebuilt and passes. (Within one run Dagster's own blocking checks gate as before.) The quality tables (pipelines/quality_tables.py) are asset specs that are never materialised:
they are ignored, or every fact that reads ``quality.quarantine`` would wait forever on a "missing" dep.

Nothing is requested for a college while a run of that college is queued or in progress
(:class:`NoRunInFlight`; one college: while any run is). Dagster's own ``~in_progress()`` turns false the
moment a run materialises the asset, while the tick's bounded view of the event log (see
``hub.instance.AUTOMATION_ENV``) does not yet show that materialisation: the asset still looks "updated
since last handled" and was requested again, run after run, while the college's main run went on (seen on
PostgreSQL with two colleges: 5 extra runs queued during one run at scale 0.02; docs/scale-out.md). A run of
the college holds its DuckDB file anyway, so a rebuild requested meanwhile could only wait in the queue;
the tick after the run ends sees everything it wrote. The guard is Python, so the sensor is evaluated in
the code location's server (``use_user_code_server``), where the hub's code runs.
"""

from __future__ import annotations

import warnings

import dagster as dg

from hub.colleges import PARTITION_TAG
from hub.instance import COLLEGE_TAG
from pipelines.jobs import IN_FLIGHT  # queued or running: the run holds its college's DuckDB file, or will

QUALITY = dg.AssetSelection.groups("quality")
INTAKE_GROUPS = ("raw",)  # raw/* and settings/as_of: launched by the inbox sensor and the daily schedule


class NoRunInFlight(dg.AutomationCondition):
    """True for the partitions (colleges) of which no run is queued or in progress; for an unpartitioned
    asset (one college), true while no run at all is. Stateless: reads the run storage on every tick."""

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return "no_run_in_flight"

    @property
    def description(self) -> str:
        return "no run of this college is queued or in progress"

    def evaluate(self, context):
        candidate = context.candidate_subset
        runs = _TickReads.for_tick(context).runs_in_flight()
        if not candidate.is_partitioned:
            return dg.AutomationResult(context, true_subset=context.get_empty_subset() if runs else candidate)
        keys = set(context.partitions_def.get_partition_keys())
        colleges = [r.tags.get(PARTITION_TAG) or r.tags.get(COLLEGE_TAG) for r in runs]
        # a run that names no college (a job over every partition) may write any college's file
        busy = keys if None in colleges else keys & set(colleges)
        held = candidate.compute_intersection_with_partition_keys(busy)
        return dg.AutomationResult(context, true_subset=candidate.compute_difference(held))


class InputNewer(dg.AutomationCondition):
    """True where the asset was never materialised, or one of its materialisable inputs was materialised
    after it (by storage id in the event log, per partition). Eager's memory of "updated since last
    handled" is kept from tick to tick and can miss a reset (seen: a snapshot requested again right after
    the run that built it ended); this reads the event log itself, so a request also needs an input that is
    really newer. Stateless; the latest ids are read once per tick and asset."""

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return "input_newer"

    @property
    def description(self) -> str:
        return "never built, or an input was materialised after it"

    def evaluate(self, context):
        graph, candidate = context.asset_graph, context.candidate_subset
        latest = _TickReads.for_tick(context)
        mine = latest.of(context.key)
        inputs = [latest.of(k) for k in graph.get(context.key).parent_keys
                  if graph.has(k) and graph.get(k).is_materializable]
        if not candidate.is_partitioned:
            due = mine.get(None) is None or any(i.get(None, 0) > mine[None] for i in inputs)
            return dg.AutomationResult(context, true_subset=candidate if due else context.get_empty_subset())
        due = {pk for pk in candidate.expensively_compute_partition_keys()
               if pk not in mine or any(i.get(pk, 0) > mine[pk] for i in inputs)}
        return dg.AutomationResult(context, true_subset=candidate.compute_intersection_with_partition_keys(due))


class _TickReads:
    """What the guards read from the instance, once per tick (an evaluation time) and shared by the assets
    evaluated in it: the runs in flight, and the latest materialisation storage id of each asset (per
    partition key; None without partitions)."""

    _tick: tuple | None = None
    _current: _TickReads | None = None

    def __init__(self, context) -> None:
        self.instance = context.asset_graph_view.instance
        self.graph = context.asset_graph
        self.ids: dict[dg.AssetKey, dict[str | None, int]] = {}
        self._runs: list | None = None

    def runs_in_flight(self) -> list:
        if self._runs is None:
            self._runs = list(self.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus[s] for s in IN_FLIGHT])))
        return self._runs

    @classmethod
    def for_tick(cls, context) -> _TickReads:
        tick = (id(context.asset_graph_view.instance), context.evaluation_time)
        if cls._tick != tick or cls._current is None:
            cls._tick, cls._current = tick, cls(context)
        return cls._current

    def of(self, key: dg.AssetKey) -> dict[str | None, int]:
        if key not in self.ids:
            if self.graph.get(key).partitions_def is not None:
                self.ids[key] = dict(self.instance.get_latest_storage_id_by_partition(
                    key, dg.DagsterEventType.ASSET_MATERIALIZATION))
            else:
                [record] = self.instance.get_asset_records([key]) or [None]
                last = record.asset_entry.last_materialization_record if record else None
                self.ids[key] = {None: last.storage_id} if last else {}
        return self.ids[key]


DOWNSTREAM: dg.AutomationCondition = (
    dg.AutomationCondition.eager()
    & ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
        .with_label("a blocking check failed")).with_label("any dep's blocking check failed")
    & NoRunInFlight()
    & InputNewer()
).ignore(QUALITY).with_label("eager, held back by failing blocking checks and by a run of the college in flight, "
                             "and only when an input is newer")


def with_downstream_conditions(assets: list) -> list:
    """The assets, with :data:`DOWNSTREAM` on every spec outside the intake group."""
    return list(dg.map_asset_specs(
        lambda spec: spec if spec.group_name in INTAKE_GROUPS else spec.replace_attributes(
            automation_condition=DOWNSTREAM), assets))


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    with warnings.catch_warnings():  # use_user_code_server is beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.AutomationConditionSensorDefinition(
            "hub_automation", target=dg.AssetSelection.all() - dg.AssetSelection.groups(*INTAKE_GROUPS) - QUALITY,
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
            use_user_code_server=True,  # NoRunInFlight is the hub's own Python
            description="Rebuilds what is downstream of raw tables that changed (loaded by the inbox sensor or the "
                        "daily schedule, or materialised from the UI), in one run per tick: several file drops "
                        "become one update. Held back while a blocking check of an input fails, and while a run "
                        "of the college is queued or in progress; a model is requested only when an input was "
                        "materialised after it.")
