"""The analysts' snapshots: read-only copies of the warehouse taken at the end of each run, one per role.

DuckDB lets one process write a file and locks readers out meanwhile, so analysts (and ``hub sql``)
read a copy. Each copy is written by DuckDB itself beside its destination, given its permissions and
swapped in with ``os.replace``: a reader holding the previous snapshot keeps reading it. The new copy
starts from the bytes of the current one, and only the tables whose content version changed since (each
model records it in ``meta.content_version``) are written again, so a run that rebuilt a few tables copies
those (issue #17); ``full_rebuild`` copies everything. A table whose model logs the keys it touched
(models/delta.py: ``fact_course_grade`` and ``fact_student_term_gpa`` by 学号 and term) is patched instead:
the rows of the keys its builds since the copy touched are deleted from the copy and taken again from the
warehouse (each snapshot file is a consumer of that log, per select list, ``snapshot:<file>:<digest>``).

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
from models import delta
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


def _consumer(target: Path, select: str) -> str:
    """The snapshot file's name as a consumer of a table's change log: another select list (masking) is
    another consumer, with no position, so the table is copied whole once."""
    return f"snapshot:{target}:{hashlib.sha256(select.encode()).hexdigest()[:12]}"


def _logged_keys(con: duckdb.DuckDBPyConnection, name: str, select: str) -> tuple[str, ...] | None:
    """None when the table's model keeps no change log; else the key columns its latest build logged, or ()
    when that was a whole build or the copy masks a key column."""
    schema, table = name.split(".", 1)
    if schema != "warehouse" or not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'meta' "
            "AND table_name = 'delta_build'").fetchone()[0]:
        return None
    row = con.execute("SELECT key_columns FROM meta.delta_build WHERE model = ? ORDER BY seq DESC LIMIT 1",
                      [table]).fetchone()
    if row is None:
        return None
    keys = tuple(row[0] or ())
    plain = set(select.split(", "))
    return keys if all(q(k) in plain for k in keys) else ()


def _patch(con: duckdb.DuckDBPyConnection, name: str, select: str, consumer: str, keys: tuple[str, ...]) -> bool:
    """Bring the copy of ``name`` in snapshot_copy up to date from the change log: False when the log cannot
    say what changed since the copy (then it is copied whole)."""
    schema, table = name.split(".", 1)
    reason, newest = delta.changes_since(con, consumer, table, f"{q(schema)}.{q(table)}", keys, "_snapshot_keys")
    if reason is not None:
        return False
    (position,) = con.execute("SELECT seq FROM meta.delta_consumer WHERE consumer = ? AND producer = ?",
                              [consumer, table]).fetchone()
    if position == newest:  # its content changed, yet no build was logged since the copy: written outside
        con.execute("DROP TABLE IF EXISTS _snapshot_keys")
        return False
    try:
        match = " AND ".join(f"k.{q(c)} IS NOT DISTINCT FROM CAST(x.{q(c)} AS VARCHAR)" for c in keys)
        copy = f"snapshot_copy.{q(schema)}.{q(table)}"
        con.execute(f"DELETE FROM {copy} x WHERE EXISTS (SELECT 1 FROM _snapshot_keys k WHERE {match})")
        con.execute(f"INSERT INTO {copy} SELECT {select} FROM {q(schema)}.{q(table)} x "
                    f"WHERE EXISTS (SELECT 1 FROM _snapshot_keys k WHERE {match})")
        (here,) = con.execute(f"SELECT count(*) FROM {copy}").fetchone()
        (there,) = con.execute(f"SELECT count(*) FROM {q(schema)}.{q(table)}").fetchone()
        return here == there  # else copied whole: the log and the copy disagree
    finally:
        con.execute("DROP TABLE IF EXISTS _snapshot_keys")


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
    A changed table whose model logs its touched keys (models/delta.py) and whose key columns the copy holds
    unmasked is patched from the log (the rows of those keys replaced), when the log covers every build
    since the copy; its row count must then equal the warehouse's, else it is copied whole.
    ``counts`` (when given) receives ``tables_copied``, ``tables_kept`` and ``tables_patched``.
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
    logged: dict[str, str] = {}  # table -> this file's consumer name of the table's change log
    copied = kept = patched = 0
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
                    keys = _logged_keys(con, name, select)
                    if keys is not None:
                        logged[table] = _consumer(target, select)
                        if keys and previous.get(name) and _patch(con, name, select, logged[table], keys):
                            patched += 1
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
    for table, consumer in logged.items():  # the file holds each logged table as of its latest build
        con.execute("DELETE FROM meta.delta_consumer WHERE producer = ? AND consumer LIKE ? AND consumer <> ?",
                    [table, f"snapshot:{target}:%", consumer])  # an earlier select list's position
        delta.set_position(con, consumer, table, delta.latest(con, table)[0])
    if counts is not None:
        counts.update(tables_copied=copied, tables_kept=kept, tables_patched=patched)
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
            "tables_patched": analyst.get("tables_patched", 0),
            "restricted_tables_copied": clear.get("tables_copied", 0),
            "restricted_tables_patched": clear.get("tables_patched", 0),
            "restricted_tables_kept": clear.get("tables_kept", 0)})

    return _snapshot
