"""Plausibility checks on staged values, with their severities in ``quality/plausibility.yaml``.

:func:`apply_plausibility` runs inside :func:`models.build.build_staging`, after the model's SQL has made the
temporary table ``_model`` and its own row rules have marked rows. Each check compares one staged column
with the raw column it came from (raw keeps every value as sent, as text), set-based, in three statements
per model:

1. one ``UPDATE _model`` marks the rows a ``quarantine`` check fails (rule and a detail naming the raw
   column and the value as sent); the first failing check wins, and a row some earlier rule already marked
   is left alone. build_staging then moves those rows to ``quality.quarantine`` with the original raw row.
2. one ``INSERT`` writes a finding to ``quality.value_finding`` for every value a ``flag`` check fails on a
   row that is kept; the model's earlier findings are deleted first, so a rebuild never duplicates them.
3. one ``UPDATE`` per ``text`` check strips control characters from the staged value.

Kinds and rules: see the header of ``quality/plausibility.yaml``. A run reads the file its ``run_settings``
resource names (``plausibility_file``; HUB_PLAUSIBILITY_FILE) and passes the checks and its as-of date in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import yaml

from connectors.raw_zone import q

if TYPE_CHECKING:
    from models.build import Model

CONFIG_FILE = Path(__file__).resolve().parent.parent / "quality" / "plausibility.yaml"
# Another file (tests, a college's own severities): run_settings.plausibility_file, HUB_PLAUSIBILITY_FILE.
KINDS = ("valid_date", "past_date", "non_negative", "percent_0_100", "end_after_start", "text")
SEVERITIES = ("quarantine", "flag")
KEYS = {"kind", "raw", "severity", "start", "raw_start"}
# Control characters (Unicode Cc) and the invisible format characters that hide in copied names.
CONTROL_RE = r"[\x{0000}-\x{001F}\x{007F}-\x{009F}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"


class PlausibilityConfigError(ValueError):
    """The plausibility configuration is not usable; the message names the file and the key."""


@dataclass(frozen=True)
class Check:
    model: str
    column: str          # the staged column
    kind: str
    raw: str             # the raw column it came from
    severity: str = "quarantine"
    start: str | None = None       # end_after_start: the staged start column
    raw_start: str | None = None   # ... and its raw column
    path: str = field(default="", repr=False, compare=False)  # the file it was read from, for messages

    @property
    def where(self) -> str:
        return f"{self.model}.{self.column}"


def load_checks(path: str | Path | None = None) -> dict[str, list[Check]]:
    """Every check of the configuration (default ``quality/plausibility.yaml``), per staging model, in the
    order written."""
    path = Path(path) if path else CONFIG_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PlausibilityConfigError(f"{path}: cannot read it ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise PlausibilityConfigError(f"{path}: expected a mapping of staging models")
    from models.build import STAGING_MODELS

    checks: dict[str, list[Check]] = {}
    for model, columns in doc.items():
        if model not in STAGING_MODELS:
            raise PlausibilityConfigError(f"{path}: {model}: no such staging model "
                                          f"(models/sql/staging/{model}.sql)")
        if not isinstance(columns, dict):
            raise PlausibilityConfigError(f"{path}: {model}: expected a mapping of staged columns")
        for column, spec in columns.items():
            where = f"{path}: {model}.{column}"
            if not isinstance(spec, dict):
                raise PlausibilityConfigError(f"{where}: expected {{kind: ..., raw: ..., severity: ...}}")
            unknown = set(spec) - KEYS
            if unknown:
                raise PlausibilityConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
            kind, severity = spec.get("kind"), spec.get("severity", "quarantine")
            if kind not in KINDS:
                raise PlausibilityConfigError(f"{where}: kind must be one of {KINDS}, not {kind!r}")
            if severity not in SEVERITIES:
                raise PlausibilityConfigError(f"{where}: severity must be one of {SEVERITIES}, not {severity!r}")
            if not spec.get("raw"):
                raise PlausibilityConfigError(f"{where}: raw (the raw column the value came from) is required")
            if kind == "end_after_start" and not (spec.get("start") and spec.get("raw_start")):
                raise PlausibilityConfigError(f"{where}: end_after_start needs start and raw_start")
            checks.setdefault(model, []).append(Check(
                model=model, column=str(column), kind=kind, raw=str(spec["raw"]), severity=severity,
                start=spec.get("start"), raw_start=spec.get("raw_start"), path=str(path)))
    return checks


def staging_as_of(con: duckdb.DuckDBPyConnection, as_of: date | None = None) -> date | None:
    """The as-of date the business rules use: ``as_of`` as configured for the run (run_settings.as_of, else
    rules.yaml's: ``RunSettingsResource.configured_as_of``), else the data's latest date, or None before the
    warehouse has been built (past_date then uses each row's extraction day)."""
    from quality.business_rules import data_as_of

    return as_of or data_as_of(con)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shown(raw: str) -> str:
    """The raw value as written into a detail: quoted, control characters escaped (JSON)."""
    return f"CAST(to_json(r.{q(raw)}) AS VARCHAR)"


def _present(raw: str) -> str:
    return f"nullif(trim(r.{q(raw)}), '') IS NOT NULL"


def _conditions(c: Check, as_of: date | None) -> list[tuple[str, str, str]]:
    """(condition, rule, detail expression) for one check, first match wins; r = raw row, m = staged row."""
    col, name = f"m.{q(c.column)}", _lit(c.raw + " ")
    unparsed = f"{col} IS NULL AND {_present(c.raw)}"
    if c.kind in ("valid_date", "past_date"):
        out = [(unparsed, "invalid_date", f"{name} || {_shown(c.raw)} || ' is not a date that exists in any "
                                          "format the hub reads (YYYY-MM-DD, YYYY/M/D, YYYYMMDD, YYYY.MM.DD, "
                                          "YYYY年M月D日, Excel serial, epoch ms)'")]
        if c.kind == "past_date":
            bound = (f"DATE '{as_of.isoformat()}'" if as_of else
                     "CAST(timezone('Asia/Shanghai', r._extracted_at) AS DATE)")
            said = f"as-of date {as_of.isoformat()}" if as_of else "day it was extracted"
            out.append((f"{col} > {bound}", "future_date",
                        f"{name} || {_shown(c.raw)} || ' is after the {said}; the past is required'"))
        return out
    if c.kind in ("non_negative", "percent_0_100"):
        out = [(unparsed, "unparseable_value", f"{name} || {_shown(c.raw)} || ' is not a number'")]
        if c.kind == "non_negative":
            out.append((f"{col} < 0", "negative_value", f"{name} || {_shown(c.raw)} || ' is negative'"))
        else:
            out.append((f"{col} < 0 OR {col} > 100", "percent_out_of_range",
                        f"{name} || {_shown(c.raw)} || ' is outside 0-100'"))
        return out
    if c.kind == "end_after_start":
        return [(f"{col} < m.{q(c.start)}", "end_before_start",
                 f"{name} || {_shown(c.raw)} || ' is before ' || {_lit(c.raw_start + ' ')} || {_shown(c.raw_start)}")]
    # text: judged on the raw value, so that what name_clean turned into spaces is reported too
    return [(f"regexp_matches(r.{q(c.raw)}, '{CONTROL_RE}')", "control_characters",
             f"{name} || {_shown(c.raw)} || ' has control characters (stripped)'")]


def _usable(con: duckdb.DuckDBPyConnection, m: Model, checks: list[Check], raw: str) -> list[Check]:
    """The checks whose raw columns this raw table has; a staged column missing, or a raw column missing
    that the model does not list as optional, is a configuration error."""
    staged = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE _model)").fetchall()}
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                      "table_schema = 'raw' AND table_name = ?", [raw]).fetchall()}
    usable = []
    for c in checks:
        for column in filter(None, (c.column, c.start)):
            if column not in staged:
                raise PlausibilityConfigError(f"{c.path}: {c.where}: staging.{m.name} has no column {column!r}")
        missing = [r for r in filter(None, (c.raw, c.raw_start)) if r not in have]
        if any(r not in m.optional_columns for r in missing):
            raise PlausibilityConfigError(f"{c.path}: {c.where}: raw.{raw} has no column {missing[0]!r}")
        if not missing:
            usable.append(c)
    return usable


def apply_plausibility(con: duckdb.DuckDBPyConnection, m: Model, checks: dict[str, list[Check]] | None = None,
                       *, as_of: date | None = None, replace_all: bool = True) -> dict[str, int]:
    """Run the model's checks on ``_model`` (see the module docstring); returns counts per rule and
    severity, e.g. ``{"quarantine:future_date": 1, "flag:control_characters": 2}``. ``replace_all=False``
    keeps the model's earlier findings (the incremental build deletes those of the rows it rebuilds).
    ``checks``: the run's (default: the shipped file's); ``as_of``: the run's configured as-of date (default:
    the data's latest), used only by past_date checks."""
    if replace_all:
        con.execute("DELETE FROM quality.value_finding WHERE model = ?", [m.name])
    mine = (load_checks() if checks is None else checks).get(m.name, [])
    raw = m.raw_table
    mine = _usable(con, m, mine, raw)
    if not mine:
        return {}
    if any(c.kind == "past_date" for c in mine):
        as_of = staging_as_of(con, as_of)
    join = (f"FROM _model m JOIN raw.{q(raw)} r ON r._load_id = m.load_id AND r._row_number = m._row_number "
            "WHERE m._reject_rule IS NULL")
    counts: dict[str, int] = {}

    held = [(cond, rule, detail) for c in mine if c.severity == "quarantine" for cond, rule, detail in _conditions(c, as_of)]
    if held:
        rule_case = " ".join(f"WHEN {cond} THEN {_lit(rule)}" for cond, rule, _ in held)
        detail_case = " ".join(f"WHEN {cond} THEN {detail}" for cond, _, detail in held)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _plausible AS
            SELECT m.load_id AS _lid, m._row_number AS _rn, CASE {rule_case} END AS rule,
                   CASE {detail_case} END AS detail {join}""")
        con.execute("""UPDATE _model SET _reject_rule = p.rule, _reject_detail = p.detail FROM _plausible p
                       WHERE p._lid = _model.load_id AND p._rn = _model._row_number AND p.rule IS NOT NULL
                         AND _model._reject_rule IS NULL""")
        for rule, n in con.execute("SELECT rule, count(*) FROM _plausible WHERE rule IS NOT NULL GROUP BY ALL").fetchall():
            counts[f"quarantine:{rule}"] = n
        con.execute("DROP TABLE _plausible")

    selects = []
    for c in (c for c in mine if c.severity == "flag"):
        earlier: list[str] = []  # a value is flagged once, by the first of its check's conditions it meets
        for cond, rule, detail in _conditions(c, as_of):
            guard = "".join(f" AND NOT coalesce({e}, false)" for e in earlier)
            earlier.append(cond)
            selects.append(f"""SELECT {_lit(m.name)}, {_lit(m.source or '')}, {_lit(m.entity or '')}, m.load_id,
                m._row_number, m._record_key, {_lit(rule)}, {_lit(c.raw)}, r.{q(c.raw)}, {detail}
                {join} AND ({cond}){guard}""")
    if selects:
        con.execute(f"""INSERT INTO quality.value_finding
            (model, source, entity, load_id, row_number, record_key, rule, column_name, value, detail)
            {' UNION ALL '.join(selects)}""")
        for rule, n in con.execute("SELECT rule, count(*) FROM quality.value_finding WHERE model = ? GROUP BY ALL",
                                   [m.name]).fetchall():
            counts[f"flag:{rule}"] = n

    for c in mine:
        if c.kind == "text":
            con.execute(f"UPDATE _model SET {q(c.column)} = nullif(trim(regexp_replace({q(c.column)}, "
                        f"'{CONTROL_RE}', '', 'g')), '') WHERE regexp_matches({q(c.column)}, '{CONTROL_RE}')")
    return counts
