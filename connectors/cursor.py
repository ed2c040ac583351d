"""The incremental cursor of a load: the highest cursor value it read, guarded against the future.

Every connector hands each page or chunk to one :class:`CursorTracker`. It keeps the highest value of
the entity's ``cursor_field``, compared in the value's own domain:

* a typed column (a database's ``timestamptz``, ``datetime(3)``, ``date``, integer or ``numeric``) is
  compared as that type;
* a text column by the entity's ``incremental.type``: ``string`` (ISO dates and times, or any text that
  sorts in order), ``int`` (an integer sequence), ``epoch_ms`` / ``epoch_s`` (integers that are times).

A value that lies beyond now plus a tolerance (``incremental.future_tolerance``, default one day) is a
clock error at the source, not progress: such a row is landed, reported as a ``cursor_in_future``
finding naming its key and value, and never moves the cursor (a cursor in the future would make every
later load read nothing). A ``cursor_field`` that no record of a non-empty load carries fails the load:
silently re-reading everything forever is never an option.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import Finding, SourceError, value_as_text

CURSOR_TYPES = ("string", "int", "epoch_ms", "epoch_s")
DEFAULT_FUTURE_TOLERANCE = dt.timedelta(days=1)
MAX_FINDINGS = 1000  # per load; past that one summary finding counts the rest
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_tolerance(text: Any) -> dt.timedelta:
    """``30s``, ``15m``, ``6h``, ``1d`` (or a number of seconds) as a timedelta; ValueError names the value."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return dt.timedelta(seconds=float(text))
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 15m, 6h, 1d)")
    return dt.timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


@dataclass
class _Domain:
    """How one cursor column's values compare (``kind``: number, time or text) and which lie in the future."""

    kind: str
    values: pa.Array | pa.ChunkedArray
    future: pa.Array | pa.ChunkedArray | None = None  # boolean mask; None: no future check applies


class CursorTracker:
    """Follows the highest cursor value across a load's pages; see the module's docstring."""

    def __init__(self, entity, before: str | None, *, now: dt.datetime | None = None,
                 tolerance: dt.timedelta = DEFAULT_FUTURE_TOLERANCE):
        self.entity = entity
        self.field: str | None = entity.cursor_field
        self.before = before
        self.now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        self.tolerance = tolerance
        self.rows_seen = 0
        self.field_seen = False
        self.findings: list[Finding] = []
        self.future_rows = 0
        self._best: Any = None      # comparable value
        self._best_text: str | None = None
        self._kind: str | None = None

    # -- pages ---------------------------------------------------------------------------------
    def observe(self, table: pa.Table) -> None:
        if not self.field or table.num_rows == 0:
            return
        self.rows_seen += table.num_rows
        if self.field not in table.column_names:
            return
        col = table.column(self.field)
        if col.null_count == len(col):
            return
        self.field_seen = True
        dom = self._domain(col)
        if dom.future is not None:
            future = pc.fill_null(dom.future, False)
            n_future = pc.sum(future).as_py() or 0
            if n_future:
                self._report_future(table, col, future, n_future)
                dom.values = pc.filter(dom.values, pc.invert(future))
                col = pc.filter(col, pc.invert(future))
        if len(dom.values) == 0:
            return
        idx = pc.index(dom.values, pc.max(dom.values)).as_py()
        if idx < 0:
            return
        top = dom.values[idx].as_py()
        if self._best is None or top > self._best:
            self._best, self._kind = top, dom.kind
            self._best_text = _text(col[idx].as_py())

    def _domain(self, col: pa.ChunkedArray) -> _Domain:
        t = col.type
        limit = self.now + self.tolerance
        if pa.types.is_timestamp(t):
            if t.tz is None:
                # A naive timestamp is the source's wall clock: compared naive (the tolerance covers zones).
                values = pc.cast(col, pa.timestamp("us"))
                return _Domain("time", values, pc.greater(values, pa.scalar(limit.replace(tzinfo=None),
                                                                            pa.timestamp("us"))))
            values = pc.cast(col, pa.timestamp("us", tz="UTC"))
            return _Domain("time", values, pc.greater(values, pa.scalar(limit, pa.timestamp("us", tz="UTC"))))
        if pa.types.is_date(t):
            values = pc.cast(pc.cast(col, pa.date32()), pa.timestamp("us"))
            return _Domain("time", values, pc.greater(values, pa.scalar(limit.replace(tzinfo=None),
                                                                        pa.timestamp("us"))))
        if pa.types.is_integer(t):
            return self._numeric(pc.cast(col, pa.int64()))
        if pa.types.is_decimal(t) or pa.types.is_floating(t):
            return _Domain("number", col)
        # Text: as the entity's incremental.type says.
        text = pc.cast(col, pa.string())
        ctype = self.entity.cursor_type
        if ctype in ("int", "epoch_ms", "epoch_s"):
            try:
                numbers = pc.cast(pc.utf8_trim_whitespace(text), pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad = [v for v in text.to_pylist() if v is not None and not str(v).strip().lstrip("-").isdigit()]
                raise SourceError(f"{self.entity.source}.{self.entity.name}: cursor field {self.field!r} is "
                                  f"declared {ctype} but holds {bad[0]!r}") from None
            return self._numeric(numbers)
        # ISO text compares as text (the source's own order); the future check reads the date and time
        # written at the start of a value that begins with one.
        iso = pc.match_substring_regex(text, _ISO_DATE)
        stamp = pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 19), "T", " ")
        return _Domain("text", text, pc.and_(iso, pc.greater(stamp, limit.strftime("%Y-%m-%d %H:%M:%S"))))

    def _numeric(self, values: pa.Array | pa.ChunkedArray) -> _Domain:
        limit = self.now + self.tolerance
        scale = {"epoch_ms": 1000, "epoch_s": 1}.get(self.entity.cursor_type)
        if scale is None:
            return _Domain("number", values)
        return _Domain("number", values, pc.greater(values, int(limit.timestamp() * scale)))

    def _report_future(self, table: pa.Table, col, future, n_future: int) -> None:
        self.future_rows += n_future
        keys = [k for k in self.entity.primary_key if k in table.column_names]
        rows = table.select(keys).filter(future) if keys else None
        values = pc.filter(col, future)
        room = MAX_FINDINGS - len(self.findings)
        for i in range(min(room, n_future)):
            key = "|".join("" if v is None else str(v) for v in rows.slice(i, 1).to_pylist()[0].values()) \
                if rows is not None else None
            value = _text(values[i].as_py())
            self.findings.append(Finding(
                kind="cursor_in_future", record_key=key, field=self.field, value=value,
                detail=f"{self.field} = {value} lies beyond now + {self.tolerance} "
                       f"({(self.now + self.tolerance):%Y-%m-%d %H:%M:%S} UTC): landed, the cursor not moved by it"))
        if n_future > room > -1:
            self.findings.append(Finding(
                kind="cursor_in_future", record_key=None, field=self.field, value=None,
                detail=f"{n_future - max(room, 0)} more row(s) with {self.field} in the future (not listed)"))

    # -- the end of the load -------------------------------------------------------------------
    def result(self) -> str | None:
        """The cursor to store: the highest value read (never behind ``before``), else ``before``."""
        if self.rows_seen and not self.field_seen:
            raise SourceError(
                f"{self.entity.source}.{self.entity.name}: cursor_field {self.field!r} is in none of the "
                f"{self.rows_seen:,} record(s) read — fix incremental.cursor_field (the load would re-read "
                "everything forever)")
        if self._best_text is None:
            return self.before
        if self.before is None:
            return self._best_text
        try:
            behind = self._best < _parse_like(self.before, self._best)
        except (TypeError, ValueError, InvalidOperation):
            behind = False
        return self.before if behind else self._best_text


def _text(value: Any) -> str | None:
    if isinstance(value, Decimal):
        return format(value, "f")
    return value_as_text(value)


def _parse_like(text: str, like: Any) -> Any:
    """The stored cursor text in the domain of ``like`` (a value of this load), for comparison."""
    if isinstance(like, dt.datetime):
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if like.tzinfo is None:
            return parsed.replace(tzinfo=None)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    if isinstance(like, Decimal):
        return Decimal(text)
    return text
