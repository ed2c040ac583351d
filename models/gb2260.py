"""Builds ``models/codesets/area_code.csv`` (GB/T 2260 administrative divisions) from python-stdnum's table.

GB/T 2260 is not published as a machine-readable file. python-stdnum (LGPL, on PyPI) ships the whole
table of 行政区划代码 as ``stdnum/cn/loc.dat``, taken from the Chinese Wikipedia lists
"中华人民共和国行政区划代码 (1区)…(8区)", which follow the Ministry of Civil Affairs' yearly releases and keep
every code that was ever used, with the years each name was in use (``[1983-2004]城北区``). Retired codes
matter: an ID number keeps the area code of the year it was issued (GB 11643), so 110103 (崇文区, merged
into 东城区 in 2010) is still a valid birth area in older numbers.

Run ``python -m models.gb2260`` after upgrading python-stdnum (a dev dependency) to rebuild the CSV; the
CSV is committed, so the hub itself does not need python-stdnum. tests/test_code_sets.py checks that the
committed CSV equals what this module builds from the installed package.

Columns: code (6 digits), name (the latest name), in_use_from / in_use_to (first and last year in use;
empty when the source gives none: in use before the source's records begin, or still in use), level
(province, prefecture, county), province (the province's name), history (every name with its years, as
the source writes it, ';'-separated).
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

from models import codesets_dir

AREA_CODE_CSV = codesets_dir / "area_code.csv"
COLUMNS = ("code", "name", "in_use_from", "in_use_to", "level", "province", "history")
_LINE = re.compile(r'^(?P<indent>\s*)(?P<code>\d+) (?:province|county)="(?P<names>[^"]*)"$')
_NAME = re.compile(r"^(?:\[(?P<lo>\d{4})?-(?P<hi>\d{4})?\])?(?P<name>.+)$")


def stdnum_loc_dat() -> Path:
    """The table inside the installed python-stdnum package."""
    try:
        import stdnum
    except ImportError:
        raise SystemExit("python-stdnum is not installed: pip install -e '.[dev]'") from None
    return Path(stdnum.__file__).parent / "cn" / "loc.dat"


def parse(text: str) -> list[dict[str, str]]:
    """Rows of area_code.csv from the text of stdnum's cn/loc.dat, sorted by code."""
    rows: dict[str, dict[str, str]] = {}
    province_code = province_name = ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"loc.dat line {number}: unexpected {line!r}")
        if not m["indent"]:
            province_code, province_name = m["code"], m["names"]
            if len(province_code) != 2:
                raise ValueError(f"loc.dat line {number}: a province code has 2 digits, not {province_code!r}")
            code, names = province_code + "0000", m["names"]
        else:
            code, names = province_code + m["code"], m["names"]
        spells = []
        for part in re.split(r",(?=\[)", names):
            n = _NAME.match(part)
            spells.append((n["lo"] or "", n["hi"] or "", n["name"]))
        open_start = any(lo == "" for lo, _, _ in spells)
        open_end = any(hi == "" for _, hi, _ in spells)
        level = "province" if code.endswith("0000") else "prefecture" if code.endswith("00") else "county"
        rows[code] = {
            "code": code,
            "name": spells[-1][2],
            "in_use_from": "" if open_start else min(lo for lo, _, _ in spells),
            "in_use_to": "" if open_end else max(hi for _, hi, _ in spells),
            "level": level,
            "province": province_name,
            "history": ";".join(p for p in re.split(r",(?=\[)", names)),
        }
        if len(code) != 6:
            raise ValueError(f"loc.dat line {number}: code {code!r} is not 6 digits")
    return [rows[c] for c in sorted(rows)]


def render(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main() -> None:
    rows = parse(stdnum_loc_dat().read_text(encoding="utf-8"))
    AREA_CODE_CSV.write_text(render(rows), encoding="utf-8")
    print(f"{AREA_CODE_CSV}: {len(rows)} codes", file=sys.stderr)


if __name__ == "__main__":
    main()
