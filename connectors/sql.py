"""SQL sources through SQLAlchemy 2: a table or a query, streamed in chunks into Arrow.

A ``query`` entity is the configured SELECT as a subquery; with a cursor it is filtered on the cursor
column (``>= :cursor``, bound). Nothing is sorted: a load commits whole, and its watermark is the highest
cursor value it read.

Tables are reflected, so identifiers come from the database's own catalogue and are quoted by
SQLAlchemy; the incremental bound is a bound parameter. Nothing from configuration or data is ever
formatted into SQL text. Memory is bounded by ``chunk_rows``: the driver streams (server-side cursors
where the dialect has them) and each chunk is handed on before the next is fetched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from connectors.base import ExtractStats, SourceError, table_as_text
from connectors.config import Entity, Source


def _engine(url: str) -> sa.Engine:
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise SourceError(f"database URL {sa.engine.make_url(url).render_as_string(hide_password=True)!r} "
                          f"is not usable: {exc}") from None


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
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def extract(self, cursor: str | None, stats: ExtractStats) -> Iterator[pa.Table]:
        engine = _engine(self.url)
        best = cursor
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=self.chunk_rows).execute(
                    self._statement(conn, cursor))
                names = list(result.keys())
                # Through SQLAlchemy's own partitions: reading the DBAPI cursor directly skips the rows
                # SQLAlchemy has already buffered (a test caught a lost row).
                for chunk in result.partitions(self.chunk_rows):
                    stats.pages += 1
                    columns = list(zip(*chunk, strict=True))
                    typed = pa.table({n: pa.array(c) for n, c in zip(names, columns, strict=True)})
                    stats.note_types(typed)
                    table = table_as_text(typed)
                    field = self.entity.cursor_field
                    if field and field in table.column_names:
                        top = pc.max(table.column(field)).as_py()
                        if top is not None and (best is None or top > best):
                            best = top
                    yield table
        except sa.exc.OperationalError as exc:
            raise SourceError(f"{self.source.name}.{self.entity.name}: cannot read {self._safe_url()}: "
                              f"{str(exc.orig).strip().splitlines()[0]}") from None
        finally:
            engine.dispose()
        stats.cursor_after = best
