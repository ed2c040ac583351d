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

from pathlib import Path

import dagster as dg

from hub.resources import WAREHOUSE_POOL, RunSettingsResource, WarehouseResource
from models.build import model_of
from pipelines.automation import QUALITY
from pipelines.common import record_check
from pipelines.content import (
    copy_history,
    file_digest,
    inputs_fingerprint,
    last_evaluation,
    remember,
    reused_result,
)
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
AS_OF_TABLES = {tuple(table.split(".", 1)) for table, _ in AS_OF_SOURCES}
# The code that evaluates a rule: part of what a reused verdict must have been evaluated with.
EVALUATOR = tuple(Path(__file__).resolve().parent.parent / f
                  for f in ("quality/business_rules.py", "pipelines/rules.py", "models/sql/macros.sql"))


def _violations_fingerprint(con, rule: str) -> str:
    """The rule's rows in quality.rule_violation as they are (a reused verdict needs them unchanged)."""
    return str(con.execute("SELECT count(*), coalesce(sum(hash(v)::HUGEINT), 0) FROM quality.rule_violation AS v "
                           "WHERE rule = ?", [rule]).fetchone())


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
        run_rule = run_config.rules[rule.name]
        used = {k: v for k, v in run_rule.params.items() if v is not None}
        as_of = run_settings.as_of_date()
        check_key = f"{'/'.join(rule.asset_path)}:{rule.name}"
        run_id = context.run.run_id
        with warehouse.connect() as con:
            # the same tables, rule, code and as-of setting as its last real evaluation, and its rows in
            # quality.rule_violation as that evaluation left them: the verdict stands (pipelines/content.py)
            tables = {tuple(rule.entity.split(".", 1)), *run_rule.reads, *AS_OF_TABLES}
            inputs = inputs_fingerprint(con, tables, {
                "rule": [run_rule.severity, run_rule.entity, run_rule.sql, used], "as_of": as_of or run_config.as_of,
                "code": file_digest(*EVALUATOR)}, run_id)
            last = last_evaluation(con, check_key, inputs)
            if last is not None and last.guard.get("violations") == _violations_fingerprint(con, rule.name):
                copy_history(con, last, run_id, assets=["/".join(rule.asset_path)], check_names=[rule.name])
                context.log.info(f"{check_key}: inputs unchanged since run {last.run_id}; its verdict is reused")
                return reused_result(last)
            run = run_rules(con, [rule.name], config=run_config, as_of=as_of)
            found = run.violations[rule.name]
            sample = [{"record_key": k, "org_code": o, "detail": d} for k, o, d in con.execute(
                "SELECT record_key, org_code, detail FROM quality.rule_violation WHERE rule = ? "
                "ORDER BY record_key LIMIT ?", [rule.name, SAMPLE_SIZE]).fetchall()]
            record_check(con, check_name=rule.name, asset="/".join(rule.asset_path), engine="rule",
                         severity=rule.severity, passed=found == 0, unexpected=found,
                         detail={"as_of": run.as_of.isoformat(), "thresholds": used, "sample": sample},
                         run_id=run_id)
            result = dg.AssetCheckResult(
                passed=found == 0, severity=DAGSTER_SEVERITY[rule.severity],
                description=f"{found} violation(s) as of {run.as_of}" if found else f"no violations as of {run.as_of}",
                metadata={"violations": found, "as_of": run.as_of.isoformat(), "severity": rule.severity,
                          "thresholds": dg.MetadataValue.json(used),
                          "sample": dg.MetadataValue.json(sample)})
            remember(con, check_key, inputs, result, run_id,
                     guard={"violations": _violations_fingerprint(con, rule.name)})
        return result

    return _check


def build_rule_checks(config: RulesConfig | None = None) -> list[dg.AssetChecksDefinition]:
    """One asset check per configured rule (the configuration is read and validated here; hub/factory.py
    passes the one HUB_RULES_FILE names)."""
    config = config or load_config()
    return [_rule_check(rule, config) for rule in config.rules.values()]


rule_checks = build_rule_checks()
