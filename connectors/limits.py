"""An XLSX file's size, checked before it is parsed: a small file must not make the parser allocate gigabytes.

calamine builds a dense grid of the sheet's range, so a 2 kB workbook that declares ``A1:XFD1048576``
(or holds one cell there) asks for 17 billion cells, and a few MB of compressed shared strings unpack
to gigabytes of text. Before calamine sees a workbook, this reads the zip's directory and streams the
sheet's XML (in blocks, never whole) to find:

* the range the sheet declares (``<dimension ref=…>``) and the one its rows and cells really use;
* the uncompressed size of the whole workbook and of its shared strings.

Any over the source's limits (``max_xlsx_cells``, ``max_xlsx_bytes``, ``max_shared_strings_bytes``)
is a one-line :class:`SourceError`, and the file is set aside into ``_rejected/`` with that reason.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from connectors.base import SourceError
from connectors.config import Source, memory_bytes

DEFAULT_MAX_XLSX_CELLS = 10_000_000
DEFAULT_MAX_XLSX_BYTES = "1GB"
DEFAULT_MAX_SHARED_STRINGS_BYTES = "200MB"
_SMALL_XML = 16 << 20  # workbook.xml and its rels are read whole only below this size

_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Za-z$]*\d*)(?::([A-Za-z$]*\d*))?\"")
_ROW_REF = re.compile(rb"<(?:\w+:)?row\b[^>]*?\sr=\"(\d+)\"")
_CELL_REF = re.compile(rb"<(?:\w+:)?c\b[^>]*?\sr=\"([A-Za-z]+)(\d+)\"")
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


@dataclass(frozen=True)
class XlsxLimits:
    max_cells: int
    max_bytes: int
    max_shared_strings_bytes: int

    @classmethod
    def of(cls, source: Source) -> XlsxLimits:
        return cls(int(source.setting("max_xlsx_cells", DEFAULT_MAX_XLSX_CELLS)),
                   memory_bytes(str(source.setting("max_xlsx_bytes", DEFAULT_MAX_XLSX_BYTES))),
                   memory_bytes(str(source.setting("max_shared_strings_bytes", DEFAULT_MAX_SHARED_STRINGS_BYTES))))


def check_xlsx(path: Path, limits: XlsxLimits, sheet: str | None = None) -> None:
    """Raise a one-line SourceError when the workbook at ``path`` is over ``limits``; else return."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as book:
            infos = book.infolist()
            total = sum(i.file_size for i in infos)
            if total > limits.max_bytes:
                raise SourceError(f"{name}: unpacks to {total:,} bytes, over max_xlsx_bytes ({limits.max_bytes:,}); "
                                  "not parsed")
            by_name = {i.filename.lower(): i for i in infos}
            strings = by_name.get("xl/sharedstrings.xml")
            if strings is not None and strings.file_size > limits.max_shared_strings_bytes:
                raise SourceError(f"{name}: its shared strings unpack to {strings.file_size:,} bytes, over "
                                  f"max_shared_strings_bytes ({limits.max_shared_strings_bytes:,}); not parsed")
            member = _sheet_member(book, by_name, sheet)
            if member is None:
                return  # no such sheet: the parser says so in its own words
            declared, used = _sheet_extent(book, member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ElementTree.ParseError) as exc:
        raise SourceError(f"{name}: not a readable XLSX workbook ({exc})") from None
    for what, (rows, cols) in (("declares a sheet range", declared), ("uses a sheet range", used)):
        cells = rows * cols
        if cells > limits.max_cells:
            raise SourceError(f"{name}: {what} of {rows:,} rows × {cols:,} columns ({_ref(rows, cols)}, "
                              f"{cells:,} cells), over max_xlsx_cells ({limits.max_cells:,}); not parsed")


def _sheet_member(book: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], sheet: str | None) -> str | None:
    """The zip member of the named sheet (the first sheet if None), from workbook.xml and its rels."""
    wb, rels = by_name.get("xl/workbook.xml"), by_name.get("xl/_rels/workbook.xml.rels")
    if wb is None or rels is None or wb.file_size > _SMALL_XML or rels.file_size > _SMALL_XML:
        sheets = sorted(n for n in by_name if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        return by_name[sheets[0]].filename if sheets and sheet is None else None
    root = ElementTree.fromstring(book.read(wb))
    targets = {r.get("Id"): r.get("Target") for r in ElementTree.fromstring(book.read(rels))}
    chosen = None
    for el in root.iter():
        if el.tag.endswith("}sheet") and (sheet is None or el.get("name") == sheet):
            chosen = targets.get(el.get(f"{{{_REL_NS}}}id"))
            break
    if not chosen:
        return None
    target = chosen.lstrip("/") if chosen.startswith("/") else posixpath.normpath(posixpath.join("xl", chosen))
    info = by_name.get(target.lower())
    return info.filename if info is not None else None


def _sheet_extent(book: zipfile.ZipFile, member: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(rows, columns) the sheet declares, and (rows, columns) its rows and cells reach: streamed."""
    declared = (0, 0)
    max_row = max_col = 0
    tail = b""
    first = True
    with book.open(member) as f:
        while block := f.read(1 << 20):
            data = tail + block
            if first:
                m = _DIMENSION.search(data)
                if m:
                    declared = _extent(m.group(1), m.group(2))
                first = False
            for m in _ROW_REF.finditer(data):
                max_row = max(max_row, int(m.group(1)))
            for m in _CELL_REF.finditer(data):
                max_col = max(max_col, _column(m.group(1)))
                max_row = max(max_row, int(m.group(2)))
            cut = data.rfind(b"<")
            tail = data[cut:] if cut >= 0 and len(data) - cut < 4096 else b""  # a tag cut by the block
    return declared, (max_row, max_col)


def _extent(first: bytes, last: bytes | None) -> tuple[int, int]:
    def parts(ref: bytes) -> tuple[int, int]:
        m = re.fullmatch(rb"\$?([A-Za-z]*)\$?(\d*)", ref)
        if not m:
            return 1, 1
        return int(m.group(2) or 1), _column(m.group(1)) if m.group(1) else 1

    r1, c1 = parts(first)
    r2, c2 = parts(last) if last else (r1, c1)
    return abs(r2 - r1) + 1, abs(c2 - c1) + 1


def _column(letters: bytes) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ch - 64)
    return n


def _ref(rows: int, cols: int) -> str:
    letters, n = "", cols
    while n > 0:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return f"A1:{letters or 'A'}{max(rows, 1)}"
