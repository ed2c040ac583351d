"""The party office's report (``var/report/index.html``) as an asset downstream of the marts it reads.

Every job that rebuilds a mart selects what is downstream of it, so the report is rebuilt in the same run
whenever a mart changes: ``campus_main_job`` (all assets), ``inbox_load_job`` and ``api_sql_refresh_job``
(their raw assets and everything downstream). A mart materialised alone (from the UI, or by any run that
leaves the report out) is caught by the report's automation condition (``eager``: a mart it reads was
updated, none is missing or in progress), evaluated by the ``party_report_automation`` sensor, which is on
by default and launches the report alone. Right after ``make demo`` it launches nothing: the report is
newer than every mart.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

from hub.resources import WAREHOUSE_POOL, WarehouseResource
from pipelines.common import OWNER

REPORT_KEY = dg.AssetKey(["publish", "party_report"])


def marts_read_by_report() -> set[str]:
    """The marts the report's SQL reads (found in hub/report.py, so a new chart cannot forget its input)."""
    import hub.report

    return set(re.findall(r"\bmarts\.(mart_\w+)", Path(hub.report.__file__).read_text(encoding="utf-8")))


def party_report_asset(mart_keys: list[dg.AssetKey], out_dir: Path) -> dg.AssetsDefinition:
    read = marts_read_by_report()
    deps = sorted((k for k in mart_keys if k.path[-1] in read), key=str)
    missing = read - {k.path[-1] for k in deps}
    if missing:
        raise ValueError(f"hub/report.py reads marts that are not assets: {sorted(missing)}")

    @dg.asset(
        key=REPORT_KEY, group_name="publish", kinds={"html"}, owners=[OWNER], deps=deps, pool=WAREHOUSE_POOL,
        automation_condition=dg.AutomationCondition.eager(),
        tags={"layer": "publish", "audience": "party_office"},
        description="The party office's offline HTML report (key figures, structure, development funnel, "
                    "三会一课 compliance, assessments, learning, what needs attention), rebuilt from the marts.",
    )
    def _report(warehouse: WarehouseResource) -> dg.MaterializeResult:
        from hub.report import build_report

        with warehouse.connect(read_only=True) as con:
            # a college's run (hub/colleges.py) writes its own college's report
            path = build_report(con, Path(warehouse.var_dir) / "report" if warehouse.var_dir else out_dir)
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)),
                                              "bytes": path.stat().st_size,
                                              "marts": dg.MetadataValue.json(sorted(read))})

    return _report


def report_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates the report's automation condition in the daemon (`make ui`), every minute."""
    return dg.AutomationConditionSensorDefinition(
        "party_report_automation", target=dg.AssetSelection.assets(REPORT_KEY),
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
        description="Rebuilds publish/party_report when a mart it reads was materialised by a run that left the "
                    "report out (e.g. one mart materialised from the UI).")
