"""The analysts' snapshot: a read-only copy of the warehouse taken at the end of each run.

DuckDB lets one process write a file and locks readers out meanwhile, so analysts (and ``hub sql``)
read a copy. The copy is taken inside the warehouse pool by DuckDB itself, written beside its destination and
swapped in with ``os.replace``: a reader holding the previous snapshot keeps reading it.
"""

import os
from pathlib import Path

import dagster as dg

from hub.resources import WAREHOUSE_POOL, WarehouseResource
from pipelines.common import OWNER


def take_snapshot(con, target: str | Path) -> Path:
    """Copy ``con``'s warehouse into a new database file and swap it in at ``target`` atomically.

    DuckDB writes the copy (COPY FROM DATABASE). The warehouse file is never opened from Python: closing
    any descriptor of a file drops the process's POSIX locks on it, DuckDB's write lock included, which
    would let another process open the warehouse for writing while this one still holds it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    literal = "'" + str(tmp).replace("'", "''") + "'"
    con.execute(f"ATTACH {literal} AS analyst_snapshot")
    try:
        con.execute("COPY FROM DATABASE hub TO analyst_snapshot")
    finally:
        con.execute("DETACH analyst_snapshot")
    os.replace(tmp, target)
    return target


def analyst_snapshot_asset(after: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["publish", "analyst_snapshot"], group_name="publish", kinds={"duckdb"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, deps=after, tags={"layer": "publish", "audience": "internal"},
        description="A read-only copy of the warehouse for analysts and `hub sql`, replaced atomically at the "
                    "end of each run, so queries never wait for (or block) a run that is writing.",
    )
    def _snapshot(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            path = take_snapshot(con, warehouse.snapshot_path)
            tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'hub'").fetchall()[0][0]
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "tables": tables,
                                              "bytes": path.stat().st_size})

    return _snapshot
