"""Party business rules as Dagster asset checks: one check per rule in ``quality/rules.yaml``.

Each check is attached to the warehouse table its rule looks at (the rule's ``entity``) and also waits
for every other table its SQL reads, and for the tables the as-of date is read from when none is set.
It runs the rule (replacing the rule's rows in ``quality.rule_violation``), appends the outcome to
``quality.check_result`` (history for analysts) and passes when the rule finds nothing. This is the only
place the rules run. They are judged at the run's as-of date (the ``run_settings`` resource's ``as_of``,
HUB_AS_OF, which the launchpad overrides; empty: rules.yaml's, else the data's latest date), with the
thresholds of the run's rules file (``run_settings.rules_file``).

Rules judge records, not tables, so no rule check is blocking (``quality/blocking.py``): an ``error`` rule
fails with severity ERROR and its records are held back from the datasets that read
``quality.rule_violation`` (the national development table), while the table itself and everything built
on it go on; a ``warning`` rule reports with severity WARN. Such a dataset is published only when Dagster's
check storage shows every error-rule check evaluated the current data (``pipelines/gate.py``); the checks
carry a higher ``dagster/priority`` so that, in a run, they execute as soon as their tables are built,
before the datasets that read their violations.
"""

import dagster as dg

from hub.resources import WAREHOUSE_POOL, RunSettingsResource, WarehouseResource
from models.build import model_of
from pipelines.automation import QUALITY
from pipelines.common import record_check
from quality.business_rules import AS_OF_SOURCES, Rule, RuleConfigError, RulesConfig, load_config, run_rules

SAMPLE_SIZE = 10
# Through the daemon (pipelines/automation.py) a rule check runs with its table, and also on its own when
# another table it reads changed (the facts its as-of date comes from): otherwise its last evaluation is
# stale for the publish gate until its own table is rebuilt.
RULE_CHECK_CONDITION = dg.AutomationCondition.eager().ignore(QUALITY).with_label(
    "eager: its table or a table it reads updated")
DAGSTER_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warning": dg.AssetCheckSeverity.WARN}
# Ready steps run highest priority first: a rule check before the publish step that reads its violations.
PRIORITY = "10"
# Without a configured as-of date, the rules take the data's latest date from these tables: every rule
# check reads them (quality.business_rules.data_as_of), so it waits for them too.
AS_OF_DEPS = {dg.AssetKey(list(model_of(*table.split(".")))) for table, _ in AS_OF_SOURCES}


def rule_check_deps(rule: Rule) -> list[dg.AssetKey]:
    """The assets a rule check reads besides the table it is attached to: those its SQL reads, and those
    the as-of date is read from."""
    asset_key = dg.AssetKey(rule.asset_path)
    reads = {dg.AssetKey(list(model_of(layer, table))) for layer, table in rule.reads}
    return sorted((reads | AS_OF_DEPS) - {asset_key}, key=str)


def _rule_check(rule: Rule, config: RulesConfig) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey(rule.asset_path)
    deps = rule_check_deps(rule)
    thresholds = {k: v for k, v in rule.params.items() if v is not None}

    @dg.asset_check(
        asset=asset_key, name=rule.name, blocking=False, pool=WAREHOUSE_POOL,
        additional_deps=deps, op_tags={"dagster/priority": PRIORITY}, automation_condition=RULE_CHECK_CONDITION,
        description=f"{rule.description} Severity {rule.severity}"
                    f"{' (its records are held back from publishing)' if rule.severity == 'error' else ' (reported)'}; "
                    f"violations in quality.rule_violation (rule = '{rule.name}').",
        metadata={"severity": rule.severity, "sql": f"quality/rules/{rule.sql_name}.sql",
                  "thresholds": dg.MetadataValue.json(thresholds)},
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
               run_settings: RunSettingsResource) -> dg.AssetCheckResult:
        # the run's rules file (its thresholds may differ from the one the definitions were built from)
        run_config = run_settings.rules()
        if rule.name not in run_config.rules:
            raise RuleConfigError(f"{run_config.path}: has no rule {rule.name!r}, which this check runs")
        used = {k: v for k, v in run_config.rules[rule.name].params.items() if v is not None}
        with warehouse.connect() as con:
            run = run_rules(con, [rule.name], config=run_config, as_of=run_settings.as_of_date())
            found = run.violations[rule.name]
            sample = [{"record_key": k, "org_code": o, "detail": d} for k, o, d in con.execute(
                "SELECT record_key, org_code, detail FROM quality.rule_violation WHERE rule = ? "
                "ORDER BY record_key LIMIT ?", [rule.name, SAMPLE_SIZE]).fetchall()]
            record_check(con, check_name=rule.name, asset="/".join(rule.asset_path), engine="rule",
                         severity=rule.severity, passed=found == 0, unexpected=found,
                         detail={"as_of": run.as_of.isoformat(), "thresholds": used, "sample": sample},
                         run_id=context.run.run_id)
        return dg.AssetCheckResult(
            passed=found == 0, severity=DAGSTER_SEVERITY[rule.severity],
            description=f"{found} violation(s) as of {run.as_of}" if found else f"no violations as of {run.as_of}",
            metadata={"violations": found, "as_of": run.as_of.isoformat(), "severity": rule.severity,
                      "thresholds": dg.MetadataValue.json(used),
                      "sample": dg.MetadataValue.json(sample)})

    return _check


def build_rule_checks(config: RulesConfig | None = None) -> list[dg.AssetChecksDefinition]:
    """One asset check per configured rule (the configuration is read and validated here; hub/factory.py
    passes the one HUB_RULES_FILE names)."""
    config = config or load_config()
    return [_rule_check(rule, config) for rule in config.rules.values()]


rule_checks = build_rule_checks()
