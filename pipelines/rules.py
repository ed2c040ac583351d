"""Party business rules as Dagster asset checks: one check per rule in ``quality/rules.yaml``.

Each check is attached to the warehouse table its rule looks at (the rule's ``entity``) and also waits
for every other table its SQL reads, and for the facts the as-of date is read from when none is set
(``quality.business_rules.AS_OF_SOURCES``): without them in its dependencies the check could run before
they are built and find no date. It runs the rule (replacing the rule's rows in
``quality.rule_violation``), records the outcome in ``quality.check_result`` and passes when the rule
finds nothing. Rules of severity ``error`` are blocking checks with severity ERROR: nothing downstream
of the table is built in that run, and the publish gate refuses while the latest result fails.
``warning`` rules report with severity WARN and never block.
"""

import dagster as dg

from hub.resources import WAREHOUSE_POOL, WarehouseResource
from models.build import model_of
from pipelines.common import record_check
from quality.business_rules import AS_OF_SOURCES, Rule, RulesConfig, load_config, run_rules

SAMPLE_SIZE = 10
DAGSTER_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warning": dg.AssetCheckSeverity.WARN}


def _rule_check(rule: Rule, config: RulesConfig) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey(rule.asset_path)
    reads = {*rule.reads, *(tuple(table.split(".")) for table, _ in AS_OF_SOURCES)}
    deps = sorted({dg.AssetKey(list(model_of(layer, table))) for layer, table in reads} - {asset_key}, key=str)
    thresholds = {k: v for k, v in rule.params.items() if v is not None}

    @dg.asset_check(
        asset=asset_key, name=rule.name, blocking=False, pool=WAREHOUSE_POOL,
        additional_deps=deps,
        description=f"{rule.description} Severity {rule.severity}"
                    f"{' (its records are held back from publishing)' if rule.severity == 'error' else ' (reported)'}; "
                    f"violations in quality.rule_violation (rule = '{rule.name}').",
        metadata={"severity": rule.severity, "sql": f"quality/rules/{rule.sql_name}.sql",
                  "thresholds": dg.MetadataValue.json(thresholds)},
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            run = run_rules(con, [rule.name], config=config)
            found = run.violations[rule.name]
            sample = [{"record_key": k, "org_code": o, "detail": d} for k, o, d in con.execute(
                "SELECT record_key, org_code, detail FROM quality.rule_violation WHERE rule = ? "
                "ORDER BY record_key LIMIT ?", [rule.name, SAMPLE_SIZE]).fetchall()]
            record_check(con, check_name=rule.name, asset="/".join(rule.asset_path), engine="rule",
                         severity=rule.severity, passed=found == 0, unexpected=found,
                         detail={"as_of": run.as_of.isoformat(), "thresholds": thresholds, "sample": sample},
                         run_id=context.run.run_id)
        return dg.AssetCheckResult(
            passed=found == 0, severity=DAGSTER_SEVERITY[rule.severity],
            description=f"{found} violation(s) as of {run.as_of}" if found else f"no violations as of {run.as_of}",
            metadata={"violations": found, "as_of": run.as_of.isoformat(), "severity": rule.severity,
                      "thresholds": dg.MetadataValue.json(thresholds),
                      "sample": dg.MetadataValue.json(sample)})

    return _check


def build_rule_checks(config: RulesConfig | None = None) -> list[dg.AssetChecksDefinition]:
    """One asset check per configured rule (the configuration is read and validated here)."""
    config = config or load_config()
    return [_rule_check(rule, config) for rule in config.rules.values()]


rule_checks = build_rule_checks()
