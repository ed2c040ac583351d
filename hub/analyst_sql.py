"""``hub sql``: queries on the analysts' snapshot, confined to reading it.

The snapshot is attached read-only under its own name (``analyst``), then the connection is closed to
everything else: ``enable_external_access = false`` (no file, network or extension access), the only
``allowed_directories`` the snapshot's own folder, and ``lock_configuration = true`` so that no query can
undo that. On top, only queries (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE) are accepted: ATTACH, COPY,
EXPLAIN (ANALYZE would run its statement), EXPORT, INSTALL, LOAD, SET, PRAGMA, CREATE, INSERT, UPDATE … are refused with one line before they
run. Saving a result is ``--export FILE`` (CSV or Parquet), written by the hub from the query's result,
so it carries the same masking as the snapshot itself; in a CSV, text that a spreadsheet would run as a
formula (``=``, ``+``, ``-``, ``@``) is written with a leading apostrophe (hub/neutralise.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.neutralise import neutralise_batch
from models import sql_dir

# Queries only. Not even EXPLAIN: EXPLAIN ANALYZE runs its statement, a COPY included.
ALLOWED = {duckdb.StatementType.SELECT}
EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet"}
BATCH_ROWS = 65_536


class QueryRefused(ValueError):
    """A statement hub sql does not run (one line, naming it)."""


def open_snapshot(path: str | Path, *, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that can read the snapshot at ``path`` and nothing else (``memory_limit``: else
    HUB_DUCKDB_MEMORY_LIMIT, hub/settings.py)."""
    from hub.settings import duckdb_memory_limit

    path = Path(path).resolve()
    con = duckdb.connect(":memory:", config={
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "memory_limit": memory_limit or duckdb_memory_limit()})
    try:
        catalog = path.stem if path.stem.isidentifier() else "analyst"
        con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS \"{catalog}\" (READ_ONLY)")
        con.execute(f'USE "{catalog}"')
        con.execute((sql_dir / "macros.sql").read_text(encoding="utf-8"))  # temporary macros (mask_id …)
        con.execute("SET allowed_directories = ?", [[str(path.parent) + os.sep]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        con.close()
        raise ValueError(f"{path}: cannot open the snapshot: {_first_line(exc)}") from None
    except BaseException:
        con.close()
        raise
    return con


def check_query(query: str) -> None:
    """Refuse anything but one read-only query, with one line naming the statement."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ValueError(f"query failed: {str(exc).strip().splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(f"hub sql runs one query at a time; got {len(statements)} statements")
    kind = statements[0].type
    if kind not in ALLOWED:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise QueryRefused(f"hub sql is read-only and reads only the snapshot: {name} is not allowed "
                           "(to save a result use --export FILE.csv or FILE.parquet)")


def run(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.DuckDBPyConnection:
    check_query(query)
    try:
        return con.execute(query)
    except duckdb.Error as exc:
        raise ValueError(f"query failed: {_first_line(exc)}") from None


def export(con: duckdb.DuckDBPyConnection, query: str, target: str | Path) -> int:
    """Write every row of ``query`` to ``target`` (.csv or .parquet), streamed; returns the row count."""
    target = Path(target)
    fmt = EXPORT_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"--export {target}: the file must end in .csv or .parquet")
    if not target.parent.is_dir():
        raise ValueError(f"--export {target}: folder {target.parent} does not exist")
    result = run(con, query)
    try:
        reader = result.to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as exc:
        raise ValueError(f"query failed: {_first_line(exc)}") from None
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        writer = (pq.ParquetWriter(tmp, reader.schema, compression="zstd") if fmt == "parquet"
                  else pacsv.CSVWriter(tmp, reader.schema))
        with writer:
            for batch in reader:
                # CSV opens in a spreadsheet: text a spreadsheet would run as a formula is neutralised
                writer.write_batch(neutralise_batch(batch)) if fmt == "csv" else writer.write_table(pa.Table.from_batches([batch]))
                rows += batch.num_rows
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    except duckdb.Error as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"query failed: {_first_line(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
