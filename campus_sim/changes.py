"""About 1% of a simulated campus's source rows changed, as a day at the college changes them: what the
pipeline benchmark's *changed* case (benchmarks/pipeline.py) and the incremental-versus-full test
(tests/test_incremental_pipeline.py) run the hub on after a first build.

* grades (教务 SQLite ``jw_cj``): 0.5% inserted again as 补考 rows and 0.5% corrected (score + 1), all with
  a later ``updated_at``;
* students (学工 JSON lines): every 100th updated (a new mobile number and a later ``updatedAt``);
* one new party export dropped in the inbox: the development register again without 1% of its people;
* with ``dues=n`` (n >= 1) also a correction of the latest year's 党费 export (``党费缴纳_<year>_补报<n>.csv``, the
  n-th correction, after the year's file and the earlier corrections in name order): every 100th payment's
  实缴金额 one yuan lower, other payments each time (the same keys with other values: the correction's
  version wins, a cross-load finding names both files).
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path


def later(stamp: str) -> str:
    """A day after a 'YYYY-MM-DD HH:MM:SS' (or ISO) timestamp, as 'YYYY-MM-DD HH:MM:SS'."""
    return (datetime.fromisoformat(stamp) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")


def change_sources(campus: Path, inbox: Path, seed: int, *, dues: int = 0) -> dict[str, int]:
    """Change the campus in ``campus`` (its files, in place) and drop the new export(s) in ``inbox``
    (``dues``: the number of the dues correction to drop, 0 none). Returns the rows changed per kind."""
    rng = random.Random(seed)
    db = sqlite3.connect(campus / "academic" / "academic.sqlite")
    n, top, last = db.execute("SELECT count(*), max(id), max(updated_at) FROM jw_cj").fetchone()
    k = max(1, n // 200)
    stamp = "9999-12-31 00:00:00" if last is None else later(last)
    db.execute(f"""INSERT INTO jw_cj (id, xh, kch, xnxq, cj, ksxz, updated_at)
                   SELECT {top} + row_number() OVER (ORDER BY id), xh, kch, xnxq, '60', '补考', ?
                   FROM jw_cj WHERE id % 200 = 7 LIMIT ?""", [stamp, k])
    db.execute("UPDATE jw_cj SET cj = CAST(min(100, CAST(cj AS INTEGER) + 1) AS TEXT), updated_at = ? "
               "WHERE id % 200 = 11 AND cj GLOB '[0-9]*'", [stamp])
    grades = db.execute("SELECT count(*) FROM jw_cj WHERE updated_at = ?", [stamp]).fetchone()[0]
    db.commit()
    db.close()

    path = campus / "student" / "students.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    latest = max(json.loads(line)["updatedAt"] for line in lines)
    changed = 0
    for i in range(0, len(lines), 100):
        rec = json.loads(lines[i])
        rec["mobile"] = "139" + f"{rng.randrange(10**8):08d}"
        rec["updatedAt"] = later(latest)
        lines[i] = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        changed += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    exports = campus / "party" / "exports"
    rows = (exports / "发展党员.csv").read_bytes().decode("gbk").splitlines()
    kept = [rows[0]] + [r for j, r in enumerate(rows[1:]) if j % 100 != 50]
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "发展党员_2.csv").write_bytes(("\r\n".join(kept) + "\r\n").encode("gbk"))
    out = {"grades": grades, "students": changed, "party_export_rows": len(kept) - 1}
    if dues:
        out["dues"] = _resend_dues(exports, inbox, dues)
    return out


def _resend_dues(exports: Path, inbox: Path, n: int) -> int:
    """A correction of the latest year's dues export, every 100th payment's 实缴金额 one yuan lower (other
    payments for each further correction); returns the rows changed."""
    source = sorted(exports.glob("党费缴纳_*.csv"))[-1]
    rows = list(csv.reader(io.StringIO(source.read_bytes().decode("gbk"), newline="")))
    paid = rows[0].index("实缴金额")
    changed = 0
    for row in rows[1 + (37 * (n - 1)) % 100::100]:
        try:
            row[paid] = f"{max(Decimal(row[paid].replace(',', '')) - 1, Decimal(0)):.2f}"
        except (ArithmeticError, IndexError):  # a defect the simulator planted: left as it is
            continue
        changed += 1
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    (inbox / f"{source.stem}_补报{n}.csv").write_bytes(out.getvalue().encode("gbk"))
    return changed
