"""Object storage (S3-compatible, through fsspec and s3fs) for the raw zone and the published datasets.

An object store has no rename and no lock, so what a local root does with ``os.replace`` under
``flock`` is done here with S3's conditional writes:

* a new object that must not exist yet is put with ``If-None-Match: *``;
* an object that is read, changed and written back (the published ``catalog.json``) is put with
  ``If-Match: <the ETag it was read at>``; a writer that lost the race gets ``412 Precondition Failed``,
  reads the object again and reapplies its change. Two publishers of different datasets (two colleges'
  runs, or two of one college's publish steps) can therefore never lose each other's update.

A PUT replaces an object whole, so a reader sees the old catalog or the new one, never a part of one.

Endpoints and credentials are the standard ones of botocore: ``AWS_ENDPOINT_URL_S3`` (MinIO, Ceph,
OSS, moto), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or an instance role, ``AWS_DEFAULT_REGION``.
Nothing here reads or logs a secret.

Other fsspec filesystems (``memory://`` in tests, or one without conditional writes) fall back to a
plain read-modify-write: correct with one writer per root, which the per-college pool gives.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import fsspec
from fsspec.implementations.local import LocalFileSystem


class ObjectStoreError(RuntimeError):
    pass


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path in it, without a trailing slash."""
    fs, path = fsspec.core.url_to_fs(str(url))
    return fs, path.rstrip("/")


def is_url(location: str) -> bool:
    """True for ``s3://…`` and other fsspec URLs, False for a local path (or ``file://``)."""
    return "://" in str(location) and not str(location).startswith("file://")


def is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    try:
        import s3fs
    except ImportError:  # the `scale` extra is not installed: no S3 here
        return False
    return isinstance(fs, s3fs.S3FileSystem)


def college_root(root: str, xxdm: str) -> str:
    """Where one college's objects live under a shared root: ``<root>/xxdm=<xxdm>``.

    The layout a per-college partition uses (docs/scale-out.md): one prefix per college, so one
    bucket policy or lifecycle rule can address a college, and listing a college never lists others."""
    if not (xxdm.isdigit() and len(xxdm) == 10):
        raise ObjectStoreError(f"xxdm must be the 10-digit 学校代码, got {xxdm!r}")
    return f"{str(root).rstrip('/')}/xxdm={xxdm}"


def read_bytes(fs: fsspec.AbstractFileSystem, path: str) -> bytes | None:
    """The object's bytes, or None when there is none (no listing cache involved)."""
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None


def _precondition_failed(exc: BaseException) -> bool:
    for e in (exc, exc.__cause__, exc.__context__):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
    return isinstance(exc, FileExistsError) or "PreconditionFailed" in str(exc)


def _s3_read(fs, bucket: str, key: str) -> tuple[bytes | None, str | None]:
    """(body, ETag of the HEAD before the GET). Should the object change in between, the body is newer
    than the ETag, and the conditional PUT that follows fails and is retried: never a lost update."""
    for _ in range(20):
        try:
            etag = fs.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]
            return fs.cat_file(f"{bucket}/{key}"), etag
        except FileNotFoundError:
            try:
                fs.call_s3("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return None, None
    raise ObjectStoreError(f"s3://{bucket}/{key} vanished and came back on every read")


def conditional_update(fs: fsspec.AbstractFileSystem, path: str, update: Callable[[bytes | None], bytes], *,
                       attempts: int = 50) -> bytes:
    """Replace the object ``path`` with ``update(current bytes or None)``, atomically with respect to other
    writers using this function: compare-and-swap on the ETag (S3), retried with jitter when another
    writer got there first. Returns what was written."""
    if isinstance(fs, LocalFileSystem):
        raise ObjectStoreError("conditional_update is for object stores; a local root uses os.replace")
    if not is_s3(fs):
        data = update(read_bytes(fs, path))
        fs.pipe_file(path, data)
        return data
    bucket, key, _ = fs.split_path(path)
    for attempt in range(attempts):
        current, etag = _s3_read(fs, bucket, key)
        data = update(current)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except Exception as exc:
            if not _precondition_failed(exc):
                raise
            time.sleep(min(0.5, 0.01 * (2 ** min(attempt, 6))) * random.random())
            continue
        fs.invalidate_cache(path)
        return data
    raise ObjectStoreError(f"s3://{bucket}/{key}: gave up after {attempts} conflicting writes")


def put_new(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Create ``path``; raise FileExistsError when it is there already (S3: ``If-None-Match: *``)."""
    if is_s3(fs):
        bucket, key, _ = fs.split_path(path)
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as exc:
            if _precondition_failed(exc):
                raise FileExistsError(path) from None
            raise
        fs.invalidate_cache(path)
        return
    if read_bytes(fs, path) is not None:
        raise FileExistsError(path)
    fs.pipe_file(path, data)
