"""The blocking check of each staging model: is the share of its rows that staging quarantined systemic?

A row quarantined in staging is a problem of that row: it is kept out with its reason and stops nothing
(copies of a row and superseded versions are not counted: ``quality.blocking.NOT_FAULTS``).
When the share of an entity's rows kept out is above its threshold (``HUB_QUARANTINE_MAX_RATE``, default
2 %, per entity ``HUB_QUARANTINE_MAX_RATE_BY_ENTITY``), or the entity has no rows at all, the problem is
the export or the feed, not a row: the check fails with severity ERROR and, being blocking, Dagster
skips only what is built on that staging table; every other branch of the run goes on, and the datasets
held back keep their previous published version (quality/blocking.py has the whole policy).
"""

import dagster as dg

from hub.resources import WAREHOUSE_POOL, QualityResource, WarehouseResource
from models.build import STAGING_MODELS
from pipelines.common import record_check
from quality.blocking import quarantine_rate

CHECK_NAME = "quarantine_rate"


def _quarantine_rate_check(name: str) -> dg.AssetChecksDefinition:
    model = STAGING_MODELS[name]
    entity = f"{model.source}.{model.entity}"

    @dg.asset_check(
        asset=dg.AssetKey(["staging", name]), name=CHECK_NAME, blocking=True, pool=WAREHOUSE_POOL,
        description=f"Systemic problems of {entity}: the share of its rows staging quarantined is at most the "
                    "threshold (HUB_QUARANTINE_MAX_RATE, default 2%, per entity HUB_QUARANTINE_MAX_RATE_BY_ENTITY) "
                    "and the entity is not missing altogether. Blocking: on failure only what is built on "
                    f"staging.{name} is held back.",
        metadata={"entity": entity},
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
               quality: QualityResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            r = quarantine_rate(con, source=model.source, entity=model.entity, staging_table=name,
                                threshold=quality.max_rate(entity))
            record_check(con, check_name=CHECK_NAME, asset=f"staging/{name}", engine="sql", severity="error",
                         passed=r.passed, evaluated=r.rows, unexpected=r.quarantined,
                         detail={"rate": round(r.rate, 6), "threshold": r.threshold, "by_rule": r.by_rule,
                                 "missing": r.missing, "look_at": r.look_at(), "sample": r.samples},
                         run_id=context.run.run_id)
        if not r.passed:
            context.log.error(f"{r.describe()}: staging.{name} holds back what is built on it; look at: {r.look_at()}")
        return dg.AssetCheckResult(
            passed=r.passed, severity=dg.AssetCheckSeverity.ERROR, description=r.describe(),
            metadata={"rows": r.rows, "staged": r.staged, "quarantined": r.quarantined,
                      "rate": round(r.rate, 6), "threshold": r.threshold, "missing": r.missing,
                      "by_rule": dg.MetadataValue.json(r.by_rule), "sample": dg.MetadataValue.json(r.samples),
                      "table": f"staging.{name}", "look_at": dg.MetadataValue.md(f"```sql\n{r.look_at()}\n```")})

    return _check


quarantine_rate_checks = [_quarantine_rate_check(n) for n in STAGING_MODELS]
