"""The DuckDB warehouse file: how every part of the hub opens it.

The file is attached under the catalog name ``hub``: opened directly, ``warehouse.duckdb`` would be a
catalog called ``warehouse`` and every ``warehouse.<table>`` would be ambiguous with the schema of that
name. Analysts do the same: ``ATTACH 'var/warehouse.duckdb' AS hub (READ_ONLY); USE hub;``.

Extensions are never installed or loaded on demand: the wheel ships parquet, json, icu and
core_functions, and anything else would be a download at run time, which this hub must not do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from models import sql_dir

CATALOG = "hub"
SCHEMAS = ("raw", "staging", "warehouse", "marts", "quality", "meta")


def connect(path: str | Path, *, read_only: bool = False, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """``memory_limit``: the run's (the warehouse resource's), else HUB_DUCKDB_MEMORY_LIMIT (hub/settings.py)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if memory_limit is None:
        from hub.settings import duckdb_memory_limit

        memory_limit = duckdb_memory_limit()
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # Bounded memory: past this DuckDB spills joins and sorts to disk beside the warehouse, so a
            # source ten times larger does not need ten times the RAM.
            "memory_limit": memory_limit,
            "temp_directory": str(path.parent / ".duckdb_tmp"),
        },
    )
    literal = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {literal} AS {CATALOG}{' (READ_ONLY)' if read_only else ''}")
    except duckdb.Error:
        con.close()
        raise
    con.execute(f"USE {CATALOG}")
    # DuckDB reports its limit rounded ('1.8 GiB'); the raw zone lowers it while a load lands and puts
    # back this, the configured value.
    con.execute("SET VARIABLE hub_memory_limit = ?", [memory_limit])
    if not read_only:
        bootstrap(con)
    else:
        con.execute(_read(sql_dir / "macros.sql"))  # temporary macros are allowed read-only
    return con


@contextmanager
def open_warehouse(path: str | Path, *, read_only: bool = False,
                   memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def open_warehouse_when_free(path: str | Path, wait_s: float = 120.0, *,
                             memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for writing, waiting up to ``wait_s`` while another process holds it (DuckDB
    allows one writing process): a load that has read its source waits to land instead of failing."""
    give_up = time.monotonic() + wait_s
    while True:
        try:
            con = connect(path, memory_limit=memory_limit)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= give_up:
                raise
            time.sleep(0.25)
    try:
        yield con
    finally:
        con.close()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def bootstrap(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas, the bookkeeping tables and the SQL macros; idempotent."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(_read(sql_dir / "bookkeeping.sql"))
    con.execute(_read(sql_dir / "macros.sql"))
