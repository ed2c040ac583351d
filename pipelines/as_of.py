"""The date the marts and the warehouse's date judgements measure against, as an asset (``settings/as_of``).

The as-of date is the ``run_settings`` resource's ``as_of`` (HUB_AS_OF by default; the launchpad may set
another) when set, else the latest date in the data (models/standards.py), and the
marts also read the assessment standards file. A new day with no new data changes nothing unless one of
these settings changed; when one does, the models that depend on it must be evaluated again although no
source brought anything. This asset makes that visible to Dagster: its data version is the as-of setting
plus the standards file's sha256, and it materialises only when that version differs from its latest
materialisation (the first time, or after HUB_AS_OF or the standards changed). The date-dependent models
(``marts/mart_parameters``, which every other mart reads, and ``warehouse/fact_relation_transfer``, whose
``receipt_overdue`` is judged against the date) depend on it, so the automation conditions and the
incremental run (pipelines/incremental.py) rebuild them and what is built on them, with their checks.
It runs with the raw assets: in the inbox and daily jobs and the first phase of an incremental run.
"""


import hashlib
from pathlib import Path

import dagster as dg

from hub.resources import RunSettingsResource
from pipelines.common import OWNER
from pipelines.raw import downstream_in_run

AS_OF_KEY = dg.AssetKey(["settings", "as_of"])
# The models whose SQL reads the as-of date (getvariable('hub_as_of')); every other mart reads mart_parameters.
DATE_DEPENDENT = (dg.AssetKey(["marts", "mart_parameters"]), dg.AssetKey(["warehouse", "fact_relation_transfer"]))


def as_of_version(run_settings: RunSettingsResource) -> tuple[str, str]:
    """(data version, the as-of setting shown): the run's as-of setting and its standards file's sha256."""
    as_of = run_settings.as_of_date()
    shown = as_of.isoformat() if as_of else "latest date in the data"
    sha = hashlib.sha256(Path(run_settings.standards_file).read_bytes()).hexdigest()
    return f"{shown}|{sha[:16]}", shown


@dg.asset(
    key=AS_OF_KEY, group_name="raw", kinds={"python"}, owners=[OWNER], tags={"layer": "settings"},
    output_required=False,
    description="The as-of date the marts and the warehouse's date judgements use (run_settings.as_of, HUB_AS_OF, else the "
                "latest date in the data) and the assessment standards file. Materialises only when either changed, so "
                "that the date-dependent models are rebuilt on a new as-of day although no source brought "
                "anything new.",
    metadata={"setting": "run_settings.as_of (HUB_AS_OF)", "standards_file": "run_settings.standards_file"},
)
def as_of(context: dg.AssetExecutionContext, run_settings: RunSettingsResource):
    version, shown = as_of_version(run_settings)
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    record = context.instance.get_latest_data_version_record(AS_OF_KEY, is_source=False)
    found = extract_data_version_from_entry(record.event_log_entry) if record else None
    previous = found.value if found else None
    if previous == version and not downstream_in_run(context):  # a whole-job run still materialises it, or
        # Dagster would skip the date-dependent models (and every mart after mart_parameters) in that run
        context.log.info(f"as-of setting unchanged ({shown}): not materialised, the date-dependent models are "
                         "not rebuilt for it")
        return
    yield dg.MaterializeResult(data_version=dg.DataVersion(version),
                               metadata={"as_of": shown, "previous": str(previous), "standards_sha256": version[-16:]})
