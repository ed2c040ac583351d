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
"""

from __future__ import annotations

import dagster as dg

QUALITY = dg.AssetSelection.groups("quality")
INTAKE_GROUPS = ("raw",)  # raw/* and settings/as_of: launched by the inbox sensor and the daily schedule

DOWNSTREAM: dg.AutomationCondition = (
    dg.AutomationCondition.eager()
    & ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
        .with_label("a blocking check failed")).with_label("any dep's blocking check failed")
).ignore(QUALITY).with_label("eager, held back by failing blocking checks")


def with_downstream_conditions(assets: list) -> list:
    """The assets, with :data:`DOWNSTREAM` on every spec outside the intake group."""
    return list(dg.map_asset_specs(
        lambda spec: spec if spec.group_name in INTAKE_GROUPS else spec.replace_attributes(
            automation_condition=DOWNSTREAM), assets))


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "hub_automation", target=dg.AssetSelection.all() - dg.AssetSelection.groups(*INTAKE_GROUPS) - QUALITY,
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
        description="Rebuilds what is downstream of raw tables that changed (loaded by the inbox sensor or the "
                    "daily schedule, or materialised from the UI), in one run per tick: several file drops "
                    "become one update. Held back while a blocking check of an input fails.")
