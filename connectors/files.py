"""File drops: an inbox folder, glob patterns per entity, CSV (UTF-8, UTF-8 with BOM, GB18030/GBK) and XLSX.

A file is known by the sha256 of its content, so the same export dropped twice (or under another name)
is loaded once. Exports made by people are read as people make them (docs/connectors.md):

* a title above the header (``header_row`` or ``skip_rows``), one or more header rows (``header_rows``)
  whose names are joined, a merged top cell spreading over the columns it covers;
* footer rows (合计, 总计, 制表人：… by default; ``footer``) are set aside into quarantine with the rule
  ``footer_row``: counted in the audit, never landed as data;
* a CSV row with the wrong number of fields is quarantined with its line number and raw text
  (``wrong_field_count``) and the rest of the file lands; lines that cannot be decoded are quarantined
  the same way (``undecodable_bytes``).

A file that cannot be loaded at all (unreadable, a required column missing, failing at landing) and a
link that points out of the inbox are moved to ``_rejected/`` with a ``.reason.txt`` beside them; the
entity's other files still load.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import ExtractStats, Rejected, SourceError, rows_to_table, value_as_text
from connectors.config import Entity, Source, file_format
from connectors.limits import XlsxLimits, check_xlsx

# A row whose first non-empty cell is one of these (spaces ignored; alone, or followed by ：/: or a
# bracket, e.g. "合 计", "合计（人）", "制表人：王芳") is a footer row, not data.
FOOTER_FIRST_CELLS = ("合计", "总计", "小计", "共计", "累计", "总数", "制表人", "制表", "制表日期", "制表时间",
                      "制表单位", "审核人", "审核", "审批人", "填表人", "填表", "填表日期", "填报人", "填报日期",
                      "填报单位", "备注", "说明", "注")
_SPACE_RE2 = r"[\s\p{Z}]*"  # RE2 (Arrow): ASCII white space and every Unicode space (U+3000, U+00A0)
_BLANK = "\x00blank:"  # a provisional name for a column without a header (see _finish_columns)


@dataclass(frozen=True)
class Layout:
    """Where the header is and what counts as a footer, from the entity's options."""

    header_row: int | None = None  # 1-based row of the first header row; None: the first non-blank row
    header_rows: int = 1
    separator: str = "_"
    footer_cells: tuple[str, ...] = FOOTER_FIRST_CELLS
    footer_last_rows: int = 0

    @classmethod
    def of(cls, options: dict[str, Any]) -> Layout:
        header_row = options.get("header_row")
        if header_row is None and options.get("skip_rows") is not None:
            header_row = int(options["skip_rows"]) + 1
        footer = options.get("footer")
        cells, last = FOOTER_FIRST_CELLS, 0
        if footer is False or (isinstance(footer, str) and footer.lower() == "none"):
            cells = ()
        elif isinstance(footer, dict):
            cells = tuple(str(c) for c in footer.get("first_cell", FOOTER_FIRST_CELLS))
            last = int(footer.get("last_rows", 0))
        return cls(int(header_row) if header_row is not None else None, int(options.get("header_rows", 1)),
                   str(options.get("header_separator", "_")), cells, last)

    def footer_pattern(self, space: str = _SPACE_RE2) -> str | None:
        """One regular expression for a trimmed first cell that is a footer: a word, spaces allowed
        between its characters ("合 计"), then the end, a colon or a bracket. ``space`` is the pattern of
        any run of spaces: RE2's for Arrow, ``\\s*`` for Python's ``re`` (which knows no ``\\p{Z}``)."""
        words = sorted({w for w in (re.sub(r"\s+", "", c).rstrip(":：") for c in self.footer_cells) if w},
                       key=len, reverse=True)
        if not words:
            return None
        alternatives = "|".join(space.join(re.escape(ch) for ch in w) for w in words)
        return f"^(?:{alternatives}){space}(?:$|[:：(（])"


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
        self.layout = Layout.of(entity.options)
        self.inbox = Path(source.setting("inbox")).resolve()
        self.archive = Path(source.setting("archive", str(self.inbox.parent / "_archive" / self.inbox.name)))
        self.rejected = Path(source.setting("rejected", str(self.inbox.parent / "_rejected" / self.inbox.name)))
        self.refused: list[tuple[Path, str]] = []  # names in the inbox not read, with the reason

    def pending(self) -> list[InboxFile]:
        """Files in the inbox matching the entity's pattern, oldest name first; partial drops skipped.

        A name that resolves outside the inbox (a link) is never read: it goes to ``self.refused``."""
        self.refused = []
        if not self.inbox.is_dir():
            return []
        found = []
        for path in sorted(self.inbox.glob(self.entity.options["pattern"])):
            if path.name.startswith("."):
                continue
            real = path.resolve()
            if not real.is_relative_to(self.inbox):
                if path.is_symlink() or path.exists():
                    self.refused.append((path, f"{path.name} resolves to {real}, outside the inbox "
                                               f"{self.inbox}: refused, not read"))
                continue
            if not path.is_file():
                continue
            found.append(InboxFile(path, sha256_of(path), path.stat().st_size))
        return found

    def read(self, item: InboxFile, stats: ExtractStats) -> tuple[list[str], Iterable[pa.Table]]:
        """The file's column names and its rows as text tables: a CSV streamed in blocks
        (connectors/csv_stream.py), a workbook whole once its size is checked (connectors/limits.py)."""
        stats.files += 1
        try:
            if file_format(self.entity) == "xlsx":
                stats.encoding = "xlsx"
                check_xlsx(item.path, XlsxLimits.of(self.source), self.entity.options.get("sheet"))  # before parsing
                table = self._read_xlsx(item.path, stats)
                return table.column_names, [table]
            from connectors.csv_stream import read_csv

            return read_csv(item.path, self.layout, stats)
        except pa.ArrowException as exc:
            raise SourceError(f"{item.path.name}: {_first_line(exc)}") from None

    def check_columns(self, item: InboxFile, columns: list[str]) -> None:
        """A file without a required column (the primary key or ``required_columns``) cannot load."""
        missing = [c for c in self.entity.required if c not in columns]
        if missing:
            cols = columns
            raise SourceError(f"{item.path.name}: required column(s) {missing} missing (its header has "
                              f"{cols[:12]}{'…' if len(cols) > 12 else ''})")

    # -- XLSX ---------------------------------------------------------------------------------
    def _read_xlsx(self, path: Path, stats: ExtractStats) -> pa.Table:
        from python_calamine import CalamineWorkbook

        try:
            book = CalamineWorkbook.from_path(str(path))
            sheet_name = self.entity.options.get("sheet")
            sheet = book.get_sheet_by_name(sheet_name) if sheet_name else book.get_sheet_by_index(0)
            rows = sheet.to_python(skip_empty_area=False)  # rows and columns as numbered in the sheet
            merged = list(getattr(sheet, "merged_cell_ranges", None) or [])
        except Exception as exc:  # calamine raises its own error types for broken workbooks
            raise SourceError(f"{path.name}: not a readable XLSX workbook ({_first_line(exc)})") from None
        layout = self.layout
        filled = [i for i, r in enumerate(rows) if any(v not in (None, "") for v in r)]
        if not filled:
            raise SourceError(f"{path.name}: the sheet is empty")
        top = layout.header_row - 1 if layout.header_row else filled[0]
        if top + layout.header_rows > len(rows):
            raise SourceError(f"{path.name}: the header (row {top + 1}, {layout.header_rows} row(s)) lies "
                              f"beyond the sheet's last row {len(rows)}")
        header = [list(r) for r in rows[top:top + layout.header_rows]]
        # A merged cell holds its value in its first cell only: spread it over the columns it covers.
        # Known merges are exact; the guess from blanks is used only when the header has none.
        in_header = [((r1, c1), (r2, c2)) for (r1, c1), (r2, c2) in merged if top <= r1 < top + layout.header_rows]
        for (r1, c1), (_r2, c2) in in_header:
            for c in range(c1 + 1, min(c2 + 1, len(header[r1 - top]))):
                header[r1 - top][c] = header[r1 - top][c1]
        names = _header_names(header, layout.separator, carry=not in_header, path=path)
        body_at = [i for i in filled if i >= top + layout.header_rows]
        body_at = self._precision_lost(names, rows, body_at, path, stats)
        table = _finish_columns(rows_to_table(names, [rows[i] for i in body_at]), path)
        sheet_rows = np.asarray(body_at, dtype=np.int64) + 1
        return self._set_footer_aside(table, path, stats, lambda: sheet_rows, "row")

    def _precision_lost(self, names: list[str], rows: list[list[Any]], body_at: list[int], path: Path,
                        stats: ExtractStats) -> list[int]:
        """Rows whose identifier column (the key, ``identifier_columns``) holds a number cell of more than
        15 significant digits are quarantined as ``precision_lost``: Excel keeps 15 digits and a float 15-17,
        so 450102199001010087 comes back as 450102199001010112, and no reading can restore it. The rest of
        the rows are returned. Text cells are read as the text they hold."""
        wanted = dict.fromkeys((*self.entity.primary_key, *self.entity.options.get("identifier_columns", ())))
        at = [names.index(c) for c in wanted if c in names]
        if not at:
            return body_at
        kept = []
        for i in body_at:
            row = rows[i]
            lost = [(names[c], row[c]) for c in at if c < len(row) and _too_long_for_float(row[c])]
            if not lost:
                kept.append(i)
                continue
            column, value = lost[0]
            cells = dict(zip(names, row, strict=False))
            shown = value_as_text(value)
            stats.rejected.append(Rejected(
                rule="precision_lost",
                record_key="|".join(value_as_text(cells.get(k)) or "" for k in self.entity.primary_key),
                detail=f"{path.name} row {i + 1}: {column} is a number cell {shown} "
                       f"({len(shown.lstrip('-'))} digits): more than 15 significant digits cannot survive a float, "
                       "so the value is not what was typed; export the column as text",
                original={"file": path.name, "row": i + 1,
                          "values": {n: value_as_text(v) for n, v in cells.items() if v not in (None, "")}}))
        return kept

    # -- footers --------------------------------------------------------------------------------
    def _set_footer_aside(self, table: pa.Table, path: Path, stats: ExtractStats,
                          positions: Callable[[], np.ndarray | None], unit: str,
                          last: np.ndarray | None = None) -> pa.Table:
        """Quarantine the footer rows (rule ``footer_row``, with the row as read) and return the rest.

        ``last`` marks the rows among the last ``footer.last_rows`` records, when rows alone do not tell."""
        if table.num_rows == 0 or (self.layout.footer_pattern() is None and not self.layout.footer_last_rows):
            return table
        mask = _footer_mask(table, self.layout, last)
        if not mask.any():
            return table
        at = np.flatnonzero(mask)
        where = positions()
        footer = table.take(pa.array(at)).to_pylist()
        first_cells = _first_cells(table.take(pa.array(at))).to_pylist()
        for k, (i, row) in enumerate(zip(at, footer, strict=True)):
            place = f"{unit} {int(where[i])}" if where is not None else f"data row {int(i) + 1}"
            stats.rejected.append(Rejected(
                rule="footer_row", detail=f"{path.name} {place}: footer row "
                                          f"{repr(first_cells[k]) if first_cells[k] else '(one of the last rows)'}",
                original={"file": path.name, unit: int(where[i]) if where is not None else None,
                          "values": {c: v for c, v in row.items() if v is not None}}))
        return table.filter(pa.array(~mask))

    # -- after the load -------------------------------------------------------------------------
    def archive_file(self, item: InboxFile) -> Path:
        return _move(item.path, self.archive, item.sha256)

    def reject_file(self, item: InboxFile, reason: str) -> Path:
        dest = _move(item.path, self.rejected, item.sha256)
        _write_reason(dest, item.path.name, self.entity, reason)
        return dest

    def reject_link(self, path: Path, reason: str) -> Path | None:
        """Move the link itself (never what it points to) to ``_rejected/``."""
        if not path.is_symlink():
            return None  # under a linked folder: the file itself lives outside, so it stays where it is
        tag = hashlib.sha256(f"{path.name}\0{path.readlink()}".encode()).hexdigest()
        self.rejected.mkdir(parents=True, exist_ok=True)
        dest = self.rejected / f"{tag[:12]}_{path.name}"
        path.rename(dest) if _same_device(path.parent, self.rejected) else _move_link(path, dest)
        _write_reason(dest, path.name, self.entity, reason)
        return dest


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _move_link(path: Path, dest: Path) -> None:
    """Across file systems: a new link with the same target, then the old link removed (not followed)."""
    dest.symlink_to(path.readlink())
    path.unlink()


def _write_reason(dest: Path, name: str, entity: Entity, reason: str) -> None:
    dest.with_name(dest.name + ".reason.txt").write_text(
        f"file: {name}\nentity: {entity.source}.{entity.name}\nrejected_at: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n"
        f"reason: {reason}\n", encoding="utf-8")


def _move(path: Path, folder: Path, sha: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{sha[:12]}_{path.name}"
    shutil.move(str(path), dest)
    return dest


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- headers ------------------------------------------------------------------------------------
def _take_header_rows(text: str, layout: Layout, path: Path) -> tuple[list[list[str]], int, int]:
    """The header records of a CSV text, and how many lines and characters they and the title took.

    Rows are counted as a spreadsheet shows them: a blank line is a row, a quoted value over several
    lines is one row."""
    used = {"lines": 0, "chars": 0}

    def lines() -> Iterator[str]:
        pos = 0
        while pos < len(text):
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end + 1
            used["lines"] += 1
            used["chars"] = end
            yield text[pos:end]
            pos = end

    reader = csv.reader(lines())
    try:
        if layout.header_row:
            for _ in range(layout.header_row - 1):
                next(reader)
            header = [next(reader) for _ in range(layout.header_rows)]
        else:
            first = next(r for r in reader if any(c.strip() for c in r))
            header = [first] + [next(reader) for _ in range(layout.header_rows - 1)]
    except StopIteration:
        where = f"row {layout.header_row}" if layout.header_row else "a header line"
        raise SourceError(f"{path.name}: no header: the file ends before {where}"
                          f"{f' and {layout.header_rows} header rows' if layout.header_rows > 1 else ''}") from None
    except csv.Error as exc:
        raise SourceError(f"{path.name}: the title or header rows are not valid CSV ({exc})") from None
    if not any(c.strip() for r in header for c in r):
        raise SourceError(f"{path.name}: the header row is blank")
    return header, used["lines"], used["chars"]


def _header_names(rows: list[list[Any]], separator: str, *, carry: bool, path: Path) -> list[str]:
    """Column names from one or more header rows, names of the rows joined with ``separator``.

    A merged top cell has its value in its first column only. With ``carry``, a blank cell in an upper
    row takes the value on its left when both it and its left neighbour have a name below (they are
    under the same merged cell); a cell merged down over the header rows (序号 over two rows) has blanks
    below and stays alone. A column with no name at all gets a provisional one (see _finish_columns)."""
    width = max(len(r) for r in rows)
    grid = [[_cell_text(v) for v in r] + [""] * (width - len(r)) for r in rows]
    n = len(grid)
    if carry and n > 1:
        for u in range(n - 1):
            for c in range(1, width):
                if (not grid[u][c] and grid[u][c - 1] and any(grid[lo][c] for lo in range(u + 1, n))
                        and any(grid[lo][c - 1] for lo in range(u + 1, n))):
                    grid[u][c] = grid[u][c - 1]
    names = []
    for c in range(width):
        parts: list[str] = []
        for r in range(n):
            if grid[r][c] and (not parts or parts[-1] != grid[r][c]):
                parts.append(grid[r][c])
        names.append(separator.join(parts) or f"{_BLANK}{c + 1}")
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise SourceError(f"{path.name}: the header names more than one column {dupes}")
    return names


def _too_long_for_float(value: Any) -> bool:
    """A number cell with more than 15 significant digits (its integer part alone has more than 15)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) >= 1e15


def _cell_text(value: Any) -> str:
    text = value_as_text(value)
    return text.strip() if text else ""


def _finish_columns(table: pa.Table, path: Path) -> pa.Table:
    """A column without a header: dropped when it is empty too, else named ``column_<position>``."""
    names = table.column_names
    if not any(n.startswith(_BLANK) for n in names):
        return table
    keep, out = [], []
    for i, n in enumerate(names):
        if not n.startswith(_BLANK):
            keep.append(i)
            out.append(n)
        elif table.column(i).null_count < table.num_rows:
            name = f"column_{n.removeprefix(_BLANK)}"
            if name in names:
                raise SourceError(f"{path.name}: column {name} has values but no header, and that name is taken")
            keep.append(i)
            out.append(name)
    return table.select(keep).rename_columns(out)


# -- footers ------------------------------------------------------------------------------------
def _first_cells(table: pa.Table) -> pa.Array:
    """Each row's first non-blank cell, trimmed (None for a blank row)."""
    first = pa.nulls(table.num_rows, pa.string())
    for name in table.column_names:
        col = pc.utf8_trim_whitespace(table.column(name))
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        first = pc.coalesce(first, col)
        if first.null_count == 0:
            break
    if isinstance(first, pa.ChunkedArray):
        first = first.combine_chunks()
    return first


def _footer_mask(table: pa.Table, layout: Layout, last: np.ndarray | None = None) -> np.ndarray:
    """Which rows are footer rows. The first column decides for most rows in one pass; only rows whose
    cell there is blank are looked at in the next column, and so on (no per-column copies of the table)."""
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    pattern = layout.footer_pattern()
    if pattern:
        pattern = "^" + _SPACE_RE2 + pattern.removeprefix("^")  # cells are matched untrimmed
        rows = None  # None: all rows
        for name in table.column_names:
            col = table.column(name) if rows is None else table.column(name).take(pa.array(rows))
            hit = pc.indices_nonzero(pc.match_substring_regex(col, pattern)).to_numpy()  # nulls: no hit
            mask[hit if rows is None else rows[hit]] = True
            blank = pc.indices_nonzero(pc.or_kleene(pc.is_null(col), pc.or_(pc.utf8_is_space(col), pc.equal(col, ""))))
            rows = blank.to_numpy() if rows is None else rows[blank.to_numpy()]
            if not len(rows):
                break
    if last is not None:
        mask |= last
    elif layout.footer_last_rows:
        mask[-layout.footer_last_rows:] = True
    return mask
