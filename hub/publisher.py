"""Versioned, atomically switched Parquet datasets under the published root.

Layout::

    <root>/catalog.json                      {"datasets": {name: {"current_version", "manifest", ...}}}
    <root>/<dataset>/<version>/data/part-00000.parquet
    <root>/<dataset>/<version>/manifest.json  written last, after every data file

A version is written into a hidden temporary folder, renamed into place complete, and only then made
current by replacing ``catalog.json`` (write to a temporary file, fsync, ``os.replace``). A reader that
follows the catalog therefore always lands on a complete version; a publish that fails or is killed
leaves the previous version current. Publishing the same content again makes no new version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

SENSITIVITY = ("public", "internal", "restricted")
AUDIENCES = ("public", "internal", "restricted")


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    sensitivity: str = "internal"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    query: str
    order_by: str
    columns: tuple[Column, ...]
    audience: str = "internal"

    def check(self) -> None:
        if self.audience not in AUDIENCES:
            raise PublishError(f"dataset {self.name}: audience {self.audience!r} not one of {AUDIENCES}")
        for c in self.columns:
            if c.sensitivity not in SENSITIVITY:
                raise PublishError(f"dataset {self.name}: column {c.name} sensitivity {c.sensitivity!r} "
                                   f"not one of {SENSITIVITY}")
            if c.sensitivity == "restricted" and self.audience != "restricted":
                raise PublishError(f"dataset {self.name}: restricted column {c.name} in a dataset for the "
                                   f"{self.audience} audience")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _catalog_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".catalog.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_catalog(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "catalog.json"
    if not path.exists():
        return {"datasets": {}}
    return json.loads(path.read_text(encoding="utf-8"))


class Publisher:
    def __init__(self, root: str | Path, *, keep_versions: int = 5):
        self.root = Path(root)
        if keep_versions < 1:
            raise PublishError(f"keep_versions must be at least 1, got {keep_versions}")
        self.keep_versions = keep_versions

    def publish(self, con: duckdb.DuckDBPyConnection, spec: DatasetSpec, *, lineage: list[str],
                quality: dict[str, Any]) -> dict[str, Any]:
        """Publish ``spec`` and return its manifest (``changed`` False when the content was already current)."""
        spec.check()
        described = con.execute(f"DESCRIBE {spec.query}").fetchall()
        types = {r[0]: r[1] for r in described}
        declared = {c.name for c in spec.columns}
        if set(types) != declared:
            raise PublishError(f"dataset {spec.name}: columns {sorted(set(types) ^ declared)} are not both "
                               "selected and described (every column needs a description and sensitivity)")
        columns = ", ".join('"' + c.name.replace('"', '""') + '"' for c in spec.columns)
        rows, fingerprint = con.execute(  # order-independent content hash; equal data, equal fingerprint
            f"SELECT count(*), coalesce(sum(hash({columns})::HUGEINT), 0)::VARCHAR FROM ({spec.query})").fetchone()
        current = read_catalog(self.root)["datasets"].get(spec.name)
        if current and current.get("fingerprint") == fingerprint and current.get("row_count") == rows:
            manifest = json.loads((self.root / current["manifest"]).read_text(encoding="utf-8"))
            return {**manifest, "changed": False}

        created = datetime.now(UTC)
        version = f"v{created:%Y%m%dT%H%M%S%fZ}"
        folder = self.root / spec.name
        tmp = folder / f".tmp-{version}"
        tmp.mkdir(parents=True)
        try:
            (tmp / "data").mkdir()
            part = tmp / "data" / "part-00000.parquet"
            con.execute(f"COPY (SELECT * FROM ({spec.query}) ORDER BY {spec.order_by}) TO '{part}' "
                        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
            files = [{"path": f"data/{p.name}", "bytes": p.stat().st_size, "rows": pq.ParquetFile(p).metadata.num_rows,
                      "sha256": _sha256(p)} for p in sorted((tmp / "data").glob("*.parquet"))]
            manifest = {
                "name": spec.name, "version": version, "created_at": created.isoformat(),
                "description": spec.description, "row_count": rows, "fingerprint": fingerprint,
                "schema": {"columns": [{**asdict(c), "type": types[c.name]} for c in spec.columns]},
                "files": files, "quality": quality, "lineage": {"load_ids": sorted(set(lineage))},
                "audience": spec.audience, "encrypted": False,
            }
            _write_json_atomic(tmp / "manifest.json", manifest)
            tmp.rename(folder / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._switch(spec, manifest)
        self._prune(spec.name)
        return {**manifest, "changed": True}

    def _switch(self, spec: DatasetSpec, manifest: dict[str, Any]) -> None:
        with _catalog_lock(self.root):
            catalog = read_catalog(self.root)
            catalog.setdefault("datasets", {})[spec.name] = {
                "current_version": manifest["version"],
                "manifest": f"{spec.name}/{manifest['version']}/manifest.json",
                "description": spec.description, "audience": spec.audience,
                "row_count": manifest["row_count"], "fingerprint": manifest["fingerprint"],
                "updated_at": manifest["created_at"],
            }
            catalog["updated_at"] = manifest["created_at"]
            _write_json_atomic(self.root / "catalog.json", catalog)

    def _prune(self, name: str) -> None:
        folder = self.root / name
        current = read_catalog(self.root)["datasets"][name]["current_version"]
        versions = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("v"))
        for old in versions[:-self.keep_versions]:
            if old != current:
                shutil.rmtree(folder / old, ignore_errors=True)
        for stale in folder.glob(".tmp-*"):  # left by a publish that was killed
            shutil.rmtree(stale, ignore_errors=True)
