"""Vectorised formatting of dates, times and money in each campus system's convention.

Dates are ``datetime64[D]`` arrays and times ``datetime64[s]`` arrays in Beijing local time (UTC+8).
Missing values (NaT) format as empty strings; :func:`nullable` turns them into JSON/Arrow nulls.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from campus_sim.people import date_parts

BEIJING = np.timedelta64(8, "h")


def join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation of string arrays and constants."""
    out = np.asarray(parts[0])
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return out


def numbered(prefix: str, count: int, width: int, start: int = 1) -> np.ndarray:
    """Identifiers ``prefix`` + zero-padded sequence numbers (``MT0000001``...)."""
    return join(prefix, np.strings.zfill(np.arange(start, start + count).astype(str), width))


def _blank_nat(values: np.ndarray, text: np.ndarray) -> np.ndarray:
    return np.where(np.isnat(values), "", text)


def iso_date(days: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` (HR)."""
    days = np.asarray(days, dtype="datetime64[D]")
    return _blank_nat(days, np.datetime_as_string(days, unit="D"))


def compact_date(days: np.ndarray) -> np.ndarray:
    """``YYYYMMDD`` (party CSV)."""
    return np.strings.replace(iso_date(days), "-", "")


def dotted_date(days: np.ndarray) -> np.ndarray:
    """``YYYY.MM.DD`` (party XLSX text dates)."""
    return np.strings.replace(iso_date(days), "-", ".")


def slash_date(days: np.ndarray) -> np.ndarray:
    """``YYYY/M/D`` without zero padding (student system)."""
    days = np.asarray(days, dtype="datetime64[D]")
    safe = np.where(np.isnat(days), np.datetime64("2000-01-01"), days)
    year, month, day = date_parts(safe)
    return _blank_nat(days, join(year.astype(str), "/", month.astype(str), "/", day.astype(str)))


def iso_time(times: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DDTHH:MM:SS+08:00`` (HR, activity app)."""
    times = np.asarray(times, dtype="datetime64[s]")
    return _blank_nat(times, np.strings.add(np.datetime_as_string(times, unit="s"), "+08:00"))


def space_time(times: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS`` (student system, academic database)."""
    times = np.asarray(times, dtype="datetime64[s]")
    return _blank_nat(times, np.strings.replace(np.datetime_as_string(times, unit="s"), "T", " "))


def epoch_ms(times: np.ndarray) -> np.ndarray:
    """Epoch milliseconds of Beijing local times (learning platform)."""
    return (np.asarray(times, dtype="datetime64[s]") - BEIJING).astype("datetime64[ms]").astype(np.int64)


def money(cents: np.ndarray) -> np.ndarray:
    """Yuan with two decimals from integer cents (``12.50``)."""
    cents = np.asarray(cents, dtype=np.int64)
    return join((cents // 100).astype(str), ".", np.strings.zfill((cents % 100).astype(str), 2))


def nullable(text: np.ndarray) -> pa.Array:
    """Arrow string array with nulls where the text is empty."""
    text = np.asarray(text, dtype=str)
    return pa.array(text, type=pa.string(), mask=text == "")


def local_timestamps(times: np.ndarray) -> pa.Array:
    """Arrow timestamps with the +08:00 offset, for the Parquet ground truth."""
    times = np.asarray(times, dtype="datetime64[s]")
    utc = pa.array(times - BEIJING, type=pa.timestamp("s"), mask=np.isnat(times))
    return utc.cast(pa.timestamp("s", tz="+08:00"))
