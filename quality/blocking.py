"""What may stop a run: blocking is reserved for problems that are systemic.

A bad row is caught at its row (staging quarantines it with the reason) and reported; it never stops
the college's publishing. A table check blocks — it is a ``blocking`` Dagster asset check that fails with
severity ERROR: Dagster skips only the assets built on that table, and the publish gate, which reads the
checks' latest evaluations from Dagster's check storage (``pipelines/gate.py``), keeps their datasets at
the previous version until the check passes on the current data — when the table as a whole is wrong:

* the share of an entity's rows that staging quarantined is above its threshold
  (``HUB_QUARANTINE_MAX_RATE``, default 2 %, per entity ``HUB_QUARANTINE_MAX_RATE_BY_ENTITY``) and at
  least :data:`MIN_ROWS_TO_BLOCK` rows are quarantined (a single row never blocks), or an
  entity has no rows at all (a whole entity missing): the ``quarantine_rate`` check of each staging model;
* a key repeats (uniqueness expectations of severity ``error``), or a table shrank or grew beyond its
  ratio of the previous count (row-count expectations): :data:`quality.expectations.SYSTEMIC`;
* rows are lost between a load and the raw zone (``row_conservation``) or a person is not one row
  (``one_row_per_person``).

Every other expectation judges single rows (a value missing, out of its set, range or shape): it is
reported with severity warning whatever the suite says, with its count and the keys of sample rows.
The party business rules judge records too: their checks are not blocking; the records breaking an
error-severity rule are held back from the datasets that read ``quality.rule_violation`` (the national
development table), and that table is published only once the rule checks evaluated the current data.
``quality.check_result`` keeps every outcome as history for analysts; it is not what blocks.
This module holds the thresholds and the queries that tell an operator which rows to look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from connectors.raw_zone import q

DEFAULT_MAX_QUARANTINE_RATE = 0.02
RATE_VAR = "HUB_QUARANTINE_MAX_RATE"
RATE_BY_ENTITY_VAR = "HUB_QUARANTINE_MAX_RATE_BY_ENTITY"
# Quarantine rules that are not faults of the data, not counted in the rate: another copy of a row in the
# same load (the accepted copy carries the record) and a version replaced by a newer one.
NOT_FAULTS = ("duplicate_row", "superseded")
# One bad row never stops the college, however small the entity (one of 40 party organisations is 2.5%):
# the rate blocks only when at least this many rows are quarantined.
MIN_ROWS_TO_BLOCK = 2
SAMPLE_KEYS = 5


def parse_rate(text: str, where: str) -> float:
    """``2%`` or ``0.02`` -> 0.02; anything else is one line naming ``where`` and the value."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a rate (write 2% or 0.02)") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{where}: {text!r} is not a rate between 0% and 100%")
    return value


def parse_rates(text: str, where: str = RATE_BY_ENTITY_VAR) -> dict[str, float]:
    """``hr.staff=5%,learning.courses=0.1`` -> {"hr.staff": 0.05, "learning.courses": 0.1}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        entity, sep, rate = part.partition("=")
        entity = entity.strip()
        if not sep or entity.count(".") != 1 or not all(entity.split(".")):
            raise ValueError(f"{where}: {part!r} is not source.entity=rate (e.g. hr.staff=5%)")
        out[entity] = parse_rate(rate, f"{where} {entity}")
    return out


def max_rate(entity: str, default: float, by_entity: Mapping[str, float]) -> float:
    return float(by_entity.get(entity, default))


@dataclass(frozen=True)
class QuarantineRate:
    source: str
    entity: str
    staged: int
    quarantined: int                 # rows kept out for a fault of theirs (NOT_FAULTS left out)
    by_rule: dict[str, int]
    samples: list[dict[str, Any]]    # rule, record_key, detail of a few quarantined rows
    threshold: float

    @property
    def rows(self) -> int:
        return self.staged + self.quarantined

    @property
    def rate(self) -> float:
        return self.quarantined / self.rows if self.rows else 0.0

    @property
    def missing(self) -> bool:
        return self.rows == 0

    @property
    def passed(self) -> bool:
        return not self.missing and (self.rate <= self.threshold or self.quarantined < MIN_ROWS_TO_BLOCK)

    def look_at(self) -> str:
        return (f"SELECT rule, record_key, detail, original_row FROM quality.quarantine WHERE stage = 'staging' "
                f"AND source = '{self.source}' AND entity = '{self.entity}' ORDER BY rule, record_key")

    def describe(self) -> str:
        if self.missing:
            return (f"{self.source}.{self.entity} has no rows at all: the whole entity is missing "
                    "(an empty export or an empty response)")
        verdict = "above" if self.rate > self.threshold else "within"
        single = (f" (a single row never blocks: at least {MIN_ROWS_TO_BLOCK} are needed)"
                  if self.rate > self.threshold and self.quarantined < MIN_ROWS_TO_BLOCK else "")
        return (f"{self.quarantined} of {self.rows} rows quarantined ({self.rate:.1%}), {verdict} the "
                f"threshold of {self.threshold:.1%} for {self.source}.{self.entity}{single}")


def quarantine_rate(con: duckdb.DuckDBPyConnection, *, source: str, entity: str, staging_table: str,
                    threshold: float) -> QuarantineRate:
    """The share of the entity's current rows that staging quarantined (its latest build)."""
    staged = con.execute(f"SELECT count(*) FROM staging.{q(staging_table)}").fetchone()[0]
    faults = ", ".join(f"'{r}'" for r in NOT_FAULTS)
    by_rule = dict(con.execute(
        f"SELECT rule, count(*) FROM quality.quarantine WHERE stage = 'staging' AND source = ? AND entity = ? "
        f"AND rule NOT IN ({faults}) GROUP BY ALL ORDER BY 1", [source, entity]).fetchall())
    samples = [{"rule": r, "record_key": k, "detail": d} for r, k, d in con.execute(
        f"SELECT rule, record_key, detail FROM quality.quarantine WHERE stage = 'staging' AND source = ? "
        f"AND entity = ? AND rule NOT IN ({faults}) ORDER BY rule, record_key LIMIT {SAMPLE_KEYS}",
        [source, entity]).fetchall()]
    return QuarantineRate(source, entity, int(staged), sum(by_rule.values()), by_rule, samples, threshold)


# ---------------------------------------------------------------------------- expectations


def key_columns(suite) -> tuple[str, ...]:
    """The columns that name a row of the suite's table: those of its first uniqueness expectation."""
    from quality.expectations import UNIQUENESS

    return next((e.columns for e in suite.expectations if e.type in UNIQUENESS), ())


def sample_keys(con: duckdb.DuckDBPyConnection, suite, exp, limit: int = SAMPLE_KEYS) -> list[Any]:
    """Keys of a few rows breaking a row-level expectation (ID and phone columns masked)."""
    from quality.expectations import _bad_condition, _considered, _jsonable, _mask, _table_columns, _tref

    keys = key_columns(suite)
    types = _table_columns(con, suite.table)
    if not keys or types is None or not set(keys) <= set(types) or not set(exp.columns) <= set(types):
        return []
    if exp.type == "expect_column_values_to_pass_gb11643_checksum":
        c = q(exp.columns[0])
        where = f"{c} IS NOT NULL AND NOT id_is_valid({f'id_normalize({c})' if exp.normalize else c})"
    else:
        bad = _bad_condition(exp, types)
        if bad is None:
            return []
        where = f"({_considered(exp)}) AND ({bad})"
    cols = ", ".join(q(k) for k in keys)
    rows = con.execute(f"SELECT {cols} FROM {_tref(suite.table)} WHERE {where} ORDER BY {cols} "
                       f"LIMIT {int(limit)}").fetchall()
    return [_jsonable(_mask(keys[0], r[0])) if len(keys) == 1 else
            {k: _jsonable(_mask(k, v)) for k, v in zip(keys, r, strict=True)} for r in rows]


def look_at(suite, exp) -> str:
    """A query that shows the rows behind a failing expectation."""
    t = suite.table
    if exp.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        cols = ", ".join(q(c) for c in exp.columns)
        return f"SELECT {cols}, count(*) AS copies FROM {t} GROUP BY ALL HAVING count(*) > 1 ORDER BY copies DESC"
    if exp.type.startswith("expect_table_row_count"):
        return (f"SELECT checked_at, evaluated AS rows, passed FROM quality.check_result WHERE check_name = "
                f"'{suite.name}:{exp.id}' ORDER BY checked_at DESC LIMIT 5")
    return f"SELECT * FROM {t} LIMIT 20"
