"""Source adapters driven by ``sources.yaml``: REST, SQL and file drops, all landing in the raw zone."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb

from connectors.base import ExtractStats, SourceError
from connectors.config import DEFAULT_LANDING_MEMORY, ConfigError, Entity, Source, load_sources
from connectors.object_raw_zone import open_raw_zone
from connectors.raw_zone import AuditedFailure, LoadResult, Progress, RawZone, failure_reason

__all__ = ["DEFAULT_LANDING_MEMORY", "ConfigError", "Entity", "LoadResult", "Source", "SourceError", "load_entity", "load_sources"]


def load_entity(con: duckdb.DuckDBPyConnection | Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
                raw_dir: str | Path, source: Source, entity: Entity, *,
                landing_memory: str | None = DEFAULT_LANDING_MEMORY, progress: Progress | None = None,
                spool_dir: str | Path | None = None) -> list[LoadResult]:
    """Run one load of one source entity into the raw zone. File sources make one load per new file.

    ``con`` is an open warehouse connection, or an opener of one (``lambda: open_warehouse(path)``): given
    an opener, the warehouse is open only to read the cursor and to land, never while the source is read
    (see RawZone). ``landing_memory`` is DuckDB's memory limit while a load lands (None: the warehouse's
    own). ``progress(rows, pages, files)`` is called as the load reads. ``spool_dir``: where an object-store
    raw zone spools a load (None: under the system's temp dir).

    Whatever fails (configuration, connection, the source, landing; any error type) writes a ``failed``
    row in ``quality.load_audit`` with a one-line reason naming source and entity, and is raised as a
    :class:`SourceError` with that line: a caller loading several entities reports it and goes on."""
    # a folder, or an s3:// URL (connectors/object_raw_zone.py)
    zone = open_raw_zone(con, raw_dir, landing_memory, progress, spool_dir=spool_dir)
    try:
        return _load(zone, source, entity)
    except AuditedFailure:
        raise  # the load's own failed audit row is written
    except Exception as exc:
        # Failed before landing began: a bad URL, a missing variable, an error building the extractor.
        reason = failure_reason(source.name, entity.name, exc)
    try:
        cursor = zone.cursor(entity) if entity.cursor_field else None
    except duckdb.Error:
        cursor = None
    zone.record_failure(entity, reason, cursor_before=cursor)
    raise SourceError(reason) from None


def _load(zone: RawZone, source: Source, entity: Entity) -> list[LoadResult]:
    if source.kind == "files":
        return _load_files(zone, source, entity)
    if source.kind == "rest":
        from connectors.rest import RestExtractor

        extractor = RestExtractor(source, entity)
    else:
        from connectors.sql import SqlExtractor

        extractor = SqlExtractor(source, entity)
    cursor = zone.cursor(entity) if entity.cursor_field else None
    stats = ExtractStats()
    return [zone.land(entity, extractor.extract(cursor, stats), stats, cursor_before=cursor)]


def _load_files(zone: RawZone, source: Source, entity: Entity) -> list[LoadResult]:
    """One load per new file. A file that cannot load is set aside; the entity's other files still load."""
    from connectors.files import FileExtractor

    extractor = FileExtractor(source, entity)
    results = []
    pending = extractor.pending()
    for link, reason in extractor.refused:
        # A link out of the inbox: the link itself goes to _rejected/, what it points to is never read.
        moved = extractor.reject_link(link, reason)
        where = f"moved to {moved}" if moved else "left in place: it lies outside the inbox"
        results.append(zone.record_file_outcome(entity, link.name, "rejected", f"{reason} ({where})"))
    for item in pending:
        if zone.is_file_loaded(item.sha256):
            # The same content came before (perhaps under another name): audited, archived, not loaded.
            results.append(zone.record_file_outcome(entity, item.path.name, "skipped",
                                                    "same content already loaded"))
            extractor.archive_file(item)
            continue
        stats = ExtractStats()
        read = _Counted()
        try:
            columns, pages = extractor.read(item, stats)
            pages = read.count(pages)
            try:
                extractor.check_columns(item, columns)
            except SourceError:
                read.drain(pages)  # set aside whole: every row it has is counted (read in blocks, not kept)
                raise
            result = zone.land(entity, pages, stats, file_name=item.path.name, file_sha256=item.sha256)
        except SourceError as exc:
            # Unreadable, a required column missing, or failing at landing: set aside with its reason,
            # every row it had (as far as it was read) counted as rejected (a failed landing's audit row
            # becomes this one).
            rows = read.rows + len(stats.rejected)
            moved = extractor.reject_file(item, str(exc))
            results.append(zone.record_file_outcome(entity, item.path.name, "rejected", f"{exc} (moved to {moved})",
                                                    rows=rows, load_id=getattr(exc, "load_id", None)))
            continue
        results.append(result)
        extractor.archive_file(item)
    return results


class _Counted:
    """Counts the rows of a stream of tables as they pass."""

    def __init__(self) -> None:
        self.rows = 0

    def count(self, pages):
        for table in pages:
            self.rows += table.num_rows
            yield table

    def drain(self, pages) -> None:
        try:
            for _ in pages:
                pass
        except SourceError:
            pass  # broken further on: what was read is counted
