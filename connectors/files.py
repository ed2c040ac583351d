"""File drops: an inbox folder, glob patterns per entity, CSV (UTF-8, UTF-8 with BOM, GB18030/GBK) and XLSX.

A file is known by the sha256 of its content, so the same export dropped twice (or under another name)
is loaded once. Names that resolve outside the inbox (links, ``..``) are refused. A file that cannot be
read at all is moved aside with a ``.reason.txt`` beside it; lines that cannot be decoded are rejected
one by one, with their line number, while the rest of the file loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.base import ExtractStats, Rejected, SourceError, rows_to_table
from connectors.config import Entity, Source, file_format

ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK and GB2312


@dataclass(frozen=True)
class InboxFile:
    path: Path
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileExtractor:
    def __init__(self, source: Source, entity: Entity):
        self.source, self.entity = source, entity
        self.inbox = Path(source.setting("inbox")).resolve()
        self.archive = Path(source.setting("archive", str(self.inbox.parent / "_archive" / self.inbox.name)))
        self.rejected = Path(source.setting("rejected", str(self.inbox.parent / "_rejected" / self.inbox.name)))

    def pending(self) -> list[InboxFile]:
        """Files in the inbox matching the entity's pattern, oldest name first; partial drops skipped."""
        if not self.inbox.is_dir():
            return []
        found = []
        for path in sorted(self.inbox.glob(self.entity.options["pattern"])):
            if path.name.startswith(".") or not path.is_file():
                continue
            real = path.resolve()
            if not real.is_relative_to(self.inbox):
                raise SourceError(f"{self.source.name}.{self.entity.name}: {path.name!r} resolves outside the "
                                  f"inbox {self.inbox} — refused")
            found.append(InboxFile(path, sha256_of(path), path.stat().st_size))
        return found

    def read(self, item: InboxFile, stats: ExtractStats) -> pa.Table:
        stats.files += 1
        if file_format(self.entity) == "xlsx":
            stats.encoding = "xlsx"
            return self._read_xlsx(item.path)
        return self._read_csv(item.path, stats)

    # -- CSV ---------------------------------------------------------------------------------
    def _read_csv(self, path: Path, stats: ExtractStats) -> pa.Table:
        data = path.read_bytes()
        for enc in ENCODINGS:
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            stats.encoding = "utf-8" if enc == "utf-8-sig" and not data.startswith(b"\xef\xbb\xbf") else enc
            return _parse_csv(text.encode("utf-8"), path)
        return self._read_csv_damaged(path, data, stats)

    def _read_csv_damaged(self, path: Path, data: bytes, stats: ExtractStats) -> pa.Table:
        """Neither encoding decodes the whole file: keep the encoding most lines decode in, and reject
        the lines that do not, each with its line number (line breaks are single bytes in all three)."""
        lines = data.split(b"\n")

        def failures(enc: str) -> list[int]:
            bad = []
            for i, line in enumerate(lines):
                try:
                    line.decode(enc)
                except UnicodeDecodeError:
                    bad.append(i)
            return bad

        enc, bad = min(((e, failures(e)) for e in ENCODINGS), key=lambda pair: len(pair[1]))
        if 0 in bad:
            raise SourceError(f"{path.name}: the header line cannot be decoded as UTF-8 or GB18030")
        stats.encoding = "utf-8" if enc == "utf-8-sig" else enc
        bad_set = set(bad)
        for i in bad:
            stats.rejected.append(Rejected(
                rule="undecodable_bytes",
                detail=f"{path.name} line {i + 1}: bytes not valid {stats.encoding}",
                original={"file": path.name, "line": i + 1,
                          "text": lines[i].decode(enc, errors="replace").rstrip("\r")}))
        good = b"\n".join(line.decode(enc).encode("utf-8") for i, line in enumerate(lines) if i not in bad_set)
        return _parse_csv(good, path)

    # -- XLSX ---------------------------------------------------------------------------------
    def _read_xlsx(self, path: Path) -> pa.Table:
        from python_calamine import CalamineWorkbook

        try:
            book = CalamineWorkbook.from_path(str(path))
            sheet = self.entity.options.get("sheet")
            rows = (book.get_sheet_by_name(sheet) if sheet else book.get_sheet_by_index(0)).to_python(
                skip_empty_area=True)
        except Exception as exc:  # calamine raises its own error types for broken workbooks
            raise SourceError(f"{path.name}: not a readable XLSX workbook ({exc})") from None
        if not rows:
            raise SourceError(f"{path.name}: the first sheet is empty")
        header = [str(h).strip() for h in rows[0]]
        body = [list(r) for r in rows[1:] if any(v not in (None, "") for v in r)]
        return rows_to_table(header, body)

    # -- after the load -------------------------------------------------------------------------
    def archive_file(self, item: InboxFile) -> Path:
        return _move(item.path, self.archive, item.sha256)

    def reject_file(self, item: InboxFile, reason: str) -> Path:
        dest = _move(item.path, self.rejected, item.sha256)
        dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return dest


def _move(path: Path, folder: Path, sha: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{sha[:12]}_{path.name}"
    shutil.move(str(path), dest)
    return dest


def _parse_csv(utf8: bytes, path: Path) -> pa.Table:
    """Parse with Arrow's CSV reader, every column as text as written (leading zeros, codes like 01)."""
    first = utf8.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    header = [h.strip() for h in next(csv.reader([first]))]
    if not any(header):
        raise SourceError(f"{path.name}: no header line")
    try:
        return pacsv.read_csv(
            io.BytesIO(utf8),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True,
                null_values=[""], auto_dict_encode=False),
        )
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{path.name}: not a well-formed CSV file ({exc})") from None
