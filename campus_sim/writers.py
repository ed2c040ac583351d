"""Byte-deterministic file writers: JSON Lines, CSV (GBK), XLSX, Parquet, and file digests.

JSON Lines and CSV lines are assembled column-wise with Arrow compute kernels, so no Python loop runs
over rows. XLSX files are re-packed after openpyxl saves them: sorted entries, fixed timestamps and a
fixed document date, so the same content always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from campus_sim.fmt import dotted_date

Column = pa.Array | np.ndarray


CHUNK_ROWS = 200_000


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _arrow(values: Column) -> pa.Array:
    """An Arrow array (strings as ``large_string``, so that no column is ever split in chunks)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_string()) if pa.types.is_string(values.type) else values
    values = np.asarray(values)
    if values.dtype.kind == "U":
        return pa.array(values, type=pa.large_string())
    return pa.array(values)


def _json_values(values: Column) -> pa.Array:
    """Each value as a JSON literal (strings quoted and escaped, missing as ``null``)."""
    arr = _arrow(values)
    if pa.types.is_large_string(arr.type):
        text = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
        text = pc.binary_join_element_wise(_lit('"'), text, _lit('"'), _lit(""))
    elif pa.types.is_boolean(arr.type):
        text = pc.if_else(arr, "true", "false")
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        text = pc.cast(arr, pa.large_string())
    else:
        raise TypeError(f"no JSON form for {arr.type}")
    return pc.fill_null(text.cast(pa.large_string()), "null")


def _bytes_of(lines: pa.Array) -> bytes:
    """The concatenated UTF-8 bytes of a ``large_string`` array without nulls."""
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return data.to_pybytes()[bounds[0] : bounds[-1]]


def _chunks(columns: Mapping[str, Column]) -> Iterable[dict[str, Column]]:
    """The columns in slices of at most CHUNK_ROWS rows (at least one slice)."""
    n = len(next(iter(columns.values())))
    for start in range(0, max(n, 1), CHUNK_ROWS):
        yield {k: v[start : start + CHUNK_ROWS] for k, v in columns.items()}


def jsonl_bytes(columns: Mapping[str, Column]) -> bytes:
    """JSON Lines (``ensure_ascii=False`` style, no spaces) for the given columns, in order."""
    if not len(next(iter(columns.values()))):
        return b""
    parts: list[object] = []
    for i, (key, values) in enumerate(columns.items()):
        parts.append(_lit(("{" if i == 0 else ",") + f'"{key}":'))
        parts.append(_json_values(values))
    parts.append(_lit("}\n"))
    return _bytes_of(pc.binary_join_element_wise(*parts, _lit("")))


def write_jsonl(path: Path, columns: Mapping[str, Column]) -> None:
    """Write rows to a JSON Lines file, a slice at a time."""
    with open(path, "wb") as fh:
        for part in _chunks(columns):
            fh.write(jsonl_bytes(part))


def _csv_field(values: Column) -> pa.Array:
    arr = _arrow(values)
    if not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.large_string())
    arr = pc.fill_null(arr, "")
    needs_quotes = pc.match_substring_regex(arr, '[",\r\n]')
    quoted = pc.binary_join_element_wise(_lit('"'), pc.replace_substring(arr, '"', '""'), _lit('"'), _lit(""))
    return pc.if_else(needs_quotes, quoted, arr)


def write_csv(path: Path, columns: Mapping[str, Column], encoding: str = "gbk") -> None:
    """CSV with a header row, CRLF line ends, minimal quoting, in ``encoding``."""
    with open(path, "wb") as fh:
        fh.write((",".join(columns.keys()) + "\r\n").encode(encoding))
        for part in _chunks(columns):
            if not len(next(iter(part.values()))):
                continue
            fields: list[object] = []
            for i, values in enumerate(part.values()):
                if i:
                    fields.append(_lit(","))
                fields.append(_csv_field(values))
            fields.append(_lit("\r\n"))
            fh.write(
                _bytes_of(pc.binary_join_element_wise(*fields, _lit(""))).decode("utf-8").encode(encoding)
            )


def write_parquet(path: Path, columns: Mapping[str, Column] | pa.Table) -> None:
    """A Parquet file (zstd) from columns or a table."""
    table = columns if isinstance(columns, pa.Table) else pa.table({k: _arrow(v) for k, v in columns.items()})
    pq.write_table(table, path, compression="zstd")


def write_xlsx(
    path: Path, sheet: str, header: Sequence[str], rows: Iterable[Sequence[object]], stamp: dt.datetime
) -> None:
    """One-sheet XLSX. ``datetime.date`` values become date cells; the file is made byte-stable."""
    wb = openpyxl.Workbook(write_only=True)
    wb.properties.creator = "全国党员管理信息系统"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    ws = wb.create_sheet(sheet)
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    normalise_zip(path, stamp)


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def normalise_zip(path: Path, stamp: dt.datetime) -> None:
    """Rewrite a zip with sorted entries, fixed entry times and a fixed ``dcterms:modified``."""
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    if "docProps/core.xml" in entries:
        entries["docProps/core.xml"] = _MODIFIED.sub(
            rb"\g<1>" + iso + rb"\g<2>", entries["docProps/core.xml"]
        )
    when = (stamp.year, stamp.month, stamp.day, 0, 0, 0)
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0o600 << 16
            zf.writestr(info, entries[name])


def xlsx_dates(rng: np.random.Generator, days: np.ndarray) -> list[object]:
    """Party-system date cells: a mix of date cells, Excel serial numbers and ``YYYY.MM.DD`` text."""
    days = np.asarray(days, dtype="datetime64[D]")
    kind = rng.choice(3, size=days.size, p=[0.6, 0.2, 0.2])
    serial = (days - np.datetime64("1899-12-30")).astype(np.int64)
    text = dotted_date(days)
    out: list[object] = []
    for k, day, s, t in zip(kind.tolist(), days.tolist(), serial.tolist(), text.tolist(), strict=True):
        if day is None:
            out.append(None)
        elif k == 0:
            out.append(day)
        elif k == 1:
            out.append(s)
        else:
            out.append(t)
    return out


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
