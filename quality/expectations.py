"""Expectation suites: declarative files, run by Great Expectations or by DuckDB, kept as history.

A suite is a YAML file ``quality/expectations/<schema>.<table>.yaml`` (``raw.hr__staff``,
``warehouse.dim_person``): the table it checks, the Dagster asset it belongs to (by default
``<schema>/<table>``) and a list of expectations. Each expectation names a Great Expectations 1.x
expectation type with its arguments, plus the hub's own keys::

    - expect: expect_column_values_to_be_in_set
      column: gender                  # a list of columns makes one expectation per column
      value_set_from: {codeset: gender}   # read from models/codesets/gender.csv when the suite runs
      severity: error                 # error blocks publishing; warning is reported
      description: 性别 is a GB/T 2261.1 code

Blocking is reserved for what is systemic (``quality/blocking.py``): only a :data:`SYSTEMIC`
expectation (a key that repeats, a row count off its previous one) of severity ``error`` blocks. An
expectation that judges single rows (missing, out of set, range or shape) is reported as a
``warning`` whatever its severity says — staging quarantines bad rows; one bad row stops nothing.

Two expectation types are the hub's, evaluated in DuckDB SQL whatever the engine (GX has nothing
like them): ``expect_column_values_to_pass_gb11643_checksum`` (the ``id_is_valid`` macro; with
``normalize: true`` on the value as staging will normalise it) and
``expect_table_row_count_to_be_within_ratio_of_previous`` (the row count against the last *passed*
count of the same expectation in ``quality.check_result``; no earlier count: passes).

Engines (``docs/benchmarks-quality.md`` has the figures behind the default):

``gx``          one pandas DataFrame per table (only the columns the suite names), validated by GX;
``gx_chunked``  the same expectations on DataFrames of ``chunk_rows`` rows; uniqueness on partitions
                of the key's hash so that copies of a key meet in one chunk; counts are summed;
``sql``         every expectation translated to one aggregate DuckDB query per table (same semantics
                as GX: nulls ignored except by not-null, ``mostly`` over the non-null rows; a regex's ``$``
                is the end of the value in every engine, see ``python_regex``);
``auto``        ``gx`` up to ``gx_max_rows`` rows (the quality resource's, HUB_QUALITY_GX_MAX_ROWS; default
                250,000), ``sql`` above.

tests/test_expectations_differential.py runs every type the suites use through all three on the same data
with injected violations and requires the same unexpected counts.

Every run appends one ``quality.check_result`` row per expectation and renders the results as a
GX Data Docs site under ``<HUB_VAR_DIR>/quality/docs`` (GX stores under ``quality/gx``). Great
Expectations is imported lazily, inside the functions that need it, with its analytics turned off.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import yaml

from connectors.raw_zone import q
from models import codesets_dir

SUITES_DIR = Path(__file__).resolve().parent / "expectations"
ENGINES = ("gx", "gx_chunked", "sql")
SEVERITIES = ("error", "warning")
GX_ENGINE_NAME = "great_expectations"
DEFAULT_GX_MAX_ROWS = 250_000
DEFAULT_CHUNK_ROWS = 250_000
SAMPLE_SIZE = 20
KEEP_VALIDATIONS = 3  # GX validation results kept per suite (Data Docs); the history is quality.check_result
TZ = "Asia/Shanghai"

# The arguments each supported type takes (checked when a suite is read, without importing GX).
SUPPORTED: dict[str, set[str]] = {
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"},
    "expect_column_values_to_match_regex": {"column", "regex", "mostly"},
    "expect_column_values_to_not_match_regex": {"column", "regex", "mostly"},
    "expect_column_value_lengths_to_be_between": {"column", "min_value", "max_value", "mostly"},
    "expect_column_values_to_be_unique": {"column", "mostly"},
    "expect_compound_columns_to_be_unique": {"column_list", "mostly"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "mostly"},
    "expect_table_row_count_to_be_between": {"min_value", "max_value"},
    # the hub's own, always evaluated in DuckDB
    "expect_column_values_to_pass_gb11643_checksum": {"column", "mostly", "normalize"},
    "expect_table_row_count_to_be_within_ratio_of_previous": {"min_ratio", "max_ratio"},
}
SQL_ONLY = {"expect_column_values_to_pass_gb11643_checksum", "expect_table_row_count_to_be_within_ratio_of_previous"}
UNIQUENESS = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
TABLE_LEVEL = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_be_within_ratio_of_previous"}
# Expectations whose failure speaks of the table as a whole, not of a row: the only ones that block.
SYSTEMIC = UNIQUENESS | TABLE_LEVEL

# Columns whose values are never written out in clear (samples in check_result and Data Docs).
SENSITIVE = {"id_number": "id", "sfzjh": "id", "idCard": "id", "公民身份号码": "id",
             "phone": "phone", "sjhm": "phone", "mobile": "phone", "联系电话": "phone"}


# --------------------------------------------------------------------------- suites


class SuiteError(ValueError):
    """A suite file that cannot be used: says which file and what is wrong."""


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict[str, Any]
    severity: str
    description: str = ""
    value_set_from: tuple[dict[str, Any], ...] = ()
    normalize: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        k = self.kwargs
        if "column_list" in k:
            return tuple(k["column_list"])
        if "column_A" in k:
            return (k["column_A"], k["column_B"])
        return (k["column"],) if "column" in k else ()

    @property
    def id(self) -> str:
        """Stable name within its suite: the type and the column(s), e.g. ``expect_…_unique(a,b)``."""
        return f"{self.type}({','.join(self.columns)})"

    @property
    def engine(self) -> str:
        return "sql" if self.type in SQL_ONLY else "any"

    @property
    def mostly(self) -> float:
        return float(self.kwargs.get("mostly", 1.0))

    @property
    def blocking(self) -> bool:
        """Severity ``error`` and systemic (uniqueness, row count): a failure holds back the table."""
        return self.severity == "error" and self.type in SYSTEMIC

    @property
    def effective_severity(self) -> str:
        """What a failure counts as: ``error`` only when it blocks; a row-level problem is a ``warning``."""
        return "error" if self.blocking else "warning"


@dataclass(frozen=True)
class Suite:
    name: str                       # schema.table, e.g. raw.hr__staff
    table: str
    asset: tuple[str, ...]          # Dagster asset key path
    description: str
    expectations: tuple[Expectation, ...]
    path: Path

    @property
    def blocking(self) -> bool:
        return any(e.blocking for e in self.expectations)

    @property
    def asset_str(self) -> str:
        return "/".join(self.asset)


def _expand(raw: dict[str, Any], default_severity: str, where: str) -> list[Expectation]:
    spec = dict(raw)
    etype = spec.pop("expect", None)
    if etype not in SUPPORTED:
        raise SuiteError(f"{where}: unsupported expectation {etype!r}; supported: {sorted(SUPPORTED)}")
    severity = spec.pop("severity", default_severity)
    if severity not in SEVERITIES:
        raise SuiteError(f"{where}: severity must be one of {SEVERITIES}, got {severity!r}")
    description = str(spec.pop("description", "") or "")
    sources = spec.pop("value_set_from", None)
    sources = tuple(sources if isinstance(sources, list) else [sources]) if sources else ()
    normalize = bool(spec.get("normalize", False))
    unknown = set(spec) - SUPPORTED[etype]
    if unknown:
        raise SuiteError(f"{where}: {etype} takes {sorted(SUPPORTED[etype])}, not {sorted(unknown)}")
    if sources and etype != "expect_column_values_to_be_in_set":
        raise SuiteError(f"{where}: value_set_from is for expect_column_values_to_be_in_set")
    if etype == "expect_column_values_to_be_in_set" and not sources and "value_set" not in spec:
        raise SuiteError(f"{where}: in_set needs value_set or value_set_from")
    for src in sources:
        if not (codesets_dir / f"{src.get('codeset')}.csv").is_file():
            raise SuiteError(f"{where}: no code set {src.get('codeset')!r} in {codesets_dir}")
    columns = spec.pop("column", None)
    out = []
    for column in (columns if isinstance(columns, list) else [columns]):
        kwargs = dict(spec)
        if column is not None:
            kwargs["column"] = column
        for key, value in list(kwargs.items()):  # YAML dates -> ISO text: one form for every engine
            if hasattr(value, "isoformat"):
                kwargs[key] = value.isoformat()
        out.append(Expectation(etype, kwargs, severity, description, sources, normalize))
    return out


def load_suite(path: Path) -> Suite:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: {exc}") from None
    name = path.name.removesuffix(".yaml")
    table = doc.get("table", name)
    if "." not in table:
        raise SuiteError(f"{path}: table must be schema.table, got {table!r}")
    asset = tuple(str(doc.get("asset", table.replace(".", "/", 1))).split("/"))
    default = doc.get("severity", "error")
    expectations: list[Expectation] = []
    for i, raw in enumerate(doc.get("expectations") or [], 1):
        expectations.extend(_expand(raw, default, f"{path.name} expectation {i}"))
    ids = [e.id for e in expectations]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SuiteError(f"{path}: the same expectation twice: {dupes}")
    if not expectations:
        raise SuiteError(f"{path}: no expectations")
    return Suite(name, table, asset, str(doc.get("description", "")), tuple(expectations), path)


def load_suites(directory: Path = SUITES_DIR) -> dict[str, Suite]:
    """Every suite file, by suite name (``schema.table``)."""
    return {s.name: s for s in (load_suite(p) for p in sorted(directory.glob("*.yaml")))}


def suites_by_asset(directory: Path = SUITES_DIR) -> dict[tuple[str, ...], list[Suite]]:
    out: dict[tuple[str, ...], list[Suite]] = {}
    for suite in load_suites(directory).values():
        out.setdefault(suite.asset, []).append(suite)
    return out


@cache
def _codeset_rows(name: str) -> tuple[dict[str, str], ...]:
    with (codesets_dir / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return tuple(csv.DictReader(handle))


def value_set(exp: Expectation) -> list[Any]:
    """The expectation's value set: written in the suite, or read from code set files now."""
    values: list[Any] = list(exp.kwargs.get("value_set") or [])
    for src in exp.value_set_from:
        column, where = src.get("column", "code"), src.get("where") or {}
        for row in _codeset_rows(src["codeset"]):
            if all(row.get(k) == str(v) for k, v in where.items()) and row.get(column):
                values.append(row[column])
                suffix = src.get("also_without_suffix")
                if suffix and row[column].endswith(suffix) and len(row[column]) > len(suffix):
                    values.append(row[column][: -len(suffix)])
    return sorted(set(values), key=str)


def resolved_kwargs(exp: Expectation) -> dict[str, Any]:
    """GX keyword arguments: value sets filled in, the hub's own keys left out."""
    kwargs = {k: v for k, v in exp.kwargs.items() if k != "normalize"}
    if exp.type == "expect_column_values_to_be_in_set":
        kwargs["value_set"] = value_set(exp)
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        kwargs["ignore_row_if"] = "either_value_is_missing"
    if exp.type == "expect_table_row_count_to_be_within_ratio_of_previous":
        kwargs = {"min_ratio": 0.5, "max_ratio": 2.0, **kwargs}
    if exp.type == "expect_column_values_to_pass_gb11643_checksum" and exp.normalize:
        kwargs["normalize"] = True
    return kwargs


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What one expectation found."""

    expectation: Expectation
    success: bool
    engine: str                      # great_expectations or sql
    evaluated: int | None            # rows looked at
    unexpected: int | None           # rows that broke it
    result: dict[str, Any] = field(default_factory=dict)  # GX-shaped result dict (samples masked)
    error: str | None = None

    def detail(self) -> dict[str, Any]:
        kwargs = {k: v for k, v in resolved_kwargs(self.expectation).items() if k != "value_set"}
        if self.expectation.value_set_from:
            kwargs["value_set_from"] = list(self.expectation.value_set_from)
        out = {"expectation": self.expectation.type, "kwargs": kwargs,
               "description": self.expectation.description}
        for key in ("observed_value", "unexpected_percent", "missing_count", "partial_unexpected_list", "details"):
            if self.result.get(key) not in (None, [], {}):
                out[key] = self.result[key]
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class SuiteResult:
    suite: Suite
    engine: str
    rows: int | None
    outcomes: list[Outcome]
    seconds: float
    run_id: str
    checked_at: datetime
    docs_page: Path | None = None

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def failed_errors(self) -> list[Outcome]:
        return [o for o in self.failed if o.expectation.blocking]


def _success(exp: Expectation, unexpected: int, denominator: int) -> bool:
    if exp.mostly >= 1.0 or denominator == 0:
        return unexpected == 0
    return (denominator - unexpected) / denominator >= exp.mostly


def _mask(column: str, value: Any) -> Any:
    kind = SENSITIVE.get(column)
    if kind is None or value is None or not isinstance(value, str):
        return value
    if kind == "id":
        return value[:6] + "*" * max(len(value) - 6, 0)  # the area code only, as mask_id
    return value[:3] + "****" + value[-4:]


def _mask_samples(exp: Expectation, samples: Sequence[Any]) -> list[Any]:
    out = []
    for s in samples[:SAMPLE_SIZE]:
        if isinstance(s, dict):
            out.append({k: _jsonable(_mask(k, v)) for k, v in s.items()})
        else:
            out.append(_jsonable(_mask(exp.columns[0], s) if exp.columns else s))
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def _map_result(evaluated: int, missing: int | None, unexpected: int, denominator: int,
                samples: list[Any]) -> dict:
    """A result shaped like GX's BASIC result of a map expectation (missing values: None for not-null)."""
    out = {"element_count": evaluated, "unexpected_count": unexpected,
           "unexpected_percent": 100.0 * unexpected / denominator if denominator else None,
           "partial_unexpected_list": samples}
    if missing is not None:
        out |= {"missing_count": missing, "missing_percent": 100.0 * missing / evaluated if evaluated else None}
    return out


# --------------------------------------------------------------------------- SQL engine


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _bound(value: Any, dtype: str | None) -> str:
    """A between bound as SQL; a date bound of a TIMESTAMPTZ column is midnight in Beijing, as for GX."""
    if isinstance(value, str) and len(value) == 10 and (dtype or "").startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({_lit(value + ' 00:00:00+08:00')} AS TIMESTAMPTZ)"
    return _lit(value)


def _bad_condition(exp: Expectation, types: dict[str, str] | None = None) -> str | None:
    """SQL for "this non-null row breaks the expectation" (map expectations), else None."""
    k, t = resolved_kwargs(exp), exp.type
    dtype = (types or {}).get(k.get("column", ""))
    c = q(k["column"]) if "column" in k else None
    if t == "expect_column_values_to_not_be_null":
        return f"{c} IS NULL"
    if t == "expect_column_values_to_be_in_set":
        values = k["value_set"]
        return f"{c} NOT IN ({', '.join(_lit(v) for v in values)})" if values else "true"
    if t in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        x = f"length({c})" if t == "expect_column_value_lengths_to_be_between" else c
        parts = []
        if k.get("min_value") is not None:
            parts.append(f"{x} {'<=' if k.get('strict_min') else '<'} {_bound(k['min_value'], dtype)}")
        if k.get("max_value") is not None:
            parts.append(f"{x} {'>=' if k.get('strict_max') else '>'} {_bound(k['max_value'], dtype)}")
        return " OR ".join(parts) or "false"
    if t == "expect_column_values_to_match_regex":
        return f"NOT regexp_matches(CAST({c} AS VARCHAR), {_lit(k['regex'])})"
    if t == "expect_column_values_to_not_match_regex":
        return f"regexp_matches(CAST({c} AS VARCHAR), {_lit(k['regex'])})"
    if t == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = q(k["column_A"]), q(k["column_B"])
        return f"NOT ({a} {'>=' if k.get('or_equal') else '>'} {b})"
    return None


def _considered(exp: Expectation) -> str:
    """SQL for the rows an expectation looks at (GX leaves missing values out of map expectations)."""
    if exp.type == "expect_column_values_to_not_be_null":
        return "true"
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        return " AND ".join(f"{q(c)} IS NOT NULL" for c in exp.columns)
    if exp.type == "expect_compound_columns_to_be_unique":
        return "NOT (" + " AND ".join(f"{q(c)} IS NULL" for c in exp.columns) + ")"
    return f"{q(exp.columns[0])} IS NOT NULL"


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    """Column name -> DuckDB type of ``schema.table``, or None when there is no such table."""
    schema, name = table.split(".", 1)
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = "
                       "current_database() AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                       [schema, name]).fetchall()
    return dict(rows) or None


def _tref(table: str) -> str:
    schema, name = table.split(".", 1)
    return f"{q(schema)}.{q(name)}"


def _sql_outcomes(con: duckdb.DuckDBPyConnection, suite: Suite, exps: list[Expectation], rows: int,
                  history: HistoryLookup, types: dict[str, str] | None = None) -> list[Outcome]:
    """Evaluate expectations in DuckDB: one aggregate query for the map expectations of the table,
    one grouped query per uniqueness key; samples are fetched only for expectations that failed."""
    t = _tref(suite.table)
    outcomes: dict[int, Outcome] = {}
    aggs: list[str] = []
    index: list[tuple[int, Expectation]] = []
    for i, exp in enumerate(exps):
        bad = _bad_condition(exp, types)
        if bad is not None:
            cons = _considered(exp)
            aggs.append(f"count(*) FILTER (WHERE ({cons}) AND ({bad}))")
            aggs.append(f"count(*) FILTER (WHERE {cons})")
            index.append((i, exp))
    values = con.execute(f"SELECT {', '.join(aggs)} FROM {t}").fetchone() if aggs else ()
    for j, (i, exp) in enumerate(index):
        unexpected, considered = int(values[2 * j]), int(values[2 * j + 1])
        missing = None if exp.type == "expect_column_values_to_not_be_null" else rows - considered
        denominator = rows if exp.type == "expect_column_values_to_not_be_null" else considered
        samples: list[Any] = []
        if unexpected:
            cols = ", ".join(q(c) for c in exp.columns)
            got = con.execute(f"SELECT {cols} FROM {t} WHERE ({_considered(exp)}) AND ({_bad_condition(exp, types)}) "
                              f"LIMIT {SAMPLE_SIZE}").fetchall()
            samples = [r[0] if len(exp.columns) == 1 else dict(zip(exp.columns, r, strict=True)) for r in got]
        outcomes[i] = Outcome(exp, _success(exp, unexpected, denominator), "sql", rows, unexpected,
                              _map_result(rows, missing, unexpected, denominator, _mask_samples(exp, samples)))
    for i, exp in enumerate(exps):
        if exp.type == "expect_column_values_to_pass_gb11643_checksum":
            outcomes[i] = _checksum_outcome(con, t, exp, rows)
        elif exp.type in UNIQUENESS:
            cols = ", ".join(q(c) for c in exp.columns)
            unexpected, considered = con.execute(
                f"SELECT coalesce(sum(n) FILTER (WHERE n > 1), 0), coalesce(sum(n), 0) FROM "
                f"(SELECT count(*) AS n FROM {t} WHERE {_considered(exp)} GROUP BY {cols})").fetchone()
            unexpected, considered = int(unexpected), int(considered)
            samples = []
            if unexpected:
                got = con.execute(f"SELECT {cols} FROM {t} WHERE {_considered(exp)} GROUP BY {cols} "
                                  f"HAVING count(*) > 1 LIMIT {SAMPLE_SIZE}").fetchall()
                samples = [r[0] if len(exp.columns) == 1 else dict(zip(exp.columns, r, strict=True)) for r in got]
            outcomes[i] = Outcome(exp, _success(exp, unexpected, considered), "sql", rows, unexpected,
                                  _map_result(rows, rows - considered, unexpected, considered,
                                              _mask_samples(exp, samples)))
        elif exp.type in TABLE_LEVEL:
            outcomes[i] = _table_outcome(exp, rows, suite, history, "sql")
    return [outcomes[i] for i in range(len(exps))]


def _checksum_outcome(con: duckdb.DuckDBPyConnection, t: str, exp: Expectation, rows: int) -> Outcome:
    """GB 11643 in its own query: the macros expand their argument many times over, so the (normalised)
    value is computed once in a subquery instead of being inlined into every reference."""
    c = q(exp.columns[0])
    value = f"id_normalize({c})" if exp.normalize else c
    inner = f"SELECT {c} AS v, {value} AS n FROM {t}"
    unexpected, considered = con.execute(f"SELECT count(*) FILTER (WHERE v IS NOT NULL AND NOT id_is_valid(n)), "
                                         f"count(v) FROM ({inner})").fetchone()
    samples = []
    if unexpected:
        samples = [r[0] for r in con.execute(f"SELECT v FROM ({inner}) WHERE v IS NOT NULL AND NOT id_is_valid(n) "
                                             f"LIMIT {SAMPLE_SIZE}").fetchall()]
    return Outcome(exp, _success(exp, unexpected, considered), "sql", rows, unexpected,
                   _map_result(rows, rows - considered, unexpected, considered, _mask_samples(exp, samples)))


# The previous passed row count of an expectation: (suite, expectation id) -> count or None.
HistoryLookup = Any


def _history_lookup(con: duckdb.DuckDBPyConnection, suite: Suite):
    def previous(exp: Expectation) -> int | None:
        row = con.execute("SELECT evaluated FROM quality.check_result WHERE asset = ? AND check_name = ? AND passed "
                          "AND evaluated IS NOT NULL ORDER BY checked_at DESC LIMIT 1",
                          [suite.asset_str, check_name(suite, exp)]).fetchone()
        return None if row is None else int(row[0])
    return previous


def _table_outcome(exp: Expectation, rows: int, suite: Suite, history: HistoryLookup, engine: str) -> Outcome:
    k = resolved_kwargs(exp)
    if exp.type == "expect_table_row_count_to_be_between":
        ok = (k.get("min_value") is None or rows >= k["min_value"]) and (k.get("max_value") is None
                                                                         or rows <= k["max_value"])
        return Outcome(exp, ok, engine, rows, None if ok else 1, {"observed_value": rows})
    previous = history(exp)
    if not previous:
        return Outcome(exp, True, "sql", rows, None, {"observed_value": rows,
                                                      "details": {"previous": previous, "ratio": None,
                                                                  "note": "no earlier passed count to compare with"}})
    ratio = rows / previous
    ok = k["min_ratio"] <= ratio <= k["max_ratio"]
    return Outcome(exp, ok, "sql", rows, None if ok else abs(rows - previous),
                   {"observed_value": rows, "details": {"previous": previous, "ratio": round(ratio, 4)}})


# --------------------------------------------------------------------------- GX engines


@cache
def _gx() -> Any:
    """Import Great Expectations (analytics off) and register the hub's two expectation types so that
    their results render in Data Docs. They are never validated by GX: DuckDB evaluates them."""
    from hub.settings import export

    export("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.expectations.expectation import BatchExpectation, ColumnMapExpectation

    class ExpectColumnValuesToPassGb11643Checksum(ColumnMapExpectation):
        """ID numbers (公民身份号码) pass GB 11643: 17 digits and the ISO 7064 MOD 11-2 check character.
        Evaluated in DuckDB with the hub's id_is_valid macro."""

        map_metric = "column_values.hub_gb11643_checksum"
        normalize: bool = False
        success_keys = ("mostly", "normalize")

    class ExpectTableRowCountToBeWithinRatioOfPrevious(BatchExpectation):
        """The table's row count is within [min_ratio, max_ratio] of the last count that passed this
        expectation (quality.check_result history). Evaluated by the hub."""

        min_ratio: float = 0.5
        max_ratio: float = 2.0
        metric_dependencies = ("table.row_count",)
        success_keys = ("min_ratio", "max_ratio")

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # noqa: ARG002
            raise NotImplementedError("evaluated by quality.expectations in DuckDB")

    return gx


def python_regex(regex: str) -> str:
    """``regex`` with every ``$`` anchor (unescaped, outside a character class) as ``\\Z``: in Python, which
    GX's pandas engine uses, ``$`` also matches before a final newline ("123\\n" passes ``^[0-9]{3}$``); in
    RE2, which DuckDB uses, it is the end of the value. The hub's meaning is RE2's, in every engine."""
    out, escaped, in_class = [], False, False
    for ch in regex:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "$" and not in_class:
            out.append("\\Z")
            continue
        out.append(ch)
    return "".join(out)


def gx_expectation(exp: Expectation, dtypes: dict[str, Any] | None = None, *, validate: bool = False) -> Any:
    """The GX expectation object for ``exp`` (bounds of date columns as timestamps of their dtype). With
    ``validate`` it is the one GX evaluates (regex anchors as the hub means them, see python_regex);
    without, the one Data Docs show, as the suite wrote it."""
    _gx()
    from great_expectations.expectations.registry import get_expectation_impl

    kwargs = resolved_kwargs(exp)
    if validate and "regex" in kwargs:
        kwargs["regex"] = python_regex(kwargs["regex"])
    if dtypes and exp.type == "expect_column_values_to_be_between":
        kwargs = _timestamp_bounds(kwargs, dtypes.get(exp.kwargs["column"]))
    cls = get_expectation_impl(exp.type)
    meta = {"hub_id": exp.id, "hub_severity": exp.severity}
    return cls(**kwargs, severity="critical" if exp.blocking else "warning",
               description=exp.description or None, meta=meta)


def _timestamp_bounds(kwargs: dict[str, Any], dtype: Any) -> dict[str, Any]:
    import pandas as pd

    if dtype is None or not (pd.api.types.is_datetime64_any_dtype(dtype)):
        return kwargs
    tz = getattr(dtype, "tz", None)
    out = dict(kwargs)
    for key in ("min_value", "max_value"):
        if isinstance(out.get(key), str):
            ts = pd.Timestamp(out[key])
            if tz is not None:
                ts = ts.tz_localize(TZ) if ts.tzinfo is None else ts
            out[key] = ts.as_unit("ns")
    return out


def _prepare_frame(df: Any) -> Any:
    """Dates and timestamps as nanosecond datetimes: GX compares those vectorised (others row by row)."""
    import pandas as pd

    for col in df.columns:
        dtype = df[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            df[col] = df[col].dt.tz_convert(TZ).astype(pd.DatetimeTZDtype("ns", TZ))
        elif pd.api.types.is_datetime64_dtype(dtype):
            df[col] = df[col].astype("datetime64[ns]")
    return df


class _GxRunner:
    """One ephemeral GX context (filesystem stores when Data Docs are wanted) for a gate run."""

    def __init__(self, quality_dir: Path | None) -> None:
        gx = _gx()
        from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig

        def fs(sub: str) -> dict:
            return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(quality_dir / sub)}

        mem = {"class_name": "InMemoryStoreBackend"}
        stores = {
            "expectations_store": {"class_name": "ExpectationsStore",
                                   "store_backend": fs("gx/expectations") if quality_dir else mem},
            "validation_results_store": {"class_name": "ValidationResultsStore",
                                         "store_backend": fs("gx/validations") if quality_dir else mem},
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": mem},
            "validation_definition_store": {"class_name": "ValidationDefinitionStore", "store_backend": mem},
        }
        sites = {"hub": {"class_name": "SiteBuilder", "show_how_to_buttons": False, "store_backend": fs("docs"),
                         "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}} if quality_dir else {}
        config = DataContextConfig(
            config_version=4.0, stores=stores, expectations_store_name="expectations_store",
            validation_results_store_name="validation_results_store", checkpoint_store_name="checkpoint_store",
            data_docs_sites=sites, analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
        self.gx = gx
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        self.datasource = self.context.data_sources.add_pandas("hub")
        self._batch_definitions: dict[str, Any] = {}
        self.quality_dir = quality_dir

    def validate(self, name: str, df: Any, exps: list[Expectation]) -> list[Any]:
        """Validate a DataFrame with GX; the ExpectationValidationResults, in the order of ``exps``."""
        if name not in self._batch_definitions:
            asset = self.datasource.add_dataframe_asset(name)
            self._batch_definitions[name] = asset.add_batch_definition_whole_dataframe("whole")
        dtypes = dict(df.dtypes.items())
        # built in one go: add_expectation compares each new expectation with all earlier ones
        suite = self.gx.ExpectationSuite(name=f"{name}.{uuid.uuid4().hex[:8]}",
                                         expectations=[gx_expectation(e, dtypes, validate=True) for e in exps])
        batch = self._batch_definitions[name].get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format="BASIC")
        by_id = {r.expectation_config.meta.get("hub_id"): r for r in result.results}
        return [by_id[e.id] for e in exps]


def _from_gx(exp: Expectation, r: Any, rows: int, engine: str = GX_ENGINE_NAME) -> Outcome:
    result = dict(r.result or {})
    error = None
    if r.exception_info and r.exception_info.get("raised_exception"):
        error = r.exception_info.get("exception_message")
    else:
        for info in (r.exception_info or {}).values():
            if isinstance(info, dict) and info.get("raised_exception"):
                error = info.get("exception_message")
    for key in ("partial_unexpected_counts", "partial_unexpected_index_list", "unexpected_list",
                "unexpected_index_list", "unexpected_index_query"):
        result.pop(key, None)
    if "partial_unexpected_list" in result:
        result["partial_unexpected_list"] = _mask_samples(exp, result["partial_unexpected_list"])
    unexpected = result.get("unexpected_count")
    if exp.type in TABLE_LEVEL:
        unexpected = None if r.success else 1
    return Outcome(exp, bool(r.success), engine, rows, None if unexpected is None else int(unexpected),
                   {k: _jsonable(v) if not isinstance(v, (list, dict)) else v for k, v in result.items()}, error)


def _select(columns: Iterable[str]) -> str:
    return ", ".join(q(c) for c in dict.fromkeys(columns)) or "1 AS _one"


def _gx_outcomes(con: duckdb.DuckDBPyConnection, runner: _GxRunner, suite: Suite, exps: list[Expectation],
                 rows: int, history: HistoryLookup) -> list[Outcome]:
    gx_exps = [e for e in exps if e.type not in SQL_ONLY]
    cols = [c for e in gx_exps for c in e.columns]
    df = _prepare_frame(con.execute(f"SELECT {_select(cols)} FROM {_tref(suite.table)}").df())
    results = dict(zip([e.id for e in gx_exps], runner.validate(suite.name, df, gx_exps), strict=True))
    del df
    sql = {o.expectation.id: o for o in _sql_outcomes(con, suite, [e for e in exps if e.type in SQL_ONLY],
                                                       rows, history)}
    return [sql[e.id] if e.id in sql else _from_gx(e, results[e.id], rows) for e in exps]


def _gx_chunked_outcomes(con: duckdb.DuckDBPyConnection, runner: _GxRunner, suite: Suite,
                         exps: list[Expectation], rows: int, history: HistoryLookup,
                         chunk_rows: int) -> list[Outcome]:
    """GX on DataFrames of at most ``chunk_rows`` rows. Row-wise expectations stream the table once;
    each uniqueness key reads the table in hash partitions of the key so copies meet in one chunk."""
    t = _tref(suite.table)
    sums: dict[str, dict[str, Any]] = {}

    def add(exp: Expectation, r: Any) -> None:
        s = sums.setdefault(exp.id, {"unexpected": 0, "missing": 0, "samples": [], "errors": []})
        o = _from_gx(exp, r, 0)
        if o.error:
            s["errors"].append(o.error)
        s["unexpected"] += int(o.result.get("unexpected_count") or 0)
        s["missing"] += int(o.result.get("missing_count") or 0)
        s["samples"].extend(o.result.get("partial_unexpected_list") or [])

    rowwise = [e for e in exps if e.type not in SQL_ONLY | UNIQUENESS | TABLE_LEVEL]
    if rowwise:
        vectors = max(1, chunk_rows // 2048)
        cur = con.execute(f"SELECT {_select(c for e in rowwise for c in e.columns)} FROM {t}")
        while True:
            chunk = cur.fetch_df_chunk(vectors)
            if not len(chunk):
                break
            for exp, r in zip(rowwise, runner.validate(suite.name, _prepare_frame(chunk), rowwise), strict=True):
                add(exp, r)
            del chunk
    parts = max(1, math.ceil(rows / chunk_rows))
    for exp in (e for e in exps if e.type in UNIQUENESS):
        cols = ", ".join(q(c) for c in exp.columns)
        for p in range(parts):
            df = con.execute(f"SELECT {cols} FROM {t} WHERE hash({cols}) % {parts} = {p}").df()
            add(exp, runner.validate(suite.name, df, [exp])[0])
            del df
    out = []
    sql = {o.expectation.id: o for o in _sql_outcomes(con, suite, [e for e in exps if e.type in SQL_ONLY],
                                                       rows, history)}
    for exp in exps:
        if exp.id in sql:
            out.append(sql[exp.id])
        elif exp.type in TABLE_LEVEL:
            out.append(_table_outcome(exp, rows, suite, history, GX_ENGINE_NAME))
        else:
            s = sums.get(exp.id, {"unexpected": 0, "missing": 0, "samples": [], "errors": []})
            missing = None if exp.type == "expect_column_values_to_not_be_null" else s["missing"]
            denominator = rows - (missing or 0)
            result = _map_result(rows, missing, s["unexpected"], denominator, s["samples"][:SAMPLE_SIZE])
            error = "; ".join(dict.fromkeys(s["errors"])) or None
            out.append(Outcome(exp, not error and _success(exp, s["unexpected"], denominator), GX_ENGINE_NAME,
                               rows, s["unexpected"], result, error))
    return out


# --------------------------------------------------------------------------- the gate


def check_name(suite: Suite, exp: Expectation) -> str:
    """The check_result name of one expectation: ``<suite>:<expectation id>``."""
    return f"{suite.name}:{exp.id}"


def choose_engine(rows: int, engine: str = "auto", gx_max_rows: int = DEFAULT_GX_MAX_ROWS) -> str:
    if engine != "auto":
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES} or auto, got {engine!r}")
        return engine
    return "gx" if rows <= gx_max_rows else "sql"


def run_suite(con: duckdb.DuckDBPyConnection, suite: Suite, *, engine: str = "auto", run_id: str | None = None,
              runner: _GxRunner | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              gx_max_rows: int = DEFAULT_GX_MAX_ROWS) -> SuiteResult:
    """Evaluate one suite on its table (nothing is written: see record_results and build_data_docs).
    ``engine="auto"`` runs GX up to ``gx_max_rows`` rows, SQL above."""
    started, now = time.perf_counter(), datetime.now(UTC)
    run_id = run_id or uuid.uuid4().hex
    columns = _table_columns(con, suite.table)
    if columns is None:
        outcomes = [Outcome(e, False, "sql", None, None, {}, f"table {suite.table} does not exist")
                    for e in suite.expectations]
        return SuiteResult(suite, "sql", None, outcomes, time.perf_counter() - started, run_id, now)
    rows = con.execute(f"SELECT count(*) FROM {_tref(suite.table)}").fetchone()[0]
    chosen = choose_engine(rows, engine, gx_max_rows)
    missing = {e.id: sorted(set(e.columns) - set(columns)) for e in suite.expectations}
    runnable = [e for e in suite.expectations if not missing[e.id]]
    history = _history_lookup(con, suite)
    if chosen == "sql":
        got = _sql_outcomes(con, suite, runnable, rows, history, columns)
    else:
        runner = runner or _GxRunner(None)
        got = (_gx_outcomes(con, runner, suite, runnable, rows, history) if chosen == "gx" else
               _gx_chunked_outcomes(con, runner, suite, runnable, rows, history, chunk_rows))
    by_id = {o.expectation.id: o for o in got}
    outcomes = [by_id[e.id] if e.id in by_id else
                Outcome(e, False, "sql", rows, None, {}, f"column(s) {missing[e.id]} not in {suite.table}")
                for e in suite.expectations]
    return SuiteResult(suite, chosen, rows, outcomes, time.perf_counter() - started, run_id, now)


def record_results(con: duckdb.DuckDBPyConnection, results: Iterable[SuiteResult]) -> int:
    """Append one quality.check_result row per expectation (history: never updated, never deleted)."""
    rows = []
    for res in results:
        for o in res.outcomes:
            detail = o.detail() | {"suite": res.suite.name, "suite_engine": res.engine}
            if res.docs_page:
                detail["data_docs"] = str(res.docs_page)
            rows.append((check_name(res.suite, o.expectation), res.suite.asset_str,
                         GX_ENGINE_NAME if o.engine == GX_ENGINE_NAME else "sql", o.expectation.effective_severity,
                         o.success, o.evaluated, o.unexpected, json.dumps(detail, ensure_ascii=False, default=str),
                         res.run_id, res.checked_at))
    if rows:
        con.executemany("INSERT INTO quality.check_result (check_name, asset, engine, severity, passed, evaluated, "
                        "unexpected, detail, run_id, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def quality_dir(var_dir: Path | None = None) -> Path:
    """``<HUB_VAR_DIR>/quality``: GX stores under ``gx/``, the Data Docs site under ``docs/``."""
    if var_dir is None:
        from hub.settings import Settings

        var_dir = Settings.from_env().var_dir
    return Path(var_dir) / "quality"


def docs_index(qdir: Path) -> Path:
    return qdir / "docs" / "index.html"


def build_data_docs(results: Sequence[SuiteResult], qdir: Path, runner: _GxRunner | None = None, *,
                    index: bool = True) -> Path:
    """Store each suite's results as a GX validation result and render their pages (and, with ``index``,
    the index) into the Data Docs site at ``qdir/docs``. Sets ``docs_page`` on each result; returns the
    index page.

    The index lists every stored validation, so rendering it costs more as they accumulate (about 0.3 CPU
    s with the demo's 45 suites, as much as the suite's own page); a run's checks render their pages
    only, and the index is rendered once after the run (:func:`build_docs_index`, the ``data_docs_index``
    sensor, ``hub demo``, ``hub serve-docs``)."""
    runner = runner if runner is not None and runner.quality_dir == qdir else _GxRunner(qdir)
    gx, ctx = runner.gx, runner.context
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    identifiers: list[Any] = []
    for res in results:
        suite = gx.ExpectationSuite(name=res.suite.name, expectations=[gx_expectation(e) for e in res.suite.expectations],
                                    meta={"asset": res.suite.asset_str, "description": res.suite.description,
                                          "file": res.suite.path.name})
        suite = ctx.suites.add_or_update(suite)
        configs = {e.meta["hub_id"]: e.configuration for e in suite.expectations}
        evrs = []
        for o in res.outcomes:
            info = {"raised_exception": bool(o.error), "exception_message": o.error, "exception_traceback": None}
            evrs.append(ExpectationValidationResult(success=o.success, expectation_config=configs[o.expectation.id],
                                                    result=o.result, exception_info=info,
                                                    meta={"engine": o.engine, "severity": o.expectation.effective_severity}))
        ok = sum(o.success for o in res.outcomes)
        run = RunIdentifier(run_name=res.run_id, run_time=res.checked_at)
        batch = f"{res.suite.table}-{res.engine}"
        vr = ExpectationSuiteValidationResult(
            success=res.success, results=evrs, suite_name=res.suite.name,
            statistics={"evaluated_expectations": len(evrs), "successful_expectations": ok,
                        "unsuccessful_expectations": len(evrs) - ok,
                        "success_percent": 100.0 * ok / len(evrs) if evrs else None},
            meta={"great_expectations_version": gx.__version__, "run_id": run,
                  "active_batch_definition": {"datasource_name": "hub_warehouse", "data_connector_name": res.engine,
                                              "data_asset_name": res.suite.table, "batch_identifiers": {}},
                  "batch_spec": {"engine": res.engine, "rows": res.rows, "seconds": round(res.seconds, 3)},
                  "asset": res.suite.asset_str})
        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=res.suite.name),
                                         run_id=run, batch_identifier=batch)
        ctx.validation_results_store.set(key, vr)
        identifiers += [key, ExpectationSuiteIdentifier(name=res.suite.name)]
    _prune(ctx, qdir, {r.suite.name for r in results})
    ctx.build_data_docs(site_names=["hub"], resource_identifiers=identifiers, build_index=index)
    pages = [_page(ctx, key) for key in identifiers]
    for res, page in zip(results, pages[::2], strict=True):
        res.docs_page = page
    from quality.datadocs import make_offline

    # CDN scripts and styles, and GX's S3 logo, from the site itself: on the pages just written
    make_offline(qdir / "docs", pages=[p for p in pages if p] + ([docs_index(qdir)] if index else []))
    return docs_index(qdir)


def _page(ctx: Any, key: Any) -> Path | None:
    url = ctx.get_docs_sites_urls(resource_identifier=key, site_name="hub")[0]["site_url"]
    return Path(url.removeprefix("file://")) if url else None


def build_docs_index(qdir: Path) -> Path | None:
    """Render the Data Docs index (every stored validation and suite) at ``qdir/docs/index.html``, and no
    other page; None when no validation was stored there yet."""
    if not (qdir / "gx" / "validations").is_dir():
        return None
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    ctx = _GxRunner(qdir).context
    # an identifier that names no resource: the section builders render nothing (an empty list means all)
    ctx.build_data_docs(site_names=["hub"], resource_identifiers=[ExpectationSuiteIdentifier(name="-index-only-")],
                        build_index=True)
    from quality.datadocs import make_offline

    make_offline(qdir / "docs", pages=[docs_index(qdir)])
    return docs_index(qdir)


def _prune(ctx: Any, qdir: Path, suites: set[str]) -> None:
    """Keep the newest KEEP_VALIDATIONS validation results per suite in the GX store and the site."""
    keys = [k for k in ctx.validation_results_store.list_keys()
            if k.expectation_suite_identifier.name in suites]
    by_suite: dict[str, list[Any]] = {}
    for k in keys:
        by_suite.setdefault(k.expectation_suite_identifier.name, []).append(k)
    for suite_keys in by_suite.values():
        suite_keys.sort(key=lambda k: k.run_id.run_time)
        for old in suite_keys[:-KEEP_VALIDATIONS]:
            ctx.validation_results_store.remove_key(old)
            page = (qdir / "docs" / "validations" / Path(*old.expectation_suite_identifier.name.split("."))
                    / old.run_id.run_name / old.run_id.to_tuple()[1])
            shutil.rmtree(page, ignore_errors=True)
            run_dir = (qdir / "gx" / "validations" / Path(*old.expectation_suite_identifier.name.split("."))
                       / old.run_id.run_name)
            for d in (run_dir / old.run_id.to_tuple()[1], run_dir, page.parent):
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()


def run_gate(con: duckdb.DuckDBPyConnection, suites: Iterable[Suite] | None = None, *, engine: str = "auto",
             run_id: str | None = None, record: bool = True, docs: bool = True, var_dir: Path | None = None,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, gx_max_rows: int = DEFAULT_GX_MAX_ROWS,
             render_index: bool = True) -> list[SuiteResult]:
    """Run suites (default: all), append their rows to quality.check_result and render Data Docs (their
    pages; the index too unless ``render_index`` is false: see :func:`build_data_docs`)."""
    suites = list(load_suites().values() if suites is None else suites)
    run_id = run_id or uuid.uuid4().hex
    qdir = quality_dir(var_dir) if docs else None
    runner = None
    results = []
    for suite in suites:
        rows = _count_if_exists(con, suite.table)
        if runner is None and (qdir is not None or choose_engine(rows or 0, engine, gx_max_rows) != "sql"):
            runner = _GxRunner(qdir)
        results.append(run_suite(con, suite, engine=engine, run_id=run_id, runner=runner, chunk_rows=chunk_rows,
                                 gx_max_rows=gx_max_rows))
    if qdir is not None:
        build_data_docs(results, qdir, runner, index=render_index)
    if record:
        record_results(con, results)
    return results


def _count_if_exists(con: duckdb.DuckDBPyConnection, table: str) -> int | None:
    if _table_columns(con, table) is None:
        return None
    return con.execute(f"SELECT count(*) FROM {_tref(table)}").fetchone()[0]

