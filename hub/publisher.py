"""Versioned, atomically switched Parquet datasets under the published root (a path or an fsspec URL).

Layout::

    <root>/catalog.json                          {"datasets": {name: {"current_version", "manifest", ...}}}
    <root>/<dataset>/<version>/data/part-00000.parquet
    <root>/<dataset>/<version>/manifest.json      written last, after every data file

A version is written completely (on a local root: into a hidden folder renamed into place; elsewhere:
uploaded file by file, the manifest last) and only then made current by replacing ``catalog.json``
(locally: temporary file, fsync, ``os.replace`` under a lock; on S3 a PUT conditional on the ETag the
catalog was read at, retried when another publisher got there first: hub.object_store). A reader
that follows the catalog always lands on a complete version; a publish that fails or is killed leaves
the previous version current. The same content publishes no new version. Datasets for the restricted
audience are written with Parquet modular encryption (hub.encryption); no other audience may carry a
restricted column.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from hub import encryption, object_store

SENSITIVITY = ("public", "internal", "restricted")
AUDIENCES = ("public", "internal", "restricted")
ROW_GROUP_ROWS = 122_880


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


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _write_local_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _filesystem(root: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, path.rstrip("/")


def read_catalog(root: str | Path) -> dict[str, Any]:
    fs, base = _filesystem(root)
    try:  # read, not exists() first: an object store's listing cache may not know a new catalog yet
        data = fs.cat_file(f"{base}/catalog.json")
    except FileNotFoundError:
        return {"datasets": {}}
    return json.loads(data.decode("utf-8"))


def read_manifest(root: str | Path, name: str) -> dict[str, Any]:
    """The current manifest of a dataset, as a reader finds it: through the catalog."""
    fs, base = _filesystem(root)
    entry = read_catalog(root)["datasets"][name]
    return json.loads(fs.cat_file(f"{base}/{entry['manifest']}").decode("utf-8"))


class Publisher:
    def __init__(self, root: str | Path, *, keep_versions: int = 5, kms_master_keys: str | None = None):
        if keep_versions < 1:
            raise PublishError(f"keep_versions must be at least 1, got {keep_versions}")
        self.root = str(root)
        self.fs, self.base = _filesystem(root)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.keep_versions = keep_versions
        self._kms_master_keys = kms_master_keys

    # -- publish ---------------------------------------------------------------------------------
    def publish(self, con: duckdb.DuckDBPyConnection, spec: DatasetSpec, *, lineage: list[str],
                quality: dict[str, Any]) -> dict[str, Any]:
        """Publish ``spec`` and return its manifest (``changed`` False when the content was already current)."""
        spec.check()
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {spec.query}").fetchall()}
        declared = [c.name for c in spec.columns]
        if set(types) != set(declared):
            raise PublishError(f"dataset {spec.name}: columns {sorted(set(types) ^ set(declared))} are not both "
                               "selected and described (every column needs a description and sensitivity)")
        columns = ", ".join('"' + c.replace('"', '""') + '"' for c in declared)
        [(rows, fingerprint)] = con.execute(  # order-independent content hash; equal data, equal fingerprint
            f"SELECT count(*), coalesce(sum(hash({columns})::HUGEINT), 0)::VARCHAR FROM ({spec.query})").fetchall()
        current = read_catalog(self.root)["datasets"].get(spec.name)
        if current and current.get("fingerprint") == fingerprint and current.get("row_count") == rows:
            return {**read_manifest(self.root, spec.name), "changed": False}

        created = datetime.now(UTC)
        version = f"v{created:%Y%m%dT%H%M%S%fZ}"
        encrypted = spec.audience == "restricted"
        with tempfile.TemporaryDirectory(prefix=f".tmp-{version}-",
                                         dir=self._local_dataset_dir(spec.name)) as tmpdir:
            tmp = Path(tmpdir) / version
            (tmp / "data").mkdir(parents=True)
            part = tmp / "data" / "part-00000.parquet"
            select = f"SELECT {columns} FROM ({spec.query}) ORDER BY {spec.order_by}"
            if encrypted:
                self._write_encrypted(con, select, part)
            else:
                con.execute(f"COPY ({select}) TO '{part}' "
                            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
            files = [{"path": f"data/{p.name}", "bytes": p.stat().st_size, "rows": self._rows(p, encrypted),
                      "sha256": _sha256(p)} for p in sorted((tmp / "data").glob("*.parquet"))]
            manifest = {
                "name": spec.name, "version": version, "created_at": created.isoformat(),
                "description": spec.description, "row_count": rows, "fingerprint": fingerprint,
                "schema": {"columns": [{**asdict(c), "type": types[c.name]} for c in spec.columns]},
                "files": files, "quality": quality, "lineage": {"load_ids": sorted(set(lineage))},
                "audience": spec.audience, "encrypted": encrypted,
                **({"encryption": {"standard": "Parquet modular encryption", "algorithm": encryption.ALGORITHM,
                                   "footer_key_id": encryption.FOOTER_KEY_ID,
                                   "kms": f"local, master keys from {encryption.ENV_VAR}"}} if encrypted else {}),
            }
            (tmp / "manifest.json").write_bytes(_dumps(manifest))  # last file of the version
            self._place_version(tmp, spec.name, version)
        self._switch(spec, manifest)
        self._prune(spec.name)
        return {**manifest, "changed": True}

    def _local_dataset_dir(self, name: str) -> str | None:
        """Temporary versions live beside their dataset on a local root (same filesystem: rename works)."""
        if not self.local:
            return None
        folder = Path(self.base) / name
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def _write_encrypted(self, con: duckdb.DuckDBPyConnection, select: str, part: Path) -> None:
        properties = encryption.encryption_properties(encryption.master_keys(self._kms_master_keys))
        reader = con.sql(select).to_arrow_reader(ROW_GROUP_ROWS)  # streamed: one row group in memory
        try:
            with pq.ParquetWriter(part, reader.schema, compression="zstd",
                                  encryption_properties=properties) as writer:
                for batch in reader:
                    writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        finally:
            reader.close()

    def _rows(self, path: Path, encrypted: bool) -> int:
        if not encrypted:
            return pq.ParquetFile(path).metadata.num_rows
        keys = encryption.master_keys(self._kms_master_keys)
        return pq.ParquetFile(path, decryption_properties=encryption.decryption_properties(keys)).metadata.num_rows

    def _place_version(self, tmp: Path, name: str, version: str) -> None:
        if self.local:
            tmp.rename(Path(self.base) / name / version)
            return
        target = f"{self.base}/{name}/{version}"
        for f in sorted((tmp / "data").iterdir()):
            self.fs.put_file(str(f), f"{target}/data/{f.name}")
        self.fs.put_file(str(tmp / "manifest.json"), f"{target}/manifest.json")

    # -- the switch --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _catalog_lock(self) -> Iterator[None]:
        if not self.local:  # object stores: the catalog is replaced by a conditional write instead
            yield
            return
        Path(self.base).mkdir(parents=True, exist_ok=True)
        with (Path(self.base) / ".catalog.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _switch(self, spec: DatasetSpec, manifest: dict[str, Any]) -> None:
        def updated(current: bytes | None) -> bytes:
            catalog = json.loads(current.decode("utf-8")) if current else {"datasets": {}}
            catalog.setdefault("datasets", {})[spec.name] = {
                "current_version": manifest["version"],
                "manifest": f"{spec.name}/{manifest['version']}/manifest.json",
                "description": spec.description, "audience": spec.audience, "encrypted": manifest["encrypted"],
                "row_count": manifest["row_count"], "fingerprint": manifest["fingerprint"],
                "updated_at": manifest["created_at"],
            }
            catalog["updated_at"] = manifest["created_at"]
            return _dumps(catalog)

        if not self.local:  # no rename, no lock: a conditional PUT on the catalog's ETag (hub.object_store)
            object_store.conditional_update(self.fs, f"{self.base}/catalog.json", updated)
            return
        with self._catalog_lock():
            path = Path(self.base) / "catalog.json"
            _write_local_atomic(path, updated(path.read_bytes() if path.exists() else None))

    def _prune(self, name: str) -> None:
        current = read_catalog(self.root)["datasets"][name]["current_version"]
        folder = f"{self.base}/{name}"
        self.fs.invalidate_cache(folder)  # an object store's listing cache: list what is there now
        versions = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))
        versions = [v for v in versions if v.startswith("v")]
        for old in versions[:-self.keep_versions]:
            if old != current:
                self.fs.rm(f"{folder}/{old}", recursive=True)
        if self.local:  # temporary folders of a publish that was killed; live ones are younger
            cutoff = datetime.now(UTC).timestamp() - 3600
            for stale in Path(folder).glob(".tmp-*"):
                if stale.stat().st_mtime < cutoff:
                    shutil.rmtree(stale, ignore_errors=True)


def notify_catalogue(url: str, manifest: dict[str, Any], *, token: str | None, timeout: float = 10.0,
                     attempts: int = 5) -> int:
    """POST a new current version's manifest to the platform's catalogue (retrying 429/5xx/timeouts with
    the REST connector's policy). Returns the HTTP status; raises PublishError with the server's word."""
    import requests
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    from connectors.redact import redact
    from connectors.rest import RETRY_STATUS, RetryableHTTPError, _retryable, _server_message, _wait

    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    body = _dumps({k: v for k, v in manifest.items() if k != "changed"})

    def post() -> requests.Response:
        resp = requests.post(url, data=body, headers=headers, timeout=timeout)
        if resp.status_code in RETRY_STATUS:
            raise RetryableHTTPError(resp)
        return resp

    try:
        resp = Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(attempts), wait=_wait(0.5),
                        reraise=True)(post)
    except (RetryableHTTPError, requests.RequestException) as exc:
        raise PublishError(redact(f"catalogue {url}: notification of {manifest['name']} {manifest['version']} "
                                  f"failed after {attempts} attempts: {exc}", secrets=[token or ""])) from None
    if resp.status_code >= 400:
        raise PublishError(redact(f"catalogue {url}: HTTP {resp.status_code}: {_server_message(resp)}",
                                  secrets=[token or ""]))
    return resp.status_code
