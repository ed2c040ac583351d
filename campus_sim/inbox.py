"""The party system "drops" its exports into an inbox folder, the way a nightly export job would.

Each file is written under a hidden temporary name inside the inbox, fsynced and then renamed into
place, so a reader watching the inbox never sees a half-written file. A file whose content is already
in the inbox (under any name), or that the hub has already taken from it (archived after its load, or
set aside as unreadable: ``<inbox>/../_archive/<name>/`` and ``_rejected/``, where files are kept as
``<first 12 hex digits of sha256>_<name>``), is not dropped again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def drop_party_exports(data_dir: str | os.PathLike[str], inbox: str | os.PathLike[str]) -> list[Path]:
    """Copy ``data_dir/party/exports/*`` into ``inbox`` atomically; return the paths dropped.

    Files whose sha256 matches a file already in the inbox, or one the hub archived or set aside, are
    skipped, so calling this twice (or after a load) drops nothing the second time. A file of the same
    name but different content is replaced atomically.
    """
    exports = Path(data_dir) / "party" / "exports"
    if not exports.is_dir():
        raise FileNotFoundError(f"no party exports folder: {exports}")
    target = Path(inbox)
    target.mkdir(parents=True, exist_ok=True)
    present = {_sha256(path) for path in _visible_files(target)}
    taken = _taken_by_hub(target)
    dropped = []
    for source in _visible_files(exports):
        digest = _sha256(source)
        if digest in present or (digest[:12], source.name) in taken:
            continue
        dropped.append(_atomic_copy(source, target / source.name))
        present.add(digest)
    if dropped:
        _fsync_directory(target)
    return dropped


def _taken_by_hub(inbox: Path) -> set[tuple[str, str]]:
    """(sha256 prefix, file name) of the files the hub archived or rejected from this inbox."""
    taken = set()
    for kind in ("_archive", "_rejected"):
        folder = inbox.parent / kind / inbox.name
        if folder.is_dir():
            for path in _visible_files(folder):
                prefix, sep, name = path.name.partition("_")
                if sep and len(prefix) == 12 and not name.endswith(".reason.txt"):
                    taken.add((prefix, name))
    return taken


def _visible_files(folder: Path) -> list[Path]:
    """Regular files in ``folder`` (not recursive), skipping hidden and temporary names, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _sha256(path: Path) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_copy(source: Path, destination: Path) -> Path:
    """Copy ``source`` to ``.name.partial`` beside ``destination``, fsync it, then rename into place."""
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            while chunk := reader.read(_CHUNK_BYTES):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return destination


def _fsync_directory(folder: Path) -> None:
    """Make the renames in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
