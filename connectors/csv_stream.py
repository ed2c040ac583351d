"""A CSV export read in blocks: memory stays flat whatever the size of the file.

The file is never held whole, neither as bytes nor as text:

1. **Encoding**, decided by decoding the whole file block by block (UTF-8, UTF-8 with BOM, then
   GB18030, a superset of GBK and GB2312), keeping nothing.
2. **A UTF-8 body.** A UTF-8 file is read in place. A GB18030 file is transcoded, block by block, into a
   temporary UTF-8 file (``TMPDIR``), deleted when the read ends. A file that neither encoding decodes
   whole is copied line by line in the encoding most of its lines decode in, leaving out the lines that
   do not decode (each quarantined as ``undecodable_bytes`` with its line number).
3. **The header** (title rows, one or more header rows) is parsed from the first block with Python's
   ``csv``, then **the rest** is read by Arrow's streaming CSV reader (``open_csv``), one block at a
   time, every column as text.
4. **Footer and broken rows** are found batch by batch. Rows among the last ``footer.last_rows`` records
   are held back until the end of the file is known. Their line numbers, and those of rows with the
   wrong number of fields, are worked out at the end by one more pass over the body, in blocks.

What lands is the same as when files were read whole (the tests of tests/test_files_human_exports.py
hold it to that); only memory differs (docs/benchmarks.md).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.base import ExtractStats, Rejected, SourceError

BLOCK = 4 << 20  # bytes read at a time (Arrow's block: one record batch per block)
ENCODINGS = ("utf-8-sig", "gb18030")


def read_csv(path: Path, layout: Any, stats: ExtractStats) -> tuple[list[str], Iterator[pa.Table]]:
    """The header's column names, and the file's rows as a stream of text tables (set-aside rows go to
    ``stats.rejected`` once the stream ends). The stream must be consumed or closed: it owns a temporary
    file for non-UTF-8 input."""
    reader = _CsvReader(path, layout, stats)
    try:
        names = reader.open()
    except BaseException:
        reader.close()
        raise
    return names, reader.tables()


class _CsvReader:
    def __init__(self, path: Path, layout: Any, stats: ExtractStats):
        self.path, self.layout, self.stats = path, layout, stats
        self.body: Path = path
        self.body_start = 0  # bytes of the body before the title (a BOM)
        self.kept: np.ndarray | None = None  # clean-copy line -> file line (0-based), when lines were left out
        self.temp: Path | None = None

    # -- encoding and body ---------------------------------------------------------------------
    def open(self) -> list[str]:
        from connectors.files import _header_names

        enc = _whole_encoding(self.path)
        if enc == "utf-8-sig":
            with self.path.open("rb") as f:
                bom = f.read(3) == codecs.BOM_UTF8
            self.body_start = 3 if bom else 0
            self.stats.encoding = "utf-8-sig" if bom else "utf-8"
        elif enc == "gb18030":
            self.stats.encoding = "gb18030"
            self._transcode()
        else:
            self._clean_copy()
        header, self.lines_used, self.data_start = self._header()
        self.names = _header_names(header, self.layout.separator, carry=True, path=self.path)
        return [n for n in self.names if not n.startswith("\x00")]

    def _temp(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="hub-csv-", suffix=".csv")
        os.close(fd)
        self.temp = Path(name)
        return self.temp

    def _transcode(self) -> None:
        decoder = codecs.getincrementaldecoder("gb18030")()
        with self.path.open("rb") as src, self._temp().open("wb") as out:
            while block := src.read(BLOCK):
                out.write(decoder.decode(block).encode("utf-8"))
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        self.body = self.temp

    def _clean_copy(self) -> None:
        """Neither encoding decodes the whole file: keep the encoding most lines decode in, and reject
        the lines that do not, each with its line number (line breaks are single bytes in all three)."""
        bad: dict[str, list[int]] = {e: [] for e in ENCODINGS}
        lines = 0
        for i, line in enumerate(_lines(self.path)):
            lines = i + 1
            for enc in ENCODINGS:
                try:
                    line.decode(enc)
                except UnicodeDecodeError:
                    bad[enc].append(i)
        enc = min(ENCODINGS, key=lambda e: len(bad[e]))
        header_end = (self.layout.header_row or 1) + self.layout.header_rows - 1
        if bad[enc] and bad[enc][0] < header_end:
            raise SourceError(f"{self.path.name}: line {bad[enc][0] + 1} (title or header) cannot be decoded as "
                              "UTF-8 or GB18030")
        self.stats.encoding = "utf-8" if enc == "utf-8-sig" else enc
        skip = set(bad[enc])
        with self._temp().open("wb") as out:
            for i, line in enumerate(_lines(self.path)):
                if i in skip:
                    self.stats.rejected.append(Rejected(
                        rule="undecodable_bytes",
                        detail=f"{self.path.name} line {i + 1}: bytes not valid {self.stats.encoding}",
                        original={"file": self.path.name, "line": i + 1,
                                  "text": line.decode(enc, errors="replace").rstrip("\r\n")}))
                    continue
                text = line.decode(enc)
                out.write(text.encode("utf-8"))
        self.body = self.temp
        self.kept = np.delete(np.arange(lines, dtype=np.int64), bad[enc])

    # -- header ------------------------------------------------------------------------------------
    def _header(self) -> tuple[list[list[str]], int, int]:
        """The header rows, the lines they (and the title) take, and the byte where the data starts."""
        from connectors.files import _take_header_rows

        size = 1 << 20
        total = self.body.stat().st_size - self.body_start
        while True:
            with self.body.open("rb") as f:
                f.seek(self.body_start)
                raw = f.read(size)
            whole = len(raw) >= total
            text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=whole)
            try:
                header, lines_used, chars_used = _take_header_rows(text, self.layout, self.path)
            except SourceError:
                if whole:
                    raise
                size *= 4
                continue
            if not whole and chars_used >= len(text):  # the header may run on past this block
                size *= 4
                continue
            return header, lines_used, self.body_start + len(text[:chars_used].encode("utf-8"))

    # -- rows --------------------------------------------------------------------------------------
    def tables(self) -> Iterator[pa.Table]:
        try:
            yield from self._tables()
        except pa.ArrowException as exc:
            raise SourceError(f"{self.path.name}: {_first_line(exc)}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None

    def _tables(self) -> Iterator[pa.Table]:
        from connectors.files import _finish_columns, _first_cells, _footer_mask

        layout, path, names = self.layout, self.path, self.names
        invalid: list[tuple[int | None, int, str]] = []
        numbers_invalid: list[int] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            if row.number:
                numbers_invalid.append(row.number)
            return "skip"

        footers: list[tuple[int, str | None, dict]] = []  # record number, first cell, values
        held: list[tuple[pa.Table, np.ndarray]] = []  # rows that may be among the last `last_rows` records
        held_rows = 0
        keep_last = layout.footer_last_rows
        next_number, valid_total = 1, 0
        if self.data_start < self.body.stat().st_size:
            source = pa.OSFile(str(self.body))
            source.seek(self.data_start)
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(use_threads=False, column_names=names, block_size=BLOCK),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
                    null_values=[""], auto_dict_encode=False))
            try:
                for batch in reader:
                    if batch.num_rows == 0:
                        continue
                    valid_total += batch.num_rows
                    numbers = _valid_numbers(next_number, batch.num_rows, numbers_invalid)
                    next_number = int(numbers[-1]) + 1
                    table = _finish_columns(pa.Table.from_batches([batch]), path)
                    if layout.footer_pattern() is not None:
                        mask = _footer_mask(table, layout, np.zeros(table.num_rows, dtype=bool))
                        if mask.any():
                            at = np.flatnonzero(mask)
                            picked = table.take(pa.array(at))
                            for k, (row, first) in enumerate(zip(picked.to_pylist(), _first_cells(picked).to_pylist(),
                                                                 strict=True)):
                                footers.append((int(numbers[at[k]]), first, row))
                            table, numbers = table.filter(pa.array(~mask)), numbers[~mask]
                    if not keep_last:
                        if table.num_rows:
                            yield table
                        continue
                    held.append((table, numbers))
                    held_rows += table.num_rows
                    while held and held_rows - held[0][0].num_rows >= keep_last:
                        out, _ = held.pop(0)
                        held_rows -= out.num_rows
                        if out.num_rows:
                            yield out
            finally:
                source.close()
        records = valid_total + len(invalid)
        last_from = records - keep_last + 1 if keep_last else None
        for table, numbers in held:  # the end is known: the last `last_rows` records are footers
            last = numbers >= last_from
            if last.any():
                picked = table.filter(pa.array(last))
                for n, row in zip(numbers[last], picked.to_pylist(), strict=True):
                    footers.append((int(n), None, row))
                table = table.filter(pa.array(~last))
            if table.num_rows:
                yield table
        self._set_aside(invalid, footers, records, last_from)

    def _set_aside(self, invalid: list[tuple[int | None, int, str]], footers: list[tuple[int, str | None, dict]],
                   records: int, last_from: int | None) -> None:
        """Rows with the wrong number of fields and footer rows, into ``stats.rejected`` with their lines."""
        if not invalid and not footers:
            return
        path, layout = self.path, self.layout
        wanted = sorted({n for n, _, _ in invalid if n} | {n for n, _, _ in footers})
        lines = _record_lines(self.body, self.data_start, wanted, records)

        def file_line(number: int | None) -> int | None:
            if not number or lines is None:
                return None
            at = lines[number] + self.lines_used
            return int(self.kept[at] if self.kept is not None else at) + 1

        footer_re = re.compile(layout.footer_pattern(r"\s*")) if layout.footer_pattern() else None
        for number, actual, raw in invalid:
            line = file_line(number)
            where = f"line {line}" if line else f"record {number} after the header"
            cells = next(csv.reader([raw]), [])
            first = next((c for c in cells if c.strip()), "")
            if (footer_re and footer_re.match(first.strip())) or (last_from and number and number >= last_from):
                self.stats.rejected.append(Rejected(
                    rule="footer_row", detail=f"{path.name} {where}: footer row {first.strip()!r}",
                    original={"file": path.name, "line": line, "text": raw}))
            else:
                self.stats.rejected.append(Rejected(
                    rule="wrong_field_count",
                    detail=f"{path.name} {where}: {actual} field(s), the header has {len(self.names)}",
                    original={"file": path.name, "line": line, "text": raw}))
        for number, first, row in sorted(footers, key=lambda f: f[0]):
            line = file_line(number)
            place = f"line {line}" if line else f"record {number} after the header"
            self.stats.rejected.append(Rejected(
                rule="footer_row", detail=f"{path.name} {place}: footer row "
                                          f"{repr(first) if first else '(one of the last rows)'}",
                original={"file": path.name, "line": line,
                          "values": {c: v for c, v in row.items() if v is not None}}))


def _whole_encoding(path: Path) -> str | None:
    """The first of ENCODINGS that decodes the whole file (read in blocks, nothing kept), else None."""
    for enc in ENCODINGS:
        decoder = codecs.getincrementaldecoder(enc)()
        try:
            with path.open("rb") as f:
                while block := f.read(BLOCK):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
            return enc
        except UnicodeDecodeError:
            continue
    return None


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines, each with its b"\\n" (as bytes.split would cut them), read in blocks."""
    rest = b""
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            data = rest + block
            parts = data.split(b"\n")
            rest = parts.pop()
            for part in parts:
                yield part + b"\n"
    yield rest


def _valid_numbers(start: int, n: int, invalid: list[int]) -> np.ndarray:
    """Record numbers (1-based, blank lines not counted) of the next ``n`` rows Arrow kept, from
    ``start``: the numbers of rows it set aside (``invalid``, ascending) are skipped."""
    lo = bisect.bisect_left(invalid, start)
    k = 0
    while True:
        hi = bisect.bisect_left(invalid, start + n + k)
        if hi - lo == k:
            break
        k = hi - lo
    candidates = np.arange(start, start + n + k, dtype=np.int64)
    return np.setdiff1d(candidates, np.asarray(invalid[lo:hi], dtype=np.int64), assume_unique=True) if k \
        else candidates


def _record_lines(body: Path, start: int, wanted: list[int], records: int) -> dict[int, int] | None:
    """The 0-based line (from ``start``) on which each record in ``wanted`` begins, in one pass over the
    body in blocks. A line break inside quotes continues a record; blank lines are no records (Arrow
    skips them too). None when the count of records disagrees with Arrow's (a stray quote misled us)."""
    out: dict[int, int] = {}
    want = np.asarray(wanted, dtype=np.int64)
    parity, lines_before, found, at_start = 0, 0, 0, True
    rest = b""
    with body.open("rb") as f:
        f.seek(start)
        while True:
            block = f.read(BLOCK)
            eof = not block
            data = rest + block
            if not eof:
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                data, rest = data[:cut + 1], data[cut + 1:]
            if data:
                a = np.frombuffer(data, dtype=np.uint8)
                quoted = np.bitwise_xor.accumulate((a == 34).view(np.uint8)) ^ parity
                breaks = np.flatnonzero(a == 10)
                ends = breaks[quoted[breaks] == 0]
                starts = ends + 1
                if at_start:
                    starts = np.concatenate(([0], starts))
                at_start = bool(len(starts)) and int(starts[-1]) == a.size
                starts = starts[starts < a.size]
                first = a[starts]
                second = a[np.minimum(starts + 1, a.size - 1)]
                blank = (first == 10) | ((first == 13) & (second == 10) & (starts + 1 < a.size)) \
                    | ((first == 13) & (starts + 1 == a.size) & eof)
                starts = starts[~blank]
                numbers = np.arange(found + 1, found + 1 + starts.size, dtype=np.int64)
                hit = np.isin(numbers, want)
                if hit.any():
                    line_of = lines_before + np.searchsorted(breaks, starts[hit])
                    out.update(zip(numbers[hit].tolist(), line_of.tolist(), strict=True))
                found += starts.size
                lines_before += breaks.size
                parity = int(quoted[-1])
            if eof:
                break
    return out if found == records else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
