"""Copy the academic system's tables from its SQLite file into PostgreSQL or MariaDB.

The column list and primary key are read from the SQLite schema, so the target tables carry the same
column names. Rows are streamed in chunks: memory stays bounded however large ``jw_cj`` is.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Column, Double, Index, Integer, MetaData, String, Table, Text, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

TABLES = ("jw_kc", "jw_cj")
_INDEXED = {"jw_cj": ("updated_at",)}
_MIN_VARCHAR = 32
# MariaDB: store text as 4-byte UTF-8 and compare keys byte-wise, as SQLite does.
_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def load_academic(data_dir: str | os.PathLike[str], url: str, *, chunk_rows: int = 50_000) -> dict[str, int]:
    """Replace tables ``jw_kc`` and ``jw_cj`` in the database at SQLAlchemy ``url`` with the SQLite copies.

    Reads ``data_dir/academic/academic.sqlite``; returns the number of rows copied per table.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    source_path = Path(data_dir) / "academic" / "academic.sqlite"
    if not source_path.is_file():
        raise FileNotFoundError(f"no academic database: {source_path}")
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
    engine = create_engine(url)
    try:
        with engine.begin() as target:
            return {name: _copy_table(source, target, name, chunk_rows) for name in TABLES}
    finally:
        engine.dispose()
        source.close()


def _copy_table(source: sqlite3.Connection, target: Connection, name: str, chunk_rows: int) -> int:
    """Drop and recreate ``name`` in the target, insert the SQLite rows chunk by chunk, then index it."""
    table = _target_table(source, name)
    table.drop(target, checkfirst=True)
    table.create(target)
    copied = 0
    for chunk in _chunks(source, table, chunk_rows):
        target.execute(table.insert(), chunk)
        copied += len(chunk)
    for column in _INDEXED.get(name, ()):
        Index(f"ix_{name}_{column}", table.c[column]).create(target)
    return copied


def _target_table(source: sqlite3.Connection, name: str) -> Table:
    """Describe SQLite table ``name`` as a SQLAlchemy table: same columns and primary key."""
    info = source.execute("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)).fetchall()
    if not info:
        raise LookupError(f"table {name!r} not found in the academic database")
    indexed = set(_INDEXED.get(name, ()))
    columns = [
        Column(
            column,
            _column_type(source, name, column, declared, keyed=bool(pk) or column in indexed),
            primary_key=bool(pk),
            autoincrement=False,
        )
        for column, declared, pk in info
    ]
    return Table(name, MetaData(), *columns, **_TABLE_OPTIONS)


def _column_type(
    source: sqlite3.Connection, table: str, column: str, declared: str, *, keyed: bool
) -> TypeEngine:
    """Map a SQLite declared type (by SQLite's affinity rules) to a portable column type.

    Text that is part of a key or index becomes VARCHAR sized to the data, because MariaDB cannot
    index unbounded TEXT; other text stays TEXT.
    """
    affinity = declared.upper()
    if "INT" in affinity:
        return Integer()
    if any(word in affinity for word in ("REAL", "FLOA", "DOUB")):
        return Double()
    if keyed:
        return String(_varchar_length(source, table, column))
    return Text()


def _varchar_length(source: sqlite3.Connection, table: str, column: str) -> int:
    """A VARCHAR length that fits the longest value in the column, with some headroom."""
    quoted_table, quoted_column = _quote(table), _quote(column)
    longest = source.execute(f"SELECT max(length({quoted_column})) FROM {quoted_table}").fetchone()[0]
    return max(_MIN_VARCHAR, 2 * (longest or 0))


def _chunks(source: sqlite3.Connection, table: Table, chunk_rows: int) -> Iterator[list[dict]]:
    """Yield the SQLite rows of ``table`` in primary-key order, ``chunk_rows`` at a time, as dicts."""
    names = [column.name for column in table.columns]
    order = ", ".join(_quote(column.name) for column in table.primary_key.columns) or "rowid"
    cursor = source.execute(
        f"SELECT {', '.join(map(_quote, names))} FROM {_quote(table.name)} ORDER BY {order}"
    )
    try:
        while rows := cursor.fetchmany(chunk_rows):
            yield [dict(zip(names, row, strict=True)) for row in rows]
    finally:
        cursor.close()


def _quote(identifier: str) -> str:
    """Quote a SQLite identifier taken from the schema (identifiers cannot be bound as parameters)."""
    return '"' + identifier.replace('"', '""') + '"'
