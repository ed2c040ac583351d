"""SQL sources through SQLAlchemy 2: a table or a query, streamed in chunks into Arrow.

A ``query`` entity is the configured SELECT as a subquery; with a cursor it is filtered on the cursor
column (``>= :cursor``, bound). Nothing is sorted: a load commits whole, and its watermark is the highest
cursor value it read.

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

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from connectors.base import ExtractStats, SourceError, table_as_text, value_as_text
from connectors.config import Entity, Source
from connectors.redact import redact


def _engine(url: str) -> sa.Engine:
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise SourceError(redact(f"database URL {sa.engine.make_url(url).render_as_string(hide_password=True)!r} "
                                 f"is not usable: {exc}")) from None


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


class SqlExtractor:
    def __init__(self, source: Source, entity: Entity):
        self.source, self.entity = source, entity
        self.url = source.setting("url")
        self.chunk_rows = int(source.setting("chunk_rows", 50_000))

    def _statement(self, conn: sa.Connection, cursor: str | None) -> sa.Select | sa.TextClause:
        opts, field = self.entity.options, self.entity.cursor_field
        if "query" in opts:
            # The configured query (configuration, like a table name) becomes a subquery; the cursor column
            # is quoted by the dialect and the bound is a parameter.
            if not field:
                return sa.text(opts["query"])
            col = conn.dialect.identifier_preparer.quote(field)
            where = f" WHERE q.{col} >= :cursor" if cursor is not None else ""
            stmt = sa.text(f"SELECT * FROM ({opts['query']}) q{where}")
            return stmt.bindparams(cursor=cursor) if cursor is not None else stmt
        try:
            table = sa.Table(opts["table"], sa.MetaData(), autoload_with=conn)
        except sa.exc.NoSuchTableError:
            raise SourceError(f"{self.source.name}.{self.entity.name}: table {opts['table']!r} not found in "
                              f"{self._safe_url()}") from None
        stmt = sa.select(table)
        if field:
            if field not in table.c:
                raise SourceError(f"{self.source.name}.{self.entity.name}: cursor column {field!r} not in "
                                  f"table {opts['table']!r}")
            if cursor is not None:
                stmt = stmt.where(table.c[field] >= sa.bindparam("cursor", cursor))
        # No ORDER BY: the load commits whole, and the new watermark is the highest value read.
        return stmt

    def _safe_url(self) -> str:
        return redact(sa.engine.make_url(self.url).render_as_string(hide_password=True))

    def extract(self, cursor: str | None, stats: ExtractStats) -> Iterator[pa.Table]:
        engine = _engine(self.url)
        best = cursor
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=self.chunk_rows).execute(
                    self._statement(conn, cursor))
                names = list(result.keys())
                fetch, struct = _fetcher(result, self.chunk_rows), None
                while True:
                    with gc_paused():
                        rows = fetch()
                        if not rows:
                            break
                        typed, struct = rows_to_arrow(rows, names, struct, stats)
                        del rows
                    stats.pages += 1
                    stats.note_types(typed)
                    table = table_as_text(typed)
                    field = self.entity.cursor_field
                    if field and field in table.column_names:
                        top = pc.max(table.column(field)).as_py()
                        if top is not None and (best is None or top > best):
                            best = top
                    yield table
        except sa.exc.OperationalError as exc:
            raise SourceError(redact(f"{self.source.name}.{self.entity.name}: cannot read {self._safe_url()}: "
                                     f"{str(exc.orig).strip().splitlines()[0]}")) from None
        finally:
            engine.dispose()
        stats.cursor_after = best
