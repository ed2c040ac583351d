"""SQL sources through SQLAlchemy 2: a table or a query, streamed in chunks into Arrow.

A ``query`` entity is the configured SELECT as a subquery; with a cursor it is filtered on the cursor
column (``>= :cursor``, bound). Nothing is sorted: a load commits whole, and its watermark is the highest
cursor value it read. A table may be named with its schema (``schema:``, or ``schema.table``; on MySQL
and MariaDB the schema is another database).

The stored cursor is text (:mod:`connectors.cursor`); it is bound as the cursor column's own type, so a
PostgreSQL ``timestamptz`` is compared with a ``timestamptz``, a MariaDB ``datetime(3)`` with a datetime
to the millisecond, a ``numeric`` with a ``Decimal``. A table's column type comes from reflection; a
query's from the DB-API type code of its result (read from a probe that returns no rows), the shape of
the stored text telling a date from a timestamp with or without a zone, an integer from a decimal.

Tables are reflected, so identifiers come from the database's own catalogue and are quoted by
SQLAlchemy; the incremental bound is a bound parameter. Nothing from configuration or data is ever
formatted into SQL text. Memory is bounded by ``chunk_rows``: the driver streams (server-side cursors
where the dialect has them) and each chunk is handed on before the next is fetched.

A chunk goes from the driver's row tuples to Arrow in one pass (``pa.array(rows, struct)``, then
flattened), with the column types of the previous chunk; only a chunk that does not fit them (a
column that was all NULL so far, a type that changed) is inferred column by column. Rows are taken
as the driver returns them, without SQLAlchemy's per-row ``Row`` objects and result processors, so
a value keeps the form the database sent (SQLite dates stay the text they are stored as). Python's
cyclic garbage collector is paused while a chunk is fetched and converted: its 50k short-lived
tuples would otherwise trigger collections that cost a third of the load's CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import gc
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import ExtractStats, SourceError, table_as_text, value_as_text
from connectors.config import Entity, Source
from connectors.cursor import CursorTracker
from connectors.redact import redact


def safe_url(url: str) -> str:
    """The URL with its password hidden; a URL SQLAlchemy cannot parse is not repeated at all."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "(not a SQLAlchemy URL)"


def _engine(url: str, where: str) -> sa.Engine:
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise SourceError(redact(f"{where}: database URL {safe_url(url)!r} is not usable: "
                                 f"{_first_line(exc)}")) from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for a burst of allocation that creates no cycles (fetch + convert)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fetcher(result: sa.CursorResult, size: int) -> Callable[[], Sequence[Any]]:
    """A function returning the next ``size`` rows as the driver's tuples, [] at the end.

    Through the result's own fetch strategy (``CursorResult._fetchmany_impl``, what ``fetchmany``
    calls before it wraps each tuple in a ``Row``), which serves the rows SQLAlchemy has already
    buffered before it reads the DBAPI cursor again: reading ``result.cursor`` directly loses them (a
    test caught that). Where that is not available, SQLAlchemy's public ``fetchmany``."""
    raw = getattr(result, "_fetchmany_impl", None)  # SQLAlchemy 2: the strategy's raw fetch
    if raw is not None:
        return lambda: raw(size)
    return lambda: [tuple(r) for r in result.fetchmany(size)]


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError)


def rows_to_arrow(rows: Sequence[Any], names: list[str], struct: pa.StructType | None,
                  stats: ExtractStats | None = None) -> tuple[pa.Table, pa.StructType]:
    """Row tuples to an Arrow table: one pass with the known struct type, else inferred per column.

    A column whose values in this chunk have no common type (SQLite's loose typing: numbers and text
    in one column) becomes text value by value and is recorded as ``mixed``."""
    if struct is not None:
        try:
            return pa.Table.from_struct_array(pa.array(rows, type=struct)), struct
        except _ARROW_ERRORS:
            pass  # a type changed, or a column was all NULL until now: infer this chunk's types
    arrays = {}
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        try:
            arrays[name] = pa.array(values)
        except _ARROW_ERRORS:
            arrays[name] = pa.array([value_as_text(v) for v in values], pa.string())
            if stats is not None:
                stats.source_types[name] = "mixed"
    table = pa.table(arrays)
    return table, pa.struct(list(table.schema))


_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def typed_cursor(text: str, python_type: type | None, *, aware: bool | None = None) -> Any:
    """The stored cursor text as a value of the cursor column's Python type (ValueError if it is not one).

    ``python_type`` None (unknown) keeps the text. ``aware``: the column holds times with a zone (True),
    without one (False), or unknown (None: as the text says)."""
    if python_type is None or python_type is str:
        return text
    if python_type is dt.datetime:
        value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
        if aware and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # a naive cursor read from a zoned column is UTC
        elif aware is False and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        return value
    if python_type is dt.date:
        return dt.date.fromisoformat(text.strip()[:10])
    if python_type is dt.time:
        return dt.time.fromisoformat(text.strip())
    if python_type is int:
        number = Decimal(text.strip())
        if number != number.to_integral_value():
            raise ValueError(f"{text!r} is not an integer")
        return int(number)
    if python_type is Decimal:
        return Decimal(text.strip())
    if python_type is float:
        return float(text)
    return text


def _shape_type(text: str, family: str) -> tuple[type | None, bool | None]:
    """A query column's Python type from its DB-API family and the shape of the stored cursor text."""
    t = text.strip()
    if family == "time":
        if _TIME.match(t):
            return dt.time, None
        if len(t) == 10:
            return dt.date, None
        return dt.datetime, dt.datetime.fromisoformat(t.replace(" ", "T", 1)).tzinfo is not None
    if family == "number":
        return (int, None) if re.fullmatch(r"[+-]?\d+", t) else (Decimal, None)
    return str, None


_BIND_TYPES = {dt.date: sa.Date(), dt.time: sa.Time(), int: sa.BigInteger(), Decimal: sa.Numeric(),
               float: sa.Float(), str: sa.String()}


class SqlExtractor:
    def __init__(self, source: Source, entity: Entity):
        self.source, self.entity = source, entity
        self.url = source.setting("url")
        rows = source.setting("chunk_rows", 50_000)
        try:
            self.chunk_rows = int(rows)
        except (TypeError, ValueError):
            self.chunk_rows = 0
        if self.chunk_rows <= 0:
            raise SourceError(f"{self.where}: sources.{source.name}.chunk_rows must be a positive integer, "
                              f"got {rows!r}")

    @property
    def where(self) -> str:
        return f"{self.source.name}.{self.entity.name}"

    def _table(self, conn: sa.Connection) -> sa.Table:
        """The configured table, reflected; ``schema:`` or ``schema.table`` names its schema."""
        opts = self.entity.options
        name, schema = opts["table"], opts.get("schema")
        candidates = [(name, schema)]
        if schema is None and "." in name:
            head, _, tail = name.partition(".")
            candidates = [(tail, head), (name, None)]  # schema.table first; a table whose name has a dot
        for table_name, table_schema in candidates:
            try:
                return sa.Table(table_name, sa.MetaData(), schema=table_schema, autoload_with=conn)
            except sa.exc.NoSuchTableError:
                continue
        shown = f"{schema}.{name}" if schema else name
        raise SourceError(f"{self.where}: table {shown!r} not found in {safe_url(self.url)}")

    def _bound(self, cursor: str, python_type: type | None, aware: bool | None, sql_type: Any,
               described: str) -> sa.BindParameter:
        try:
            value = typed_cursor(cursor, python_type, aware=aware)
        except (ValueError, InvalidOperation, TypeError):
            raise SourceError(f"{self.where}: the stored cursor {cursor!r} is not a value of cursor column "
                              f"{self.entity.cursor_field!r} ({described}); fix the column or reset the "
                              "entity's row in meta.source_cursor") from None
        return sa.bindparam("cursor", value, type_=sql_type)

    @property
    def _numbers_in_text(self) -> bool:
        """The cursor is declared a number (``incremental.type``): a text column is compared as BIGINT
        (as text, '100' < '99' and rows would be lost)."""
        return self.entity.cursor_type in ("int", "epoch_ms", "epoch_s")

    def _query_bound(self, conn: sa.Connection, query: str, cursor: str | None,
                     ) -> tuple[sa.BindParameter | None, bool]:
        """Check the cursor column is in the query's result and type the bound from the result's column;
        also say whether the column is text to be compared as an integer.

        A probe (the query under ``WHERE 1=0``) returns no rows but describes the columns: their DB-API
        type codes say time, number or text (PEP 249's type objects)."""
        field = self.entity.cursor_field
        probe = conn.execute(sa.text(f"SELECT q.* FROM ({query}) q WHERE 1=0"))
        try:
            description = probe.cursor.description or ()
        finally:
            probe.close()
        names = [d[0] for d in description]
        if names and field not in names:
            raise SourceError(f"{self.where}: cursor column {field!r} is not in the query's result "
                              f"(it has {names[:12]}{'…' if len(names) > 12 else ''})")
        if cursor is None:
            return None, False
        code = next((d[1] for d in description if d[0] == field), None)
        dbapi = conn.dialect.dbapi
        family = "text"
        if code is not None and dbapi is not None:
            if any(getattr(dbapi, t, None) == code for t in ("DATETIME", "DATE", "TIME", "TIMESTAMP")):
                family = "time"
            elif getattr(dbapi, "NUMBER", None) == code:
                family = "number"
        if family == "text" and self._numbers_in_text:
            return self._bound(cursor, int, None, sa.BigInteger(), "text declared a number"), True
        if code is None:
            return sa.bindparam("cursor", cursor), False  # the driver describes no types (SQLite): as stored
        try:
            python_type, aware = _shape_type(cursor, family)
        except ValueError:
            python_type, aware = str, None
        sql_type = sa.DateTime(timezone=bool(aware)) if python_type is dt.datetime else _BIND_TYPES[python_type]
        return self._bound(cursor, python_type, aware, sql_type, f"a {family} column of the query"), False

    def _table_condition(self, conn: sa.Connection, table: sa.Table, column: sa.Column,
                         python_type: type | None, cursor: str) -> sa.ColumnElement[bool]:
        if python_type in (str, None) and self._numbers_in_text:
            return sa.cast(column, sa.BigInteger) >= self._bound(cursor, int, None, sa.BigInteger(),
                                                                 f"{column.type} declared a number")
        if conn.dialect.name == "sqlite":
            # SQLite hands values over as stored (its dates are text): the cursor is that text.
            return column >= sa.bindparam("cursor", cursor)
        aware = getattr(column.type, "timezone", None) if python_type is dt.datetime else None
        return column >= self._bound(cursor, python_type, aware, column.type, f"{column.type} in {table.fullname}")

    def _statement(self, conn: sa.Connection, cursor: str | None) -> sa.Select | sa.TextClause:
        opts, field = self.entity.options, self.entity.cursor_field
        if "query" in opts:
            # The configured query (configuration, like a table name) becomes a subquery; the cursor column
            # is quoted by the dialect and the bound is a parameter of the column's type.
            if not field:
                return sa.text(opts["query"])
            bound, as_int = self._query_bound(conn, opts["query"], cursor)
            if bound is None:
                return sa.text(f"SELECT * FROM ({opts['query']}) q")
            lhs = sa.literal_column("q." + conn.dialect.identifier_preparer.quote(field))
            if as_int:  # the dialect's own CAST (MySQL: SIGNED INTEGER); identifiers and a type, no data
                lhs = sa.cast(lhs, sa.BigInteger)
            lhs_sql = str(lhs.compile(dialect=conn.dialect))
            return sa.text(f"SELECT * FROM ({opts['query']}) q WHERE {lhs_sql} >= :cursor").bindparams(bound)
        table = self._table(conn)
        stmt = sa.select(table)
        if field:
            if field not in table.c:
                raise SourceError(f"{self.where}: cursor column {field!r} not in table {table.fullname!r} "
                                  f"(it has {list(table.c.keys())[:12]})")
            column = table.c[field]
            try:
                python_type = column.type.python_type
            except NotImplementedError:
                python_type = None
            if cursor is not None:
                stmt = stmt.where(self._table_condition(conn, table, column, python_type, cursor))
        # No ORDER BY: the load commits whole, and the new watermark is the highest value read.
        return stmt

    def extract(self, cursor: str | None, stats: ExtractStats) -> Iterator[pa.Table]:
        engine = _engine(self.url, self.where)
        tracker = CursorTracker(self.entity, cursor, tolerance=self.entity.future_tolerance)
        step = "connecting"
        try:
            with engine.connect() as conn:
                step = "preparing the statement"
                stmt = self._statement(conn, cursor)
                step = "running the statement"
                result = conn.execution_options(stream_results=True, yield_per=self.chunk_rows).execute(stmt)
                names = list(result.keys())
                fetch, struct = _fetcher(result, self.chunk_rows), None
                while True:
                    step = f"reading chunk {stats.pages + 1}"
                    with gc_paused():
                        rows = fetch()
                        if not rows:
                            break
                        typed, struct = rows_to_arrow(rows, names, struct, stats)
                        del rows
                    stats.pages += 1
                    stats.note_types(typed)
                    tracker.observe(typed)  # compared as the column's own type, then landed as text
                    yield table_as_text(typed)
        except sa.exc.OperationalError as exc:
            raise SourceError(redact(f"{self.where}: cannot read {safe_url(self.url)} ({step}): "
                                     f"{_first_line(exc)}")) from None
        except SourceError:
            raise
        except Exception as exc:  # a driver's or SQLAlchemy's error, of whatever type: one line, with the step
            bound = f" with cursor {self.entity.cursor_field!r} >= {cursor!r}" if cursor is not None else ""
            raise SourceError(redact(f"{self.where}: {step}{bound} failed on {safe_url(self.url)}: "
                                     f"{type(getattr(exc, 'orig', None) or exc).__name__}: {_first_line(exc)}")) from None
        finally:
            engine.dispose()
        stats.cursor_after = tracker.result()
        stats.findings.extend(tracker.findings)
