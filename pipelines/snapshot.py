"""The analysts' snapshots: read-only copies of the warehouse taken at the end of each run, one per role.

DuckDB lets one process write a file and locks readers out meanwhile, so analysts (and ``hub sql``)
read a copy. Each copy is written by DuckDB itself beside its destination, given its permissions and
swapped in with ``os.replace``: a reader holding the previous snapshot keeps reading it. The new copy
starts from the bytes of the current one, and only the tables whose content version changed since (each
model records it in ``meta.content_version``) are written again, so a run that rebuilt a few tables copies
those (issue #17); ``full_rebuild`` copies everything.

Two roles (docs/security.md):

* ``analyst`` (``var/snapshot/analyst.duckdb``, mode 0640, group ``HUB_ANALYST_GROUP`` when set: the
  warehouse resource's ``analyst_group``): the
  ``warehouse`` and ``marts`` schemas only — no raw, staging or quality (quarantine keeps source rows as
  they came). Every column classified ``restricted`` (the classification the publisher uses for its
  datasets, plus the ID and phone columns of :data:`pipelines.common.SENSITIVE_COLUMNS`) is masked
  (ID numbers to their area code, phones to 3 + 4 digits) or, where no mask is defined (birth dates),
  absent.
* ``restricted`` (``var/restricted/restricted.duckdb``, mode 0600, or 0640 for the group
  ``HUB_RESTRICTED_GROUP`` when set: ``restricted_group``): ``warehouse``, ``marts`` and ``quality`` with every column in clear,
  for the few who need them.

A file's catalog is named after the file (``analyst``, ``restricted``), never after one of its schemas,
so ``duckdb.connect('var/snapshot/analyst.duckdb')`` followed by ``SELECT … FROM warehouse.dim_person``
works in any DuckDB client.
"""


import grp
import hashlib
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb

from connectors.raw_zone import q
from hub.resources import WAREHOUSE_POOL, RunSettingsResource, WarehouseResource
from pipelines.common import OWNER, SENSITIVE_COLUMNS

ROLES = {
    "analyst": {"schemas": ("warehouse", "marts"), "mode": 0o640, "group_env": "HUB_ANALYST_GROUP"},
    "restricted": {"schemas": ("warehouse", "marts", "quality"), "mode": 0o600, "group_env": "HUB_RESTRICTED_GROUP"},
}


def restricted_columns() -> dict[str, str | None]:
    """Column name -> the macro that masks it (None: no mask; the column is left out of the analyst copy)."""
    from pipelines.publish import DATASETS

    out: dict[str, str | None] = {c.name: None for s in DATASETS for c in s.columns if c.sensitivity == "restricted"}
    for name, macro in SENSITIVE_COLUMNS.items():
        out[name] = macro
    return out


def _select(con: duckdb.DuckDBPyConnection, schema: str, table: str, role: str,
            restricted: dict[str, str | None]) -> str | None:
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [schema, table]).fetchall()]
    exprs = []
    for c in cols:
        if role != "restricted" and c in restricted:
            if restricted[c] is None:
                continue
            exprs.append(f"{restricted[c]}({q(c)}) AS {q(c)}")
        else:
            exprs.append(q(c))
    return ", ".join(exprs) if exprs else None


def _chmod(path: Path, role: str, group: str) -> None:
    spec = ROLES[role]
    mode = spec["mode"]
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            raise ValueError(f"{spec['group_env']}: no group named {group!r} on this machine") from None
        mode = 0o640
    os.chmod(path, mode)


def _content_versions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """'schema.table' -> the content fingerprint the table's model recorded when it last built it
    (meta.content_version, pipelines/content.py); a table without one is always copied."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = 'meta' AND table_name = 'content_version'").fetchone()[0]:
        return {}
    return {f"{s}.{t}": fp for s, t, fp in con.execute(
        "SELECT schema_name, table_name, fingerprint FROM meta.content_version WHERE fingerprint IS NOT NULL")
        .fetchall()}


def _ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.snapshot_state (
        target   VARCHAR PRIMARY KEY,   -- the snapshot file
        size     BIGINT NOT NULL,       -- its size and mtime when it was swapped in: another file is not trusted
        mtime_ns BIGINT NOT NULL,
        tables   VARCHAR NOT NULL)      -- JSON: 'schema.table' -> the stamp of the copy it holds""")


def _previous_tables(con: duckdb.DuckDBPyConnection, target: Path) -> dict[str, str]:
    """What the current snapshot at ``target`` holds ('schema.table' -> stamp), as the warehouse recorded it
    when it swapped that file in; {} when nothing is recorded or the file is not that one (replaced behind
    the hub's back, or a crash between the swap and the record)."""
    _ensure_state(con)
    row = con.execute("SELECT size, mtime_ns, tables FROM meta.snapshot_state WHERE target = ?",
                      [str(target)]).fetchone()
    try:
        st = target.stat()
    except OSError:
        return {}
    if row is None or row[0] != st.st_size or row[1] != st.st_mtime_ns:
        return {}
    return dict(json.loads(row[2]))


def take_snapshot(con, target: str | Path, *, role: str = "analyst", group: str = "", incremental: bool = True,
                  counts: dict | None = None) -> Path:
    """Copy what ``role`` may read of ``con``'s warehouse into a new file and swap it in at ``target``,
    readable by the Unix ``group`` when one is given (the warehouse resource's analyst_group or
    restricted_group: HUB_ANALYST_GROUP, HUB_RESTRICTED_GROUP).

    DuckDB writes the copy. The warehouse file is never opened from Python: closing any descriptor of a
    file drops the process's POSIX locks on it, DuckDB's write lock included, which would let another
    process open the warehouse for writing while this one still holds it.

    ``incremental``: the new file starts as a byte copy of the current snapshot, and only the tables whose
    content version (recorded by their model, meta.content_version) or whose select list (the masking)
    changed since it was taken are written again; the others are kept as they are (what each snapshot file
    holds is recorded in the warehouse, ``meta.snapshot_state``, with the file's size and mtime). A table
    without a recorded version, a snapshot file other than the recorded one, or ``incremental=False`` means
    copying everything.
    ``counts`` (when given) receives ``tables_copied`` and ``tables_kept``.
    """
    if role not in ROLES:
        raise ValueError(f"snapshot role {role!r} is not one of {sorted(ROLES)}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    group = group.strip()
    os.chmod(target.parent, 0o750 if role == "analyst" or group else 0o700)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    old_umask = os.umask(0o077)  # the copy is readable by nobody else while it is written
    restricted = restricted_columns()
    versions = _content_versions(con) if incremental else {}
    previous = _previous_tables(con, target) if versions else {}
    literal = "'" + str(tmp).replace("'", "''") + "'"
    stamps: dict[str, str | None] = {}
    copied = kept = 0
    try:
        if previous:
            shutil.copyfile(target, tmp)  # created under the umask: 0600 until _chmod
        con.execute(f"ATTACH {literal} AS snapshot_copy")
        try:
            for schema in ROLES[role]["schemas"]:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot_copy.{q(schema)}")
                tables = [r[0] for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                    "AND schema_name = ? AND NOT temporary ORDER BY 1", [schema]).fetchall()]
                for table in tables:
                    select = _select(con, schema, table, role, restricted)
                    if not select:
                        continue
                    name = f"{schema}.{table}"
                    version = versions.get(name)
                    stamps[name] = (hashlib.sha256(f"{version}|{select}".encode()).hexdigest()[:32]
                                    if version else None)
                    if stamps[name] is not None and previous.get(name) == stamps[name]:
                        kept += 1
                        continue
                    con.execute(f"CREATE OR REPLACE TABLE snapshot_copy.{q(schema)}.{q(table)} AS "
                                f"SELECT {select} FROM {q(schema)}.{q(table)}")
                    copied += 1
            if previous:  # what the previous snapshot held and this one must not
                for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                        "WHERE database_name = 'snapshot_copy'").fetchall():
                    if f"{s}.{t}" not in stamps:
                        con.execute(f"DROP TABLE snapshot_copy.{q(s)}.{q(t)}")
        finally:
            con.execute("DETACH snapshot_copy")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.umask(old_umask)
    _chmod(tmp, role, group)
    _ensure_state(con)
    con.execute("DELETE FROM meta.snapshot_state WHERE target = ?", [str(target)])  # trusted again once recorded
    os.replace(tmp, target)
    st = target.stat()
    con.execute("INSERT INTO meta.snapshot_state VALUES (?, ?, ?, ?)",
                [str(target), st.st_size, st.st_mtime_ns, json.dumps({k: v for k, v in stamps.items() if v})])
    if counts is not None:
        counts.update(tables_copied=copied, tables_kept=kept)
    return target


def analyst_snapshot_asset(after: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["publish", "analyst_snapshot"], group_name="publish", kinds={"duckdb"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, deps=after, tags={"layer": "publish", "audience": "internal"},
        description="Read-only copies of the warehouse for analysts and `hub sql` (warehouse and marts, "
                    "restricted columns masked or left out) and for the restricted role (clear, owner or "
                    "restricted group only), replaced atomically at the end of each run, so queries never "
                    "wait for (or block) a run that is writing.",
    )
    def _snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  run_settings: RunSettingsResource) -> dg.MaterializeResult:
        # Earlier versions left a full, world-readable copy here under this name: analysts must not find it.
        legacy = Path(warehouse.snapshot_path).with_name("warehouse.duckdb")
        if legacy != Path(warehouse.snapshot_path) and legacy.exists():
            legacy.unlink()
            context.log.warning(f"removed {legacy}: an unmasked snapshot of an earlier version")
        analyst, clear = {}, {}
        with warehouse.connect() as con:  # tables whose content did not change are kept from the last copy
            path = take_snapshot(con, warehouse.snapshot_path, role="analyst", group=warehouse.analyst_group,
                                 incremental=not run_settings.full_rebuild, counts=analyst)
            restricted = (take_snapshot(con, warehouse.restricted_snapshot_path, role="restricted",
                                        group=warehouse.restricted_group, incremental=not run_settings.full_rebuild,
                                        counts=clear)
                          if warehouse.restricted_snapshot_path else None)
            tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'hub' "
                                 "AND schema_name IN ('warehouse', 'marts')").fetchall()[0][0]
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(path)), "tables": tables, "bytes": path.stat().st_size,
            "mode": oct(path.stat().st_mode & 0o777),
            "restricted_path": dg.MetadataValue.path(str(restricted)) if restricted else "not written",
            "masked_or_left_out": ", ".join(sorted(restricted_columns())),
            "tables_copied": analyst.get("tables_copied", 0), "tables_kept": analyst.get("tables_kept", 0),
            "restricted_tables_copied": clear.get("tables_copied", 0),
            "restricted_tables_kept": clear.get("tables_kept", 0)})

    return _snapshot
