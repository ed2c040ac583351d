"""The documentation's queries, run: every SQL example of docs/analyst-guide.md against a warehouse built from
the small simulated campus (real connectors and servers, every model and mart) returns rows; and every figure
of docs/party-office-figures.md equals the simulator's ground truth — its query on the small campus against
that campus's truth, and the numbers printed on the page (the scale-1 demo's) against the scale-1 campus's
truth, recomputed here from truth/*.parquet without the hub's models.

Run as a script to print the page's tables from a warehouse (the demo's snapshot):
    .venv/bin/python tests/test_docs_figures.py var/snapshot/warehouse.duckdb
"""

from __future__ import annotations

import calendar
import json
import re
import shutil
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "analyst-guide.md"
FIGURES = ROOT / "docs" / "party-office-figures.md"
DEMO_SEED = 20261

CATEGORY_ORDER = ("在职教职工", "学生", "离退休人员")
ORG_ORDER = ("党委", "党总支", "党支部", "党小组")
BRANCH_KINDS = ("教工", "学生", "机关", "离退休")
PIPELINE = ("入党申请人", "入党积极分子", "发展对象", "预备党员")


# ---------------------------------------------------------------------------------------------- documents


def guide_examples() -> list[tuple[str, str]]:
    """(name, SQL) of every example in the analyst guide: each ```sql block and each `hub sql "..."` line."""
    text = GUIDE.read_text(encoding="utf-8")
    out = []
    for i, m in enumerate(re.finditer(r"```sql\n(.*?)```", text, flags=re.S)):
        out.append((f"sql{i + 1}", m.group(1).strip()))
    for i, m in enumerate(re.finditer(r'hub sql "(.*?)"', text)):
        out.append((f"hub_sql{i + 1}", m.group(1)))
    return out


def figures() -> list[dict]:
    """Each figure of the page: its id, query and printed table (header, rows) as written."""
    text = FIGURES.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"<!-- figure: ([a-z_]+) -->\n(.*?)(?=<!-- figure: |\Z)", text, flags=re.S):
        body = m.group(2)
        sql = re.search(r"```sql\n(.*?)```", body, flags=re.S)
        table = [line for line in body.splitlines() if line.startswith("|")]
        cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
        out.append({"id": m.group(1), "sql": sql.group(1).strip() if sql else "",
                    "header": cells[0] if cells else [], "rows": [tuple(r) for r in cells[2:]]})
    return out


def render(rows: list[tuple]) -> list[tuple[str, ...]]:
    return [tuple("" if v is None else str(v) for v in r) for r in rows]


# ---------------------------------------------------------------------------------------------- ground truth


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y, m = d.year + y, m + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _month(d: date) -> int:
    return d.year * 12 + d.month - 1


class Truth:
    """The simulator's truth of one campus, recomputed into each figure's rows."""

    def __init__(self, campus: Path):
        self.as_of = date.fromisoformat(json.loads((campus / "manifest.json").read_text(encoding="utf-8"))["as_of"])
        self.con = duckdb.connect()
        for path in (campus / "truth").glob("*.parquet"):
            if path.stem != "grades":
                self.con.execute(f"CREATE VIEW {path.stem} AS SELECT * FROM read_parquet('{path}')")
        self.con.execute(f"CREATE VIEW defects AS SELECT * FROM read_csv('{campus / 'truth' / 'defects.csv'}', "
                         "all_varchar = true)")

    def close(self) -> None:
        self.con.close()

    def members_by_category_and_stage(self) -> list[tuple]:
        counts = Counter(self.con.execute("SELECT category, stage FROM party_members WHERE status = '正常' "
                                          "AND stage IN ('正式党员', '预备党员')").fetchall())
        rows = []
        for cat in CATEGORY_ORDER:
            full, prob = counts[(cat, "正式党员")], counts[(cat, "预备党员")]
            rows.append((cat, full, prob, full + prob))
        full, prob = sum(r[1] for r in rows), sum(r[2] for r in rows)
        return render([*rows, ("全校（党委）", full, prob, full + prob)])

    def organisations_by_type(self) -> list[tuple]:
        counts = Counter(k for (k,) in self.con.execute("SELECT kind FROM party_orgs").fetchall())
        return render([(k, counts[k]) for k in ORG_ORDER])

    def branches_by_kind(self) -> list[tuple]:
        counts = Counter(k for (k,) in self.con.execute(
            "SELECT branch_type FROM party_orgs WHERE kind = '党支部'").fetchall())
        return render([(k, counts[k]) for k in sorted(counts, key=BRANCH_KINDS.index)])

    def group_members(self) -> list[tuple]:
        n_groups, members, smallest, largest = self.con.execute("""
            SELECT count(*), sum(n), min(n), max(n) FROM (
                SELECT o.org_code, count(m.person_no) AS n FROM party_orgs o
                LEFT JOIN party_members m ON m.group_code = o.org_code AND m.status = '正常'
                     AND m.stage IN ('正式党员', '预备党员')
                WHERE o.kind = '党小组' GROUP BY ALL)""").fetchone()
        return render([(n_groups, members, smallest, largest)])

    def pipeline_stages(self) -> list[tuple]:
        counts = Counter(s for (s,) in self.con.execute(
            "SELECT stage FROM party_members WHERE status = '正常'").fetchall())
        return render([(s, counts[s]) for s in PIPELINE])

    def overdue_steps(self) -> list[tuple]:
        people = self.con.execute("""
            SELECT stage, apply_date, talk_date, activist_date, candidate_date, admit_date,
                   coalesce(probation_extension_months, 0)
            FROM party_members WHERE status = '正常' AND stage IN ('入党申请人', '入党积极分子', '发展对象', '预备党员')
        """).fetchall()
        talk = sum(1 for s, applied, talked, *_ in people
                   if s == "入党申请人" and talked is None and self.as_of > _add_months(applied, 1))
        # 转正: a year, plus a recorded extension, plus the three months the higher committee has
        probation = sum(1 for s, *_, admitted, ext in people
                        if s == "预备党员" and self.as_of > _add_months(admitted, 12 + ext + 3))
        short = sum(1 for _, _, _, activist, candidate, _, _ in people
                    if candidate is not None and activist is not None and candidate < _add_months(activist, 12))
        return render([(talk, probation, short)])

    def dues_arrears(self) -> list[tuple]:
        # members in good standing who stopped paying (graduates still on the books): unpaid from the month
        # after they left campus to the as-of month; everyone else pays every month
        gone = [g for (g,) in self.con.execute(
            "SELECT left_campus_date FROM party_members WHERE status = '正常' AND stage IN ('正式党员', '预备党员') "
            "AND left_campus_date IS NOT NULL").fetchall()]
        unpaid = [_month(self.as_of) - _month(g) for g in gone]
        behind = [n for n in unpaid if n > 0]
        below = self.con.execute("SELECT count(*) FROM defects WHERE kind = 'dues_below_rate'").fetchone()[0]
        return render([(len(behind), sum(behind), sum(1 for n in behind if n >= 6), below)])


TRUTH_OF = {
    "members_by_category_and_stage": Truth.members_by_category_and_stage,
    "organisations_by_type": Truth.organisations_by_type,
    "branches_by_kind": Truth.branches_by_kind,
    "group_members": Truth.group_members,
    "pipeline_stages": Truth.pipeline_stages,
    "overdue_steps": Truth.overdue_steps,
    "dues_arrears": Truth.dues_arrears,
}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(campus_warehouse) -> Path:
    """The small campus's warehouse with every model and mart, built through the asset graph as the demo
    builds it (tests/conftest.py; closed, on disk, read-only)."""
    return campus_warehouse


@pytest.fixture(scope="module")
def wh(demo):
    con = duckdb.connect(str(demo), read_only=True)
    yield con
    con.close()


# ---------------------------------------------------------------------------------------------- the guide


@pytest.mark.parametrize(("name", "sql"), guide_examples(), ids=[n for n, _ in guide_examples()])
def test_every_analyst_guide_example_runs_and_returns_rows(demo, tmp_path, name, sql):
    # the guide attaches the snapshot: attach a copy of the demo warehouse at that path instead
    snapshot = tmp_path / "snapshot.duckdb"
    shutil.copyfile(demo, snapshot)
    sql = sql.replace("var/snapshot/warehouse.duckdb", str(snapshot))
    con = duckdb.connect() if "ATTACH" in sql else duckdb.connect(str(demo), read_only=True)
    try:
        statements = [s.strip() for s in sql.split(";") if s.strip()]
        for statement in statements[:-1]:
            con.execute(statement)
        rows = con.execute(statements[-1]).fetchall()
    finally:
        con.close()
    assert rows, f"{name} returns no rows on the demo campus:\n{sql}"


def test_the_guide_has_its_examples():
    names = [n for n, _ in guide_examples()]
    assert len(names) >= 15 and "hub_sql1" in names


# ---------------------------------------------------------------------------------------------- the figures


def test_the_figures_page_lists_each_headline_figure_with_its_query():
    assert [f["id"] for f in figures()] == list(TRUTH_OF)
    for f in figures():
        assert f["sql"].startswith("SELECT") and f["header"] and f["rows"], f"{f['id']}: a query and its table"


@pytest.mark.parametrize("figure", [f["id"] for f in figures()])
def test_each_figure_query_gives_the_truth_on_the_test_campus(wh, campus_dir, figure):
    f = next(f for f in figures() if f["id"] == figure)
    truth = Truth(campus_dir)
    try:
        expected = TRUTH_OF[figure](truth)
    finally:
        truth.close()
    got = render(wh.execute(f["sql"]).fetchall())
    assert got == expected


@pytest.fixture(scope="module")
def scale_one(tmp_path_factory) -> Truth:
    """The scale-1 demo campus (seed 20261), simulated again: its truth is what the page must print."""
    from campus_sim.generate import generate

    out = tmp_path_factory.mktemp("scale1")
    generate(out, scale=1.0, seed=DEMO_SEED)
    truth = Truth(out)
    yield truth
    truth.close()


@pytest.mark.slow
@pytest.mark.parametrize("figure", [f["id"] for f in figures()])
def test_each_printed_figure_is_the_scale_one_truth(scale_one, figure):
    f = next(f for f in figures() if f["id"] == figure)
    assert f["rows"] == TRUTH_OF[figure](scale_one)
    assert all(len(f["header"]) == len(r) for r in f["rows"]), "the page's table has the query's columns"


# ---------------------------------------------------------------------------------------------- script


def main(path: str) -> None:
    """Print each figure's table from a warehouse (e.g. the demo's snapshot), for the page."""
    con = duckdb.connect(path, read_only=True)
    try:
        for f in figures():
            cur = con.execute(f["sql"])
            header = [d[0] for d in cur.description]
            print(f"<!-- figure: {f['id']} -->")
            print("| " + " | ".join(header) + " |")
            print("|" + "|".join("---" for _ in header) + "|")
            for row in render(cur.fetchall()):
                print("| " + " | ".join(row) + " |")
            print()
    finally:
        con.close()


if __name__ == "__main__":
    main(sys.argv[1])
