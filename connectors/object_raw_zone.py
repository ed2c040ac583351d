"""The raw zone on object storage: every load's Parquet parts under ``s3://…/<source>/<entity>/load_id=<id>/``.

The same loads as :class:`~connectors.raw_zone.RawZone`, with the parts kept on an S3-compatible store
(through fsspec/s3fs) instead of a local folder. A load's parts are written to a local spool folder
(bounded memory, as before), uploaded with ``If-None-Match: *`` (a part is never overwritten), and only
then landed in DuckDB in the one transaction that records the load as ``ok``. DuckDB lands the load
from the spool copy of the very bytes that were uploaded (DuckDB's httpfs is not needed), and the spool
copy is removed once the transaction committed.

Crash safety is the local raw zone's: a load killed after its upload and before its commit leaves a
``load_id=`` prefix with no ``ok`` audit row, which the next load of that entity deletes.

``raw_dir`` is a URL such as ``s3://campus-raw/xxdm=4145000001/raw`` (``hub.object_store.college_root``
gives the per-college prefix); ``spool_dir`` a local folder, by default one under the system's temp dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb

from connectors.base import ExtractStats
from connectors.config import DEFAULT_LANDING_MEMORY, Entity
from connectors.raw_zone import LoadResult, Opener, Progress, RawZone


class ObjectRawZone(RawZone):
    def __init__(self, con: duckdb.DuckDBPyConnection | Opener, raw_url: str,
                 landing_memory: str | None = DEFAULT_LANDING_MEMORY, progress: Progress | None = None,
                 *, spool_dir: str | Path | None = None):
        from hub.object_store import filesystem

        spool = Path(spool_dir or Path(tempfile.gettempdir()) / f"hub-raw-spool-{os.getuid()}")
        super().__init__(con, spool, landing_memory, progress)
        self.raw_url = str(raw_url).rstrip("/")
        self.fs, self.base = filesystem(self.raw_url)

    def remote_folder(self, entity: Entity) -> str:
        return f"{self.base}/{entity.source}/{entity.name}"

    def remote_load(self, entity: Entity, load_id: str) -> str:
        """The load's prefix in the store (its parts are ``part-NNNNN.parquet`` under it)."""
        return f"{self.remote_folder(entity)}/load_id={load_id}"

    def _sweep_uncommitted(self, entity: Entity) -> None:
        super()._sweep_uncommitted(entity)  # the spool
        folder = self.remote_folder(entity)
        self.fs.invalidate_cache(folder)
        try:
            children = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return
        committed = {r[0] for r in self.con.execute(
            "SELECT load_id FROM quality.load_audit WHERE source = ? AND entity = ? AND status = 'ok'",
            [entity.source, entity.name]).fetchall()}
        for child in children:
            name = child.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("load_id=") and name.removeprefix("load_id=") not in committed:
                self.fs.rm(child, recursive=True)

    def _commit(self, entity: Entity, folder: Path | None, stats: ExtractStats, result: LoadResult,
                started_at: datetime, started: float, file_name: str | None, file_sha256: str | None) -> None:
        if folder is None:  # nothing landed: only the audit row (and cursor) to commit
            super()._commit(entity, folder, stats, result, started_at, started, file_name, file_sha256)
            return
        from hub.object_store import put_new

        target = self.remote_load(entity, result.load_id)
        for part in sorted(folder.glob("*.parquet")):  # every part before the commit that makes the load ok
            put_new(self.fs, f"{target}/{part.name}", part.read_bytes())
        super()._commit(entity, folder, stats, result, started_at, started, file_name, file_sha256)
        shutil.rmtree(folder, ignore_errors=True)  # committed: the store's copy is the raw zone


def open_raw_zone(con: duckdb.DuckDBPyConnection | Opener, raw_dir: str | Path,
                  landing_memory: str | None = DEFAULT_LANDING_MEMORY, progress: Progress | None = None,
                  *, spool_dir: str | Path | None = None) -> RawZone:
    """The raw zone at ``raw_dir``: a local folder, or an object-store URL (``s3://…``), which spools a
    load in ``spool_dir`` (HUB_RAW_SPOOL_DIR, the campus_sources resource's spool_dir) before upload."""
    from hub.object_store import is_url

    if is_url(str(raw_dir)):
        return ObjectRawZone(con, str(raw_dir), landing_memory, progress, spool_dir=spool_dir)
    return RawZone(con, raw_dir, landing_memory, progress)
