"""The raw zone: every load as Parquet under ``var/raw/<source>/<entity>/`` and in DuckDB's ``raw`` schema.

A load is written to Parquet first (bounded memory: one page or chunk at a time), then moved into
place, then landed in ONE DuckDB transaction together with its cursor, its inbox-file record and its
audit row. A process killed at any moment leaves either the whole load committed or none of it; Parquet
folders of loads that never committed are removed by the next load of that entity.

Rows are kept as received. From APIs and databases, a row already in the raw table with the same
primary key and content hash is skipped (the inclusive lower bound of an incremental cursor re-reads
the boundary rows), so reruns never duplicate. A file is loaded whole, once: its content hash is
recorded in the same transaction, and a file seen before is not read again; each export is a
snapshot, so staging can tell who left it. Two identical rows within one load both land: the
duplicate is the source's defect, found and quarantined in staging.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import ExtractStats, SourceError
from connectors.config import DEFAULT_LANDING_MEMORY, ConfigError, Entity, memory_bytes
from connectors.redact import redact

PART_NAME = "part-{:05d}.parquet"
PART_ROWS = 50_000  # pages are gathered into parts of at least this many rows (or the rest of the load)
PART_NUMBER = r"part-(\d+)\.parquet$"  # the number back from a part's path, in SQL
META_COLUMNS = ("_load_id", "_source", "_extracted_at", "_row_number", "_row_hash", "_file")


def q(name: str) -> str:
    """Quote an identifier for DuckDB (source column names are data, e.g. 公民身份号码)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class LoadResult:
    load_id: str
    source: str
    entity: str
    status: str = "ok"
    rows_read: int = 0
    rows_landed: int = 0
    rows_skipped: int = 0
    rows_rejected: int = 0
    pages: int = 0
    files: int = 0
    retries: int = 0
    bytes: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    encoding: str | None = None
    duration_s: float = 0.0
    new_columns: list[str] = field(default_factory=list)
    type_changes: list[str] = field(default_factory=list)
    message: str | None = None

    def drift(self) -> str | None:
        parts = ([f"new column(s) {self.new_columns}"] if self.new_columns else []) + \
                ([f"type change(s) {self.type_changes}"] if self.type_changes else [])
        return "; ".join(parts) or None

    def as_dict(self) -> dict:
        return asdict(self)


Opener = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
Progress = Callable[[int, int, int], None]  # rows read, pages, files: called as a load reads


class RawZone:
    """``con`` is an open warehouse connection, or an opener (``lambda: open_warehouse(path)``): with an
    opener the warehouse is open only while the zone reads its state or lands a load, never while the
    source is read, so another process can write the warehouse meanwhile (DuckDB allows one writer)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | Opener, raw_dir: str | Path,
                 landing_memory: str | None = DEFAULT_LANDING_MEMORY, progress: Progress | None = None):
        if isinstance(con, duckdb.DuckDBPyConnection):
            self._con, self._opener = con, None
        else:
            self._con, self._opener = None, con
        self.raw_dir = Path(raw_dir)
        self.landing_memory = landing_memory
        self.progress = progress
        if landing_memory is not None:
            memory_bytes(landing_memory)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("the raw zone reached for the warehouse outside _connected()")
        return self._con

    @contextmanager
    def _connected(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse, open for as long as this block (already open: the same connection)."""
        if self._con is not None or self._opener is None:
            yield self.con
            return
        with self._opener() as con:
            self._con = con
            try:
                yield con
            finally:
                self._con = None

    @contextmanager
    def _landing_settings(self, lower_memory: bool = True) -> Iterator[None]:
        """DuckDB settings while a load lands, put back afterwards.

        * ``memory_limit`` lowered to ``landing_memory`` (never raised), so peak memory stays flat as
          sources grow. What is put back is what the warehouse configured (``hub.warehouse.connect``
          keeps it in the ``hub_memory_limit`` variable): DuckDB reports its limit rounded down.
        * ``preserve_insertion_order`` off: every row carries its position in ``_row_number``, and
          under a low limit DuckDB's ordered parallel insert is twice as slow (docs/benchmarks.md)."""
        con = self.con
        configured, ordered = con.execute(
            "SELECT coalesce(getvariable('hub_memory_limit'), current_setting('memory_limit')), "
            "current_setting('preserve_insertion_order')").fetchall()[0]
        lower = False
        if lower_memory and self.landing_memory is not None:
            try:
                lower = memory_bytes(self.landing_memory) < memory_bytes(configured)
            except ValueError:
                lower = True
        if lower:
            con.execute(f"SET memory_limit = {_sql_str(self.landing_memory)}")
        con.execute("SET preserve_insertion_order = false")
        try:
            yield
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
            if lower:
                con.execute(f"SET memory_limit = {_sql_str(configured)}")

    # -- state ---------------------------------------------------------------------------------
    def cursor(self, entity: Entity) -> str | None:
        with self._connected():
            return self._cursor(entity)

    def _cursor(self, entity: Entity) -> str | None:
        row = self.con.execute("SELECT cursor_value FROM meta.source_cursor WHERE source = ? AND entity = ?",
                               [entity.source, entity.name]).fetchone()
        return row[0] if row else None

    def is_file_loaded(self, sha256: str) -> bool:
        with self._connected():
            return self.con.execute("SELECT count(*) FROM meta.loaded_file WHERE sha256 = ?", [sha256]).fetchone()[0] > 0

    def folder(self, entity: Entity) -> Path:
        return self.raw_dir / entity.source / entity.name

    def _sweep_uncommitted(self, entity: Entity) -> None:
        folder = self.folder(entity)
        if not folder.is_dir():
            return
        committed = {r[0] for r in self.con.execute(
            "SELECT load_id FROM quality.load_audit WHERE source = ? AND entity = ? AND status = 'ok'",
            [entity.source, entity.name]).fetchall()}
        for child in folder.iterdir():
            if child.name == "_incoming" or (child.name.startswith("load_id=")
                                            and child.name.removeprefix("load_id=") not in committed):
                shutil.rmtree(child, ignore_errors=True)

    # -- a load --------------------------------------------------------------------------------
    def land(self, entity: Entity, pages: Iterable[pa.Table], stats: ExtractStats, *,
             cursor_before: str | None = None, file_name: str | None = None, file_sha256: str | None = None,
             ) -> LoadResult:
        started = time.monotonic()
        started_at = datetime.now(UTC)
        load_id = f"{started_at:%Y%m%dT%H%M%S}-{entity.source}-{entity.name}-{uuid.uuid4().hex[:8]}"
        result = LoadResult(load_id, entity.source, entity.name, cursor_before=cursor_before)
        with self._connected():
            self._sweep_uncommitted(entity)
        incoming = self.folder(entity) / "_incoming" / load_id
        final = self.folder(entity) / f"load_id={load_id}"
        report = (lambda: self.progress(result.rows_read, stats.pages, stats.files)) if self.progress else None
        try:
            # Read the source into Parquet with the warehouse closed (with an opener); open it to land.
            parts = self._write_parts(pages, incoming, result, report)
            self._copy_stats(stats, result)
            if parts:
                final.parent.mkdir(parents=True, exist_ok=True)
                incoming.rename(final)
            else:
                shutil.rmtree(incoming, ignore_errors=True)
            with self._connected():
                self._commit(entity, final if parts else None, stats, result, started_at, started,
                             file_name, file_sha256)
        except Exception as exc:  # whatever failed (a driver's own error type too): audited, one line
            shutil.rmtree(incoming, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            self._copy_stats(stats, result)
            result.status, result.message = "failed", failure_reason(entity.source, entity.name, exc)
            result.duration_s = time.monotonic() - started
            try:
                with self._connected():
                    self._audit(result, started_at)
            except duckdb.Error:
                pass  # the warehouse itself cannot be opened: the one-line reason still goes up
            raise AuditedFailure(result.message, result.load_id) from None
        return result

    @staticmethod
    def _copy_stats(stats: ExtractStats, result: LoadResult) -> None:
        result.pages, result.files, result.retries = stats.pages, stats.files, stats.retries
        result.encoding = stats.encoding
        result.cursor_after = stats.cursor_after if stats.cursor_after is not None else result.cursor_before

    def _write_parts(self, pages: Iterable[pa.Table], folder: Path, result: LoadResult,
                     report: Callable[[], None] | None = None) -> list[Path]:
        """Write the load as zstd Parquet parts of about ``PART_ROWS`` rows, in a background thread.

        Small pages (an API's 1,000 records) are gathered into one part: hundreds of small files would
        cost DuckDB memory and time when the load lands. A page with keys the others lack still fits:
        its part's missing columns are NULL. Compression releases the GIL, so a part is written while
        the connector reads the next pages; at most one part waits for the writer, so memory stays at
        about two parts."""
        folder.mkdir(parents=True, exist_ok=True)
        parts: list[Path] = []
        pending: deque[Future[int]] = deque()
        gathered: list[pa.Table] = []
        gathered_rows = 0

        def write(tables: list[pa.Table], path: Path) -> int:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
            pq.write_table(table, path, compression="zstd")
            return path.stat().st_size

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-parquet") as writer:

            def flush() -> None:
                nonlocal gathered, gathered_rows
                path = folder / PART_NAME.format(len(parts))
                parts.append(path)
                pending.append(writer.submit(write, gathered, path))
                gathered, gathered_rows = [], 0
                while len(pending) > 1:
                    result.bytes += pending.popleft().result()

            try:
                for table in pages:
                    if table.num_rows == 0:
                        continue
                    result.rows_read += table.num_rows
                    if report is not None:
                        report()
                    gathered.append(table)
                    gathered_rows += table.num_rows
                    del table
                    if gathered_rows >= PART_ROWS:
                        flush()
                if gathered:
                    flush()
                while pending:
                    result.bytes += pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
        return parts

    def _commit(self, entity: Entity, folder: Path | None, stats: ExtractStats, result: LoadResult,
                started_at: datetime, started: float, file_name: str | None, file_sha256: str | None) -> None:
        before = copy.deepcopy(result)
        try:
            with self._landing_settings():
                self._commit_load(entity, folder, stats, result, started_at, started, file_name, file_sha256)
        except duckdb.OutOfMemoryException:
            if self.landing_memory is None:
                raise
            # A very wide table can need more than the landing limit for its column buffers. The
            # transaction rolled back whole: land again under the warehouse's own limit.
            vars(result).update(vars(before))
            result.message = (f"landed under the warehouse's memory limit: {self.landing_memory} "
                              "(HUB_RAW_MEMORY_LIMIT) was too small for this table")
            with self._landing_settings(lower_memory=False):
                self._commit_load(entity, folder, stats, result, started_at, started, file_name, file_sha256)

    def _commit_load(self, entity: Entity, folder: Path | None, stats: ExtractStats, result: LoadResult,
                     started_at: datetime, started: float, file_name: str | None, file_sha256: str | None,
                     ) -> None:
        con, table = self.con, f"raw.{q(entity.table)}"
        result.rows_read += len(stats.rejected)
        con.execute("BEGIN TRANSACTION")
        try:
            if folder is not None:
                self._land_rows(entity, folder, table, result, file_name)
            for rej in stats.rejected:
                con.execute(
                    "INSERT INTO quality.quarantine (stage, source, entity, load_id, rule, record_key, detail, "
                    "original_row) VALUES ('raw', ?, ?, ?, ?, ?, ?, ?)",
                    [entity.source, entity.name, result.load_id, rej.rule, rej.record_key, rej.detail,
                     json.dumps(rej.original, ensure_ascii=False) if rej.original is not None else None])
            result.rows_rejected += len(stats.rejected)
            if stats.findings:
                con.executemany(
                    "INSERT INTO quality.load_finding (load_id, source, entity, kind, record_key, field, value, "
                    "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[result.load_id, entity.source, entity.name, f.kind, f.record_key, f.field, f.value, f.detail]
                     for f in stats.findings])
                kinds: dict[str, int] = {}
                for f in stats.findings:
                    kinds[f.kind] = kinds.get(f.kind, 0) + 1
                note = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                result.message = "; ".join(m for m in (result.message, f"findings: {note}") if m)
            result.rows_skipped = result.rows_read - result.rows_landed - result.rows_rejected
            if entity.cursor_field and result.cursor_after is not None:
                con.execute(
                    "INSERT OR REPLACE INTO meta.source_cursor VALUES (?, ?, ?, ?, current_timestamp)",
                    [entity.source, entity.name, result.cursor_after, result.load_id])
            self._record_types(entity, stats.source_types, result)
            if file_sha256:
                con.execute("INSERT INTO meta.loaded_file VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                            [file_sha256, entity.source, entity.name, file_name, result.encoding,
                             result.rows_read, result.load_id])
            result.duration_s = time.monotonic() - started
            self._audit(result, started_at)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _land_rows(self, entity: Entity, folder: Path, table: str, result: LoadResult,
                   file_name: str | None) -> None:
        con = self.con
        parts = sorted(folder.glob("*.parquet"))
        src = (f"read_parquet([{', '.join(_sql_str(str(p)) for p in parts)}], union_by_name = true, "
               "hive_partitioning = false, filename = true, file_row_number = true)")
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * EXCLUDE (filename, file_row_number) FROM {src}"
                                          ).fetchall()]
        missing = [c for c in entity.required if c not in cols]
        if missing:
            raise SourceError(f"{entity.source}.{entity.name}: required column(s) {missing} missing from the "
                              f"source (it sent {cols[:12]}{'…' if len(cols) > 12 else ''})")
        existing = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
            "AND table_schema = 'raw' AND table_name = ?", [entity.table]).fetchall()]
        if not existing:
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{q(c)} VARCHAR' for c in cols)}, "
                        "_load_id VARCHAR, _source VARCHAR, _extracted_at TIMESTAMPTZ, _row_number BIGINT, "
                        "_row_hash VARCHAR, _file VARCHAR)")
        else:
            for c in cols:
                if c not in existing:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {q(c)} VARCHAR")
                    result.new_columns.append(c)
        row_hash = "md5(concat_ws(chr(31), " + ", ".join(
            f"{_sql_str(c + '=')} || {q(c)}" for c in sorted(cols)) + "))"
        pk_present = " AND ".join(f"nullif(trim({q(k)}), '') IS NOT NULL" for k in entity.primary_key)
        pk_match = " AND ".join(f"r.{q(k)} = s.{q(k)}" for k in entity.primary_key)
        # A view, not a table: the load is read from its Parquet parts as it streams through, never held
        # whole. The row number is the position in the load (part number from the part's name, then row
        # in part): stable.
        part_index = f"CAST(regexp_extract(filename, {_sql_str(PART_NUMBER)}, 1) AS BIGINT)"
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _incoming AS
            SELECT * EXCLUDE (filename, file_row_number),
                   {part_index} * 4294967296 + file_row_number + 1 AS _row_number,
                   {row_hash} AS _row_hash
            FROM {src}""")
        pk_key = " || '|' || ".join(f"coalesce({q(k)}, '')" for k in entity.primary_key)
        n_nokey = con.execute(f"""INSERT INTO quality.quarantine
            (stage, source, entity, load_id, rule, record_key, detail, original_row)
            SELECT 'raw', ?, ?, ?, 'missing_primary_key', {pk_key},
                   'primary key ' || ? || ' is empty', to_json(s) FROM _incoming s WHERE NOT ({pk_present})""",
                              [entity.source, entity.name, result.load_id, "+".join(entity.primary_key)]
                              ).fetchone()[0]
        col_list = ", ".join(q(c) for c in cols)
        # API and database pages re-read rows (the inclusive cursor bound): skip those already landed.
        # A file is a whole new export (the same file is refused by its hash), so all of it lands.
        dedupe = "" if file_name else (
            f"\n              AND NOT EXISTS (SELECT 1 FROM {table} r WHERE {pk_match} AND r._row_hash = s._row_hash)")
        landed = con.execute(f"""INSERT INTO {table} BY NAME
            SELECT {col_list}, ? AS _load_id, ? AS _source, ?::TIMESTAMPTZ AS _extracted_at,
                   _row_number, _row_hash, ? AS _file
            FROM _incoming s
            WHERE {pk_present}{dedupe}""",
                             [result.load_id, entity.source, datetime.now(UTC).isoformat(), file_name]
                             ).fetchone()[0]
        con.execute("DROP VIEW _incoming")
        result.rows_rejected += n_nokey
        result.rows_landed = landed

    def _record_types(self, entity: Entity, types: dict[str, str], result: LoadResult) -> None:
        known = dict(self.con.execute(
            "SELECT column_name, source_type FROM meta.source_schema WHERE source = ? AND entity = ?",
            [entity.source, entity.name]).fetchall())
        for column, family in sorted(types.items()):
            if column in known and known[column] != family:
                result.type_changes.append(f"{column}: {known[column]} -> {family}")
            self.con.execute(
                "INSERT INTO meta.source_schema VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "source_type = excluded.source_type, last_load_id = excluded.last_load_id",
                [entity.source, entity.name, column, family, result.load_id, result.load_id])

    def record_file_outcome(self, entity: Entity, file_name: str, status: str, reason: str, *, rows: int = 0,
                            load_id: str | None = None) -> LoadResult:
        """Audit a file that was not loaded: ``rejected`` (set aside whole; the ``rows`` it had, as far as
        they were read, count as read and rejected) or ``skipped`` (seen before). With ``load_id``, the
        ``failed`` audit row of a landing that failed on the file is replaced by this one."""
        started_at = datetime.now(UTC)
        result = LoadResult(load_id or f"{started_at:%Y%m%dT%H%M%S}-{entity.source}-{entity.name}-{uuid.uuid4().hex[:8]}",
                            entity.source, entity.name, status=status, files=1, rows_read=rows, rows_rejected=rows,
                            message=reason if reason.startswith(f"{file_name}:") else f"{file_name}: {reason}")
        with self._connected():
            self._audit(result, started_at)
        return result

    def record_failure(self, entity: Entity, reason: str, cursor_before: str | None = None) -> LoadResult:
        """Audit a load that failed before it could land (bad URL or configuration, a missing variable)."""
        started_at = datetime.now(UTC)
        result = LoadResult(f"{started_at:%Y%m%dT%H%M%S}-{entity.source}-{entity.name}-{uuid.uuid4().hex[:8]}",
                            entity.source, entity.name, status="failed", message=reason,
                            cursor_before=cursor_before, cursor_after=cursor_before)
        with self._connected():
            self._audit(result, started_at)
        return result

    def _audit(self, r: LoadResult, started_at: datetime) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO quality.load_audit VALUES (?, ?, ?, ?, current_timestamp, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?)",
            [r.load_id, r.source, r.entity, started_at, r.duration_s, r.status, r.rows_read, r.rows_landed,
             r.rows_skipped, r.rows_rejected, r.pages, r.files, r.retries, r.cursor_before, r.cursor_after,
             r.encoding, redact("; ".join(m for m in (r.message, r.drift()) if m)) or None])


class AuditedFailure(SourceError):
    """A load that failed and already has its ``failed`` row in ``quality.load_audit``."""

    def __init__(self, message: str, load_id: str):
        super().__init__(message)
        self.load_id = load_id


def failure_reason(source: str, entity: str, exc: BaseException) -> str:
    """One line naming the source and entity: a SourceError's own message (it names them), else the
    error's type and first line (a driver's or library's error says nothing of where it happened)."""
    line = _one_line(exc)
    if not isinstance(exc, SourceError | ConfigError):
        line = f"{type(exc).__name__}: {line}"
    prefix = f"{source}.{entity}"
    return line if line.startswith(prefix) else f"{prefix}: {line}"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _one_line(exc: BaseException) -> str:
    """The first line of an error, with URL userinfo and known secrets taken out (hub.redact)."""
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__
