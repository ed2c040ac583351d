"""What every connector hands the raw zone: Arrow batches of text columns, plus what it saw doing it.

The raw zone keeps values as the source sent them, as text: an ID number keeps its leading zeros and
its lower-case x, a date keeps its source format. Typing and normalising happen in staging, where a value
that does not parse is quarantined with a reason rather than coerced.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class SourceError(RuntimeError):
    """A source could not be read; the message names the source, entity and the cause in one line."""


@dataclass
class Rejected:
    """A row that could not even be read (undecodable bytes, a broken line): it goes to quarantine."""

    rule: str
    detail: str
    record_key: str | None = None
    original: dict[str, Any] | None = None


@dataclass
class Finding:
    """Something a load noticed about a row it landed (e.g. a cursor value in the future): reported in
    ``quality.load_finding`` with the load, never silently acted on."""

    kind: str
    detail: str
    record_key: str | None = None
    field: str | None = None
    value: str | None = None


@dataclass
class ExtractStats:
    pages: int = 0
    files: int = 0
    retries: int = 0
    encoding: str | None = None
    cursor_after: str | None = None
    rejected: list[Rejected] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # column -> type family the source sent it as (string, number, boolean, datetime, nested, mixed)
    source_types: dict[str, str] = field(default_factory=dict)

    def note_types(self, table: pa.Table) -> None:
        """Record the type family of each column of a page or chunk, before it becomes text."""
        for f in table.schema:
            self.note_type(f.name, f.type)

    def note_type(self, name: str, t: pa.DataType) -> None:
        family = type_family(t)
        if family is None:
            return
        known = self.source_types.setdefault(name, family)
        if known != family:
            self.source_types[name] = "mixed"


def type_family(t: pa.DataType) -> str | None:
    """A source type's family: what drift detection compares (an int page and a float page are both
    numbers; a number becoming a string is a change). None for an all-null column: it says nothing."""
    if pa.types.is_null(t):
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_temporal(t):
        return "datetime"
    if pa.types.is_nested(t):
        return "nested"
    return str(t)


def value_as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _column_as_text(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false")
    if pa.types.is_floating(t):
        # 78.0 -> "78", 91.5 -> "91.5": integral floats from JSON/Excel read as the integers they are
        as_int = pc.cast(col, pa.int64(), safe=False)
        integral = pc.equal(pc.cast(as_int, t), col)
        return pc.if_else(integral, pc.cast(as_int, pa.string()), pc.cast(col, pa.string()))
    if pa.types.is_decimal(t):
        return _decimal_as_text(col)
    if pa.types.is_integer(t) or pa.types.is_temporal(t):
        return pc.cast(col, pa.string())
    return pa.array([value_as_text(v) for v in col.to_pylist()], pa.string())


def _decimal_as_text(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Decimals as the database writes them, to their scale: 0.0000000001, never Arrow's 1E-10.

    Arrow writes a value whose adjusted exponent is below -6 in scientific notation (a numeric(30,10)
    zero is "0E-10"), which only a scale above 6 (or below 0) allows; only those values are rewritten,
    one by one."""
    text = pc.cast(col, pa.string())
    if 0 <= col.type.scale <= 6:
        return text
    sci = pc.fill_null(pc.match_substring(text, "E"), False)
    if not pc.any(sci).as_py():
        return text
    if isinstance(text, pa.ChunkedArray):
        text, sci = text.combine_chunks(), sci.combine_chunks()
    plain = [format(Decimal(v), "f") for v in pc.filter(text, sci).to_pylist()]
    return pc.replace_with_mask(text, sci, pa.array(plain, pa.string()))


def table_as_text(table: pa.Table) -> pa.Table:
    """Every column as nullable text, column-wise (no loop over rows except for nested values)."""
    return pa.table({name: _column_as_text(table.column(name)) for name in table.column_names})


def records_to_table(records: list[dict[str, Any]], stats: ExtractStats | None = None) -> pa.Table:
    """JSON objects to an Arrow table of text columns; the union of keys, in first-seen order.

    Each column is inferred on its own: a column whose values mix types (a number here, a string there)
    becomes text per value without touching the others. A nested object or list lands as the record's
    own JSON text (keys sorted, so a re-read of the same record gives the same text): Arrow would merge
    the shapes of a page's objects, giving a key one record lacks back as null."""
    if not records:
        return pa.table({})
    try:
        keys = set().union(*records)
        names = list(records[0]) if len(keys) == len(records[0]) else \
            list(dict.fromkeys(k for r in records for k in r))
        columns = {name: [r.get(name) for r in records] for name in names}
    except (TypeError, AttributeError):
        bad = next(r for r in records if not isinstance(r, dict))
        raise SourceError(f"a record is not a JSON object: {str(bad)[:80]!r}") from None
    out = {}
    for name, values in columns.items():
        try:
            typed = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            if stats is not None:
                stats.source_types[name] = "mixed"
            out[name] = pa.array([value_as_text(v) for v in values], pa.string())
            continue
        if stats is not None:
            stats.note_type(name, typed.type)
        if pa.types.is_nested(typed.type):
            out[name] = pa.array([value_as_text(v) for v in values], pa.string())
        else:
            out[name] = _column_as_text(typed)
    return pa.table(out)


def rows_to_table(columns: list[str], rows: list[list[Any]]) -> pa.Table:
    """Spreadsheet rows to text columns; an empty cell is null, as in CSV."""
    width = len(columns)
    padded = (list(r[:width]) + [None] * (width - len(r)) for r in rows)
    cols = list(zip(*padded, strict=True)) if rows else [()] * width
    return pa.table({name: pa.array([None if v == "" else value_as_text(v) for v in col], pa.string())
                     for name, col in zip(columns, cols, strict=True)})
