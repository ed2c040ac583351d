"""A small code location for tests/test_dagster_postgres.py: one asset job that a college's run executes."""

import time

import dagster as dg


@dg.asset(kinds={"python"}, owners=["team:data-platform"],
          description="Stands in for a college's run: holds its slot for a moment and reports its college.")
def college_heartbeat(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    time.sleep(2.0)
    return dg.MaterializeResult(metadata={"college": context.run.tags.get("college", "")})


college_job = dg.define_asset_job("college_job", selection=[college_heartbeat])

defs = dg.Definitions(assets=[college_heartbeat], jobs=[college_job])
