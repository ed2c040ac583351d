"""Party business rules as SQL checks: each rule is one SELECT whose rows are its violations.

``quality/rules.yaml`` names the rules, their severity (``error`` blocks publishing, ``warning`` is
reported), the warehouse table each looks at (``entity``) and their thresholds (``params``);
``quality/rules/<sql>.sql`` holds the SELECT, which returns the columns of ``quality.rule_violation``
(rule, severity, entity, record_key, person_key, org_code, detail) with every parameter bound by name
(``$min_age_years``) and ``$rule``, ``$severity``, ``$entity`` and ``$as_of`` always bound.

``run_rules`` runs them set-based in one transaction: each rule's rows in ``quality.rule_violation`` are
deleted and inserted again, so a rerun never adds duplicates and a fixed record disappears.

The date rules are judged at (``as_of``) is never the clock: an explicit argument (in Dagster the
``run_settings`` resource's ``as_of``, which HUB_AS_OF sets and the launchpad overrides), else ``as_of`` in
the configuration, else the latest date present in the data.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import yaml

RULES_FILE = Path(__file__).with_name("rules.yaml")
RULES_DIR = Path(__file__).with_name("rules")
SEVERITIES = ("error", "warning")
BUILT_IN_PARAMS = ("rule", "severity", "entity", "as_of")
OUTPUT_COLUMNS = ("rule", "severity", "entity", "record_key", "person_key", "org_code", "detail")
RULE_KEYS = {"severity", "entity", "description", "params", "sql"}

# Where the data's own latest date is read when no as_of is configured: (table, date column). Things
# that happened (a meeting held, dues paid), not dates typed into a register: a mistyped future
# milestone must not move every rule.
AS_OF_SOURCES = (
    ("warehouse.fact_org_activity", "meeting_date"),
    ("warehouse.fact_dues_payment", "paid_on"),
)

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class RuleConfigError(ValueError):
    """The rules configuration or a rule's SQL is not usable."""


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str                  # error | warning
    entity: str                    # the table the rule looks at, e.g. warehouse.dim_party_member
    description: str
    sql_name: str                  # quality/rules/<sql_name>.sql
    sql: str
    params: dict = field(default_factory=dict)

    @property
    def asset_path(self) -> list[str]:
        """Dagster asset key of the entity: warehouse.dim_party_org -> ["warehouse", "dim_party_org"]."""
        return self.entity.split(".")

    @property
    def reads(self) -> list[tuple[str, str]]:
        """(schema, table) the SQL reads, from the SQL parser (models/sqlrefs.py), sorted."""
        from models.sqlrefs import table_refs

        return sorted(table_refs(self.sql, where=f"quality/rules/{self.sql_name}.sql").reads)

    def bind(self, as_of: date) -> dict:
        """The named parameters of the SQL: thresholds, the built-ins, and nothing it does not use."""
        values = {**self.params, "rule": self.name, "severity": self.severity, "entity": self.entity,
                  "as_of": as_of}
        return {k: values[k] for k in dict.fromkeys(_PARAM.findall(self.sql))}


@dataclass(frozen=True)
class RulesConfig:
    rules: dict[str, Rule]
    as_of: date | None = None
    path: Path | None = None


@dataclass(frozen=True)
class RuleRun:
    """What one run found: violations per rule, each rule's severity, and the as_of used."""

    as_of: date
    violations: dict[str, int]
    severity: dict[str, str]

    @property
    def by_severity(self) -> dict[str, int]:
        totals = Counter({s: 0 for s in SEVERITIES})
        for rule, n in self.violations.items():
            totals[self.severity[rule]] += n
        return dict(totals)

    @property
    def failing(self) -> dict[str, int]:
        return {r: n for r, n in self.violations.items() if n}


def _date(value: object, where: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RuleConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _from_standards(ref: dict, where: str, standards_file: str | Path | None = None) -> object:
    """A param written ``{standards: organisations.term_warning_days}`` takes its value from the standards
    file the marts apply (models/assessment_standards.yaml), so that a rule and the
    mart that shows the same thing can never use two thresholds."""
    from models.standards import STANDARDS_FILE, StandardsError, load_standards

    standards_file = standards_file or STANDARDS_FILE

    if set(ref) != {"standards"} or not isinstance(ref["standards"], str):
        raise RuleConfigError(f"{where}: a mapping param is {{standards: <dotted key of the standards file>}}")
    try:
        value: object = load_standards(standards_file)
    except StandardsError as exc:
        raise RuleConfigError(f"{where}: {exc}") from None
    for part in ref["standards"].split("."):
        if not isinstance(value, dict) or part not in value:
            raise RuleConfigError(f"{where}: the standards file has no {ref['standards']!r}")
        value = value[part]
    return value


def load_config(path: str | Path | None = None, rules_dir: str | Path | None = None, *,
                standards_file: str | Path | None = None) -> RulesConfig:
    """Read and validate the rules configuration (default ``quality/rules.yaml``; a run's is the
    ``run_settings`` resource's ``rules_file``, HUB_RULES_FILE). ``{standards: …}`` params are read from
    ``standards_file`` (default models/assessment_standards.yaml).

    Fails on an unknown severity or key, a missing SQL file, or a ``$param`` the SQL uses that the
    configuration does not give: a mistake shows when the definitions load, not mid-run."""
    path = Path(path or RULES_FILE)
    rules_dir = Path(rules_dir or RULES_DIR)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleConfigError(f"cannot read the rules configuration {path}: {exc}") from None
    if not isinstance(raw.get("rules"), dict) or not raw["rules"]:
        raise RuleConfigError(f"{path}: needs a 'rules' mapping")
    rules = {}
    for name, spec in raw["rules"].items():
        where = f"{path}: rule {name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            raise RuleConfigError(f"{where}: a rule name is lower-case letters, digits and _")
        spec = spec or {}
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise RuleConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}")
        severity = spec.get("severity")
        if severity not in SEVERITIES:
            raise RuleConfigError(f"{where}: severity must be one of {SEVERITIES}, not {severity!r}")
        entity = str(spec.get("entity", ""))
        if not re.fullmatch(r"(staging|warehouse)\.[a-z_][a-z0-9_]*", entity):
            raise RuleConfigError(f"{where}: entity must name a table, e.g. warehouse.dim_party_org")
        sql_name = str(spec.get("sql") or name)
        sql_path = rules_dir / f"{sql_name}.sql"
        if not sql_path.is_file():
            raise RuleConfigError(f"{where}: no SQL file {sql_path}")
        params = dict(spec.get("params") or {})
        for key, value in params.items():
            if key in BUILT_IN_PARAMS:
                raise RuleConfigError(f"{where}: param {key!r} is bound by the runner; choose another name")
            if isinstance(value, dict):
                params[key] = _from_standards(value, f"{where}: param {key}", standards_file)
        sql = sql_path.read_text(encoding="utf-8")
        missing = sorted(set(_PARAM.findall(sql)) - set(params) - set(BUILT_IN_PARAMS))
        if missing:
            raise RuleConfigError(f"{where}: {sql_path.name} uses ${', $'.join(missing)} but params do not set it")
        rules[name] = Rule(name=name, severity=severity, entity=entity,
                           description=" ".join(str(spec.get("description", "")).split()),
                           sql_name=sql_name, sql=sql, params=params)
    return RulesConfig(rules=rules, as_of=_date(raw.get("as_of"), f"{path}: as_of"), path=path)


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0


def data_as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest date present in the data: the last meeting held or dues payment made."""
    parts = [f"SELECT max({column}) AS d FROM {table}" for table, column in AS_OF_SOURCES
             if _table_exists(con, table)]
    if not parts:
        return None
    return con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()[0]


def resolve_as_of(con: duckdb.DuckDBPyConnection, config: RulesConfig | None = None,
                  as_of: date | str | None = None) -> date:
    """as_of: the argument (a run's run_settings.as_of), else the configuration's as_of, else the data's
    latest date."""
    chosen = _date(as_of, "as_of") or (config.as_of if config else None) or data_as_of(con)
    if chosen is None:
        raise RuleConfigError("no as_of: set as_of in the rules configuration or run_settings.as_of (HUB_AS_OF), "
                              "or build the warehouse facts the date is read from")
    return chosen


def evaluate(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: date) -> list[tuple]:
    """The rule's violations as rows of OUTPUT_COLUMNS, without writing anything."""
    return con.execute(f"SELECT {', '.join(OUTPUT_COLUMNS)} FROM ({rule.sql}) ORDER BY record_key",
                       rule.bind(as_of)).fetchall()


def run_rules(con: duckdb.DuckDBPyConnection, names: list[str] | None = None, *,
              config: RulesConfig | None = None, as_of: date | str | None = None) -> RuleRun:
    """Run the rules (all, or ``names``) in one transaction: each rule's rows in quality.rule_violation
    are replaced by what it finds now. Returns the violations per rule and severity."""
    config = config or load_config()
    unknown = [n for n in names or [] if n not in config.rules]
    if unknown:
        raise RuleConfigError(f"unknown rule(s) {unknown}; configured: {sorted(config.rules)}")
    rules = [config.rules[n] for n in (names or config.rules)]
    for rule in rules:
        for layer, table in rule.reads:
            if not _table_exists(con, f"{layer}.{table}"):
                raise RuntimeError(f"rule {rule.name} reads {layer}.{table}, which does not exist yet: "
                                   "build the warehouse first")
    when = resolve_as_of(con, config, as_of)
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for rule in rules:
            con.execute("DELETE FROM quality.rule_violation WHERE rule = ?", [rule.name])
            con.execute(f"""INSERT INTO quality.rule_violation ({', '.join(OUTPUT_COLUMNS)})
                            SELECT {', '.join(OUTPUT_COLUMNS)} FROM ({rule.sql})""", rule.bind(when))
            counts[rule.name] = con.execute("SELECT count(*) FROM quality.rule_violation WHERE rule = ?",
                                            [rule.name]).fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return RuleRun(as_of=when, violations=counts, severity={r.name: r.severity for r in rules})
