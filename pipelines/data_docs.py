"""The Data Docs index, rendered once after each run instead of by every check.

An expectation check renders its own suite's pages (quality/expectations.py ``build_data_docs``); the
site's index lists every stored validation, so rendering it in every check made the cost of a run's checks
grow with the history kept (about 0.3 CPU s per check with the demo's 45 suites, of a check's ~0.7). The
``data_docs_index`` sensor renders it once for each run that finished since its cursor (the runs' update
time), in the folder of the run's college; ``hub demo`` and ``hub serve-docs`` render it themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
BATCH = 200  # runs read per tick; the cursor carries on from the last one


def render_indexes(instance: dg.DagsterInstance, quality_dir_of: Callable[[dg.DagsterRun], Path | None],
                   cursor: str | None) -> tuple[list[Path], str | None]:
    """Render the index of every quality folder a run finished since ``cursor`` (an update time, POSIX
    seconds) wrote to; returns the indexes rendered and the new cursor."""
    from quality.expectations import build_docs_index

    since = datetime.fromtimestamp(float(cursor), tz=UTC) if cursor else None
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=FINISHED, updated_after=since),
                                       limit=BATCH, order_by="update_timestamp", ascending=True)
    if not records:
        return [], cursor
    folders: list[Path] = []
    for record in records:
        qdir = quality_dir_of(record.dagster_run)
        if qdir is not None and qdir not in folders:
            folders.append(qdir)
    rendered = [index for qdir in folders if (index := build_docs_index(qdir)) is not None]
    return rendered, str(max(r.update_timestamp.timestamp() for r in records))


def data_docs_index_sensor(quality_dir_of: Callable[[dg.DagsterRun], Path | None]) -> dg.SensorDefinition:
    """``quality_dir_of(run)``: the quality folder the run's checks wrote to (one college's), or None."""

    @dg.sensor(name="data_docs_index", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Renders the Data Docs index once after each finished run (the checks render only "
                           "their own suites' pages), in the run's college's quality folder.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        rendered, cursor = render_indexes(context.instance, quality_dir_of, context.cursor)
        if cursor != context.cursor and cursor is not None:
            context.update_cursor(cursor)
        return dg.SkipReason("rendered " + ", ".join(map(str, rendered)) if rendered else "no new finished run")

    return _sensor
