"""Invariants of the simulated campus generator (``campus_sim.generate``), checked at a small scale."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import hashlib
import io
import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from python_calamine import CalamineWorkbook
from stdnum.cn import ric

from campus_sim.generate import generate

SCALE = 0.05
SEED = 20261
AS_OF = dt.date(2026, 10, 31)
CONTRACT_KINDS = {
    "name_fullwidth",
    "name_spaces",
    "id_lower_x",
    "id_15_digit",
    "id_invalid",
    "duplicate_row",
    "orphan_reference",
    "hr_member_no_party_record",
    "graduated_in_student_branch",
    "retiree_in_inservice_branch",
    "probation_overdue",
    "activist_under_one_year",
    "applicant_under_18",
    "dues_below_rate",
    "branch_under_3_full",
    "full_date_inconsistent",
    "org_term_length",
    "committee_size_invalid",
    "secretary_missing",
    "assessment_missing",
    "organisation_life_gap",
}
EXCEL_EPOCH = dt.date(1899, 12, 30)
FULLWIDTH = re.compile("[\u3000\uff01-\uff5e]")


# ----------------------------------------------------------------------------------------------
# Reading the generated files


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_xlsx(path: Path) -> list[dict]:
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    header = rows[0]
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


def read_gbk_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("gbk"))))


def xdate(value: object) -> dt.date | None:
    """A party XLSX date: date cell, Excel serial number or 'YYYY.MM.DD' text."""
    if value in ("", None):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, float | int):
        return EXCEL_EPOCH + dt.timedelta(days=int(value))
    return dt.datetime.strptime(value, "%Y.%m.%d").date()


def cdate(value: str) -> dt.date | None:
    return dt.datetime.strptime(value, "%Y%m%d").date() if value else None


def plus_months(day: dt.date, months: int) -> dt.date:
    """``months`` later, the day clamped to the end of the month."""
    y, m = divmod(day.month - 1 + months, 12)
    y, m = day.year + y, m + 1
    return dt.date(y, m, min(day.day, calendar.monthrange(y, m)[1]))


def plus_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, month=3, day=1)


class Sim:
    """One generated campus, read back."""

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = root
        self.manifest = manifest
        party = root / "party" / "exports"
        self.hr = read_jsonl(root / "hr" / "staff.jsonl")
        self.students = read_jsonl(root / "student" / "students.jsonl")
        self.orgs = read_xlsx(party / "党组织信息.xlsx")
        self.members = read_xlsx(party / "党员信息.xlsx")
        self.development = read_gbk_csv(party / "发展党员.csv")
        self.dues = [row for p in sorted(party.glob("党费缴纳_*.csv")) for row in read_gbk_csv(p)]
        self.attendance = read_jsonl(root / "activity" / "attendance.jsonl")
        with sqlite3.connect(root / "academic" / "academic.sqlite") as con:
            self.grades = con.execute(
                "SELECT xh, kch, xnxq, cj, ksxz, updated_at FROM jw_cj ORDER BY id"
            ).fetchall()
        self.defects = list(
            csv.DictReader(io.StringIO((root / "truth" / "defects.csv").read_text(encoding="utf-8")))
        )
        self.persons = pq.read_table(root / "truth" / "persons.parquet").to_pylist()
        self.party_truth = pq.read_table(root / "truth" / "party_members.parquet").to_pylist()
        self.hr_by_key = {r["gh"]: r for r in self.hr}
        self.student_by_key = {r["studentNo"]: r for r in self.students}
        self.org_by_code = {r["党组织编码"]: r for r in self.orgs}
        self.person_by_no = {p["staff_no"] or p["student_no"]: p for p in self.persons}

    def defect_keys(self, system: str, entity: str, kind: str) -> set[str]:
        return {
            d["record_key"]
            for d in self.defects
            if (d["system"], d["entity"], d["kind"]) == (system, entity, kind)
        }

    def person_rows(self) -> dict[tuple[str, str], tuple[list[dict], str, str, str]]:
        """Person-bearing files: rows, key field, name field, ID field."""
        return {
            ("hr", "staff"): (self.hr, "gh", "xm", "sfzjh"),
            ("student", "students"): (self.students, "studentNo", "name", "idCard"),
            ("party", "members"): (self.members, "人员编号", "姓名", "公民身份号码"),
            ("party", "development"): (self.development, "人员编号", "姓名", "公民身份号码"),
        }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    root = tmp_path_factory.mktemp("campus")
    return Sim(root, generate(root, scale=SCALE, seed=SEED, as_of=AS_OF))


def file_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------------------------
# Layout, manifest, determinism


def test_layout_and_manifest(sim: Sim) -> None:
    root = sim.root
    expected = [
        "manifest.json",
        "hr/staff.jsonl",
        "student/students.jsonl",
        "academic/academic.sqlite",
        "party/exports/党组织信息.xlsx",
        "party/exports/党员信息.xlsx",
        "party/exports/发展党员.csv",
        "party/exports/组织关系转接.xlsx",
        "activity/meetings.jsonl",
        "activity/attendance.jsonl",
        "learning/courses.jsonl",
        "learning/study_records.jsonl",
        "truth/defects.csv",
    ] + [
        f"truth/{t}.parquet"
        for t in (
            "persons",
            "staff",
            "students",
            "party_orgs",
            "party_members",
            "development_events",
            "dues",
            "meetings",
            "attendance",
            "assessments",
            "transfers",
            "study_records",
            "grades",
        )
    ]
    for rel in expected:
        assert (root / rel).is_file(), rel
    years = {int(p.stem.split("_")[1]) for p in (root / "party" / "exports").glob("党费缴纳_*.csv")}
    assert years == {2023, 2024, 2025, 2026}
    assessed = {int(p.stem.split("_")[1]) for p in (root / "party" / "exports").glob("民主评议_*.xlsx")}
    assert assessed == {2023, 2024, 2025}
    on_disk = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == sim.manifest
    assert (on_disk["seed"], on_disk["scale"], on_disk["as_of"]) == (SEED, SCALE, AS_OF.isoformat())
    assert on_disk["version"]
    digests = file_digests(root)
    del digests["manifest.json"]
    assert {k: v["sha256"] for k, v in on_disk["files"].items()} == digests
    rows = on_disk["rows"]
    assert rows["hr/staff.jsonl"] == len(sim.hr)
    assert rows["academic/academic.sqlite:jw_cj"] == len(sim.grades)
    assert rows["party/exports/党员信息.xlsx"] == len(sim.members)
    assert rows["truth/defects.csv"] == len(sim.defects)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(sim: Sim, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, scale=SCALE, seed=SEED, as_of=AS_OF)
    assert file_digests(again) == file_digests(sim.root)
    other = tmp_path / "other"
    generate(other, scale=SCALE, seed=SEED + 1, as_of=AS_OF)
    first, second = file_digests(sim.root), file_digests(other)
    for rel in (
        "hr/staff.jsonl",
        "student/students.jsonl",
        "academic/academic.sqlite",
        "party/exports/党员信息.xlsx",
        "truth/persons.parquet",
    ):
        assert first[rel] != second[rel], rel
    other_ids = {p["id_number"] for p in pq.read_table(other / "truth" / "persons.parquet").to_pylist()}
    assert len(other_ids & {p["id_number"] for p in sim.persons}) < len(other_ids) / 10


# ----------------------------------------------------------------------------------------------
# Identities


def test_truth_ids_are_valid_guangxi_and_consistent(sim: Sim) -> None:
    assert len({p["id_number"] for p in sim.persons}) == len(sim.persons)
    for p in sim.persons:
        number = p["id_number"]
        assert ric.is_valid(number), number
        assert number.startswith("45") and len(number) == 18
        assert ric.get_birth_date(number) == p["birth_date"]
        assert int(number[16]) % 2 == (1 if p["gender"] == "1" else 0)
        assert re.fullmatch(r"1[3-9]\d{9}", p["phone"])
    assert len({p["phone"] for p in sim.persons}) == len(sim.persons)
    births = [p["birth_date"].year for p in sim.persons if p["student_no"]]
    assert 2003 <= min(births) and max(births) <= 2009
    staff_births = [p["birth_date"].year for p in sim.persons if p["staff_no"]]
    assert 1950 <= min(staff_births) and max(staff_births) <= 2000
    assert any("·" in p["name"] for p in sim.persons) or len(sim.persons) < 2000


def test_party_members_are_hr_or_student_persons_with_same_id(sim: Sim) -> None:
    id_defects = {"id_invalid", "id_15_digit"}
    damaged = {(d["system"], d["record_key"]) for d in sim.defects if d["kind"] in id_defects}
    checked = 0
    for row in sim.members:
        key = row["人员编号"]
        source, system = (
            (sim.hr_by_key.get(key), "hr")
            if key in sim.hr_by_key
            else (sim.student_by_key.get(key), "student")
        )
        assert source is not None, key
        if ("party", key) in damaged or (system, key) in damaged:
            continue
        other = source["sfzjh"] if system == "hr" else source["idCard"]
        assert row["公民身份号码"].upper() == other.upper()
        assert row["联系电话"] == (source["sjhm"] if system == "hr" else source["mobile"])
        checked += 1
    assert checked > len(sim.members) * 0.8


# ----------------------------------------------------------------------------------------------
# Defects: each listed one is present, and nothing of the kind is unlisted


def test_every_contract_defect_kind_occurs(sim: Sim) -> None:
    assert {d["kind"] for d in sim.defects} == CONTRACT_KINDS
    assert sim.manifest["defects"] == dict(Counter(d["kind"] for d in sim.defects))


def test_name_and_id_defects_match_the_files_exactly(sim: Sim) -> None:
    for (system, entity), (rows, key, name, ident) in sim.person_rows().items():
        seen = {r[key]: r for r in rows}
        checks = {
            "name_fullwidth": lambda nm, _: bool(FULLWIDTH.search(nm)),
            "name_spaces": lambda nm, _: " " in nm,
            "id_lower_x": lambda _, number: number.endswith("x"),
            "id_15_digit": lambda _, number: len(number) == 15,
            "id_invalid": lambda _, number: len(number) == 18 and not ric.is_valid(number),
        }
        for kind, check in checks.items():
            found = {k for k, r in seen.items() if check(r[name], r[ident])}
            assert found == sim.defect_keys(system, entity, kind), (system, entity, kind)
        for r in seen.values():
            assert len(r[ident]) in (15, 18) and r[name].strip(" \u3000")
    assert sim.defect_keys("student", "students", "id_lower_x") == {
        r["studentNo"] for r in sim.students if r["idCard"][-1] in "xX"
    }
    assert not any(r["idCard"].endswith("X") for r in sim.students)
    assert all(len(r["idCard"]) == 18 for r in sim.students)


def test_duplicate_rows_match_the_files_exactly(sim: Sim) -> None:
    files = {
        ("hr", "staff"): [(r["gh"], json.dumps(r, ensure_ascii=False)) for r in sim.hr],
        ("student", "students"): [(r["studentNo"], json.dumps(r, ensure_ascii=False)) for r in sim.students],
        ("academic", "grades"): [("|".join((g[0], g[1], g[2], g[4])), repr(g)) for g in sim.grades],
        ("activity", "attendance"): [
            (f"{r['meeting_id']}|{r['person_no']}", json.dumps(r, ensure_ascii=False)) for r in sim.attendance
        ],
        ("party", "dues"): [(f"{r['人员编号']}|{r['缴费月份']}", repr(r)) for r in sim.dues],
        ("party", "members"): [(r["人员编号"], repr(r)) for r in sim.members],
        ("party", "development"): [(r["人员编号"], repr(r)) for r in sim.development],
    }
    for (system, entity), rows in files.items():
        by_key = defaultdict(list)
        for key, text in rows:
            by_key[key].append(text)
        repeated = {k for k, texts in by_key.items() if len(texts) > 1}
        assert all(len(texts) == 2 and texts[0] == texts[1] for k, texts in by_key.items() if k in repeated)
        assert repeated == sim.defect_keys(system, entity, "duplicate_row"), (system, entity)


def test_orphan_references_match_the_files_exactly(sim: Sim) -> None:
    students = set(sim.student_by_key)
    people = students | set(sim.hr_by_key)
    grade_orphans = {"|".join((g[0], g[1], g[2], g[4])) for g in sim.grades if g[0] not in students}
    assert grade_orphans == sim.defect_keys("academic", "grades", "orphan_reference")
    att_orphans = {
        f"{r['meeting_id']}|{r['person_no']}" for r in sim.attendance if r["person_no"] not in people
    }
    assert att_orphans == sim.defect_keys("activity", "attendance", "orphan_reference")
    org_orphans = {r["人员编号"] for r in sim.members if r["党组织编码"] not in sim.org_by_code}
    assert org_orphans == sim.defect_keys("party", "members", "orphan_reference")
    assert {r["党组织编码"] for r in sim.development} <= set(sim.org_by_code)


def test_conflicts_are_real_and_complete(sim: Sim) -> None:
    member_keys = {r["人员编号"] for r in sim.members} | {p["person_no"] for p in sim.party_truth}
    hr_only = {r["gh"] for r in sim.hr if r["zzmm"] == "中共党员" and r["gh"] not in member_keys}
    assert hr_only == sim.defect_keys("hr", "staff", "hr_member_no_party_record")
    for r in sim.hr:
        if r["gh"] in member_keys and r["gh"] in {m["人员编号"] for m in sim.members}:
            assert r["zzmm"] in ("中共党员", "中共预备党员")

    def branch_type(row: dict) -> str | None:
        org = sim.org_by_code.get(row["党组织编码"])
        return org["支部类型"] if org else None

    graduated = {
        r["人员编号"]
        for r in sim.members
        if r["人员编号"] in sim.student_by_key and sim.student_by_key[r["人员编号"]]["status"] == "毕业"
    }
    assert all(
        branch_type(r) == "学生" and r["党籍状态"] == "正常"
        for r in sim.members
        if r["人员编号"] in graduated
    )
    assert graduated == sim.defect_keys("party", "members", "graduated_in_student_branch")

    retirees = {
        r["人员编号"]
        for r in sim.members
        if r["人员编号"] in sim.hr_by_key
        and sim.hr_by_key[r["人员编号"]]["dqzt"] == "01"
        and branch_type(r) in ("教工", "机关")
    }
    assert retirees == sim.defect_keys("party", "members", "retiree_in_inservice_branch")

    def extension(r: dict) -> int:
        return int(r["延长预备期"]) if r["延长预备期"] not in ("", None) else 0

    # overdue: probation (a year, plus a recorded extension) and the three months' grace for approval ended
    overdue = {
        r["人员编号"]
        for r in sim.members
        if r["党员类型"] == "预备党员"
        and plus_months(xdate(r["入党日期"]), 12 + extension(r) + 3) < AS_OF
    }
    assert overdue == sim.defect_keys("party", "members", "probation_overdue")
    assert any(r["党员类型"] == "预备党员" and extension(r) and plus_years(xdate(r["入党日期"]), 1) < AS_OF
               for r in sim.members), "a member within a recorded extension, past the first year"
    converted = [r for r in sim.members if r["转正日期"] != ""]
    assert all(r["党员类型"] == "正式党员" for r in converted)
    off = {r["人员编号"] for r in converted
           if xdate(r["转正日期"]) != plus_months(xdate(r["入党日期"]), 12 + extension(r))
           and xdate(r["转正日期"]) != plus_years(xdate(r["入党日期"]), 1)}
    assert off == sim.defect_keys("party", "members", "full_date_inconsistent") and off
    assert any(extension(r) in (6, 12) for r in converted), "recorded extensions ended in 转正"

    quick = {
        r["人员编号"]
        for r in sim.development
        if r["列为发展对象日期"]
        and cdate(r["列为发展对象日期"]) < plus_years(cdate(r["列为积极分子日期"]), 1)
    }
    assert quick == sim.defect_keys("party", "development", "activist_under_one_year")
    assert all(
        xdate(r["列为发展对象日期"]) >= plus_years(xdate(r["列为积极分子日期"]), 1) for r in sim.members
    )

    birth = {no: p["birth_date"] for no, p in sim.person_by_no.items()}
    young = {
        r["人员编号"]
        for r in sim.development
        if cdate(r["申请入党日期"]) < plus_years(birth[r["人员编号"]], 18)
    }
    assert young == sim.defect_keys("party", "development", "applicant_under_18")
    assert all(xdate(r["申请入党日期"]) >= plus_years(birth[r["人员编号"]], 18) for r in sim.members)
    assert all(0 <= (cdate(r["谈话日期"]) - cdate(r["申请入党日期"])).days <= 31 for r in sim.development)

    full_count = Counter(r["党组织编码"] for r in sim.members if r["党员类型"] == "正式党员")
    small = {
        code
        for code, org in sim.org_by_code.items()
        if org["党组织类别"] == "党支部" and full_count[code] < 3
    }
    assert small == sim.defect_keys("party", "orgs", "branch_under_3_full")
    assert len(small) == 1


def dues_expected(base: float, retired: bool) -> float:
    """The rate band of the 2008 rules (each band includes its upper bound)."""
    if retired:
        rate = 0.005 if base <= 5000 else 0.01
    else:
        rate = 0.005 if base <= 3000 else 0.01 if base <= 5000 else 0.015 if base <= 10000 else 0.02
    return round(base * rate + 1e-9, 2)


def test_dues_below_rate_match_the_files_exactly(sim: Sim) -> None:
    below = set()
    bands = Counter()
    for r in sim.dues:
        if r["缴费基数"] == "":
            assert r["应缴金额"] == r["实缴金额"] == "0.20"
            continue
        retired = sim.hr_by_key[r["人员编号"]]["dqzt"] == "01"
        base, due, paid = float(r["缴费基数"]), float(r["应缴金额"]), float(r["实缴金额"])
        assert abs(due - dues_expected(base, retired)) < 0.005, r
        bands[(retired, due / base > 0.012)] += 1
        if paid < dues_expected(base, retired) - 0.005:
            below.add(f"{r['人员编号']}|{r['缴费月份']}")
    assert below == sim.defect_keys("party", "dues", "dues_below_rate")
    assert len(bands) >= 2
    assert all(
        re.fullmatch(r"\d{8}", r["缴费日期"]) and re.fullmatch(r"\d{4}-\d{2}", r["缴费月份"])
        for r in sim.dues
    )


# ----------------------------------------------------------------------------------------------
# System conventions


def test_hr_and_student_conventions(sim: Sim) -> None:
    for r in sim.hr:
        assert all(v is None or isinstance(v, str) for v in r.values())
        assert re.fullmatch(r"\d{8}", r["gh"]) and r["xbm"] in ("1", "2")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["csrq"]) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["rzrq"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00", r["updated_at"])
        assert r["mz"].endswith("族") and r["dqzt"] in ("11", "12", "14", "01")
        assert (r["zc"] is None) == (r["zcdm"] is None)
    assert Counter(r["dqzt"] for r in sim.hr)["01"] > 0
    for r in sim.students:
        assert re.fullmatch(r"\d{12}", r["studentNo"]) and r["gender"] in ("男", "女")
        assert re.fullmatch(r"\d{4}/[1-9]\d?/[1-9]\d?", r["birthDate"])
        assert r["politicalStatus"] in ("ZGDY", "YBDY", "GQTY", "QZ") and not r["nation"].endswith("族")
        assert (r["graduateDate"] is not None) == (r["status"] == "毕业")
        assert r["counselorNo"] in sim.hr_by_key
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", r["updatedAt"])
    assert {r["grade"] for r in sim.students} == {"2023", "2024", "2025", "2026"}
    assert {r["status"] for r in sim.students if r["grade"] == "2023"} <= {"毕业", "退学"}


def test_academic_database(sim: Sim) -> None:
    with sqlite3.connect(sim.root / "academic" / "academic.sqlite") as con:
        kc = [c[1] for c in con.execute("PRAGMA table_info(jw_kc)")]
        cj = [c[1] for c in con.execute("PRAGMA table_info(jw_cj)")]
        indexed = [row for row in con.execute("PRAGMA index_list(jw_cj)")]
        columns = {con.execute(f"PRAGMA index_info({row[1]})").fetchone()[2] for row in indexed}
        course_codes = {row[0] for row in con.execute("SELECT kch FROM jw_kc")}
    assert kc == ["kch", "kcmc", "xf", "kclb", "kkdwh"]
    assert cj == ["id", "xh", "kch", "xnxq", "cj", "ksxz", "updated_at"]
    assert "updated_at" in columns
    words = {"优秀", "良好", "中等", "及格", "不及格"}
    for _, kch, xnxq, score, kind, updated in sim.grades:
        assert kch in course_codes and re.fullmatch(r"(\d{4})-(\d{4})-[12]", xnxq)
        assert score in words or re.fullmatch(r"\d{1,3}(\.5)?", score)
        assert kind in ("正常考试", "补考", "重修")
        assert updated <= f"{AS_OF.isoformat()} 23:59:59"
    assert {g[4] for g in sim.grades} == {"正常考试", "补考", "重修"}


def test_party_exports_conventions(sim: Sim) -> None:
    exports = sim.root / "party" / "exports"
    for path in exports.glob("*.csv"):
        raw = path.read_bytes()
        raw.decode("gbk")
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    kinds = Counter(
        type(v).__name__ for r in sim.members for k, v in r.items() if k.endswith("日期") and v != ""
    )
    assert kinds["date"] > 0 and kinds["float"] > 0 and kinds["str"] > 0
    for r in sim.members:
        assert r["性别"] in ("男", "女") and r["民族"].endswith("族")
        assert r["人员类别"] in ("在职教职工", "学生", "离退休人员") and r["党籍状态"] in ("正常", "停止党籍")
        assert (r["党员类型"] == "正式党员") == (r["转正日期"] != "")
    for r in sim.development:
        assert r["发展阶段"] in ("入党申请人", "入党积极分子", "发展对象")
        assert all(re.fullmatch(r"\d{8}", r[k]) or r[k] == "" for k in r if k.endswith("日期"))
    kinds = {r["党组织类别"] for r in sim.orgs}
    assert kinds == {"党委", "党总支", "党支部", "党小组"}
    assert {r["支部类型"] for r in sim.orgs if r["党组织类别"] == "党支部"} == {
        "教工",
        "学生",
        "离退休",
        "机关",
    }
    assert all(r["上级党组织编码"] in sim.org_by_code for r in sim.orgs if r["党组织类别"] != "党委")
    full = Counter(r["党组织编码"] for r in sim.members if r["党员类型"] == "正式党员")
    branches = [c for c, r in sim.org_by_code.items() if r["党组织类别"] == "党支部"]
    assert sum(full[c] >= 3 for c in branches) == len(branches) - 1
    for path in exports.glob("民主评议_*.xlsx"):
        rows = read_xlsx(path)
        by_org = defaultdict(Counter)
        for r in rows:
            by_org[r["党组织编码"]][r["评议等次"]] += 1
        assert all(c["优秀"] <= sum(c.values()) / 3 for c in by_org.values())


def test_activity_and_learning_conventions(sim: Sim) -> None:
    meetings = read_jsonl(sim.root / "activity" / "meetings.jsonl")
    iso = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00"
    types = Counter(m["type"] for m in meetings)
    assert set(types) == {"支部党员大会", "支委会", "党小组会", "党课", "主题党日", "组织生活会"}
    for m in meetings:
        assert (
            re.fullmatch(iso, m["start_time"])
            and re.fullmatch(iso, m["end_time"])
            and m["start_time"] < m["end_time"]
        )
        assert (m["lecturer"] is not None) == (m["type"] == "党课")
        assert m["org_code"] in sim.org_by_code
    ids = {m["meeting_id"] for m in meetings}
    for a in sim.attendance:
        assert a["meeting_id"] in ids and a["status"] in ("出席", "请假", "缺席")
        assert (a["checkin_time"] is not None) == (a["status"] == "出席")
    courses = read_jsonl(sim.root / "learning" / "courses.jsonl")
    assert {c["kind"] for c in courses} == {"在线课程", "微党课", "网络讲座"}
    course_ids = {c["course_id"] for c in courses}
    limit = int(
        dt.datetime(
            AS_OF.year, AS_OF.month, AS_OF.day, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=8))
        ).timestamp()
        * 1000
    )
    for r in read_jsonl(sim.root / "learning" / "study_records.jsonl"):
        assert r["course_id"] in course_ids and r["user_no"] in sim.person_by_no
        assert isinstance(r["started_at"], int) and r["started_at"] <= r["last_active_at"] <= limit
        assert 0 <= r["progress"] <= 100 and r["completed"] == (r["progress"] == 100)
        assert r["quiz_score"] is None or 0 <= r["quiz_score"] <= 100


def test_branches_hold_their_meetings(sim: Sim) -> None:
    meetings = read_jsonl(sim.root / "activity" / "meetings.jsonl")
    months = {(m["org_code"], m["type"], m["start_time"][:7]) for m in meetings}
    branches = [c for c, r in sim.org_by_code.items() if r["党组织类别"] == "党支部"]
    window = 38  # September 2023 to October 2026
    themed = Counter(org for org, kind, _ in months if kind == "主题党日")
    compliant = sum(themed[b] == window for b in branches)
    assert compliant >= len(branches) / 2
    assert all(themed[b] >= window * 0.5 for b in branches)


# ----------------------------------------------------------------------------------------------
# Population


def check_population(manifest: dict, scale: float, tolerance: float) -> None:
    pop = manifest["population"]
    expected = {
        ("students_current",): 15000,
        ("students_graduated_cohort",): 5000,
        ("staff_in_post",): 720,
        ("staff_retired",): 180,
        ("members_by_category", "在职教职工"): 460,
        ("members_by_category", "离退休人员"): 140,
        ("members_by_category", "学生"): 1200,
        ("pipeline_by_stage", "入党申请人"): 1500,
        ("pipeline_by_stage", "入党积极分子"): 600,
        ("pipeline_by_stage", "发展对象"): 200,
    }
    for path, base in expected.items():
        value = pop
        for part in path:
            value = value[part]
        assert abs(value - base * scale) <= tolerance * base * scale + 3, (path, value, base * scale)


def test_population_proportions_small_scale(sim: Sim) -> None:
    check_population(sim.manifest, SCALE, 0.15)
    pop = sim.manifest["population"]
    assert pop["orgs_by_kind"]["党委"] == 1 and pop["orgs_by_kind"]["党总支"] == 3
    assert set(pop["branches_by_type"]) == {"教工", "学生", "离退休", "机关"}


@pytest.mark.slow
def test_population_at_scale_one(tmp_path: Path) -> None:
    manifest = generate(tmp_path, scale=1.0, seed=SEED, as_of=AS_OF)
    check_population(manifest, 1.0, 0.05)
    pop = manifest["population"]
    assert pop["schools"] == 12 and pop["orgs_by_kind"]["党总支"] == 14
    assert 55 <= pop["orgs_by_kind"]["党支部"] <= 65
    assert 750_000 <= manifest["rows"]["academic/academic.sqlite:jw_cj"] <= 1_050_000


def _milestones_after(truth: list[dict], as_of: dt.date) -> list[tuple[str, str, dt.date]]:
    cols = ("apply_date", "talk_date", "activist_date", "candidate_date", "admit_date", "full_date", "out_date")
    return [(r["person_no"], c, r[c]) for r in truth for c in cols if r[c] is not None and r[c] > as_of]


def test_no_party_milestone_is_after_as_of(sim: Sim) -> None:
    """The truth holds no date in the future: a conflict is wrong in the one way it is logged for."""
    as_of = dt.date.fromisoformat(sim.manifest["as_of"])
    assert _milestones_after(sim.party_truth, as_of) == []
    short = sim.defect_keys("party", "development", "activist_under_one_year")
    by_no = {r["person_no"]: r for r in sim.party_truth}
    for key in short:
        r = by_no[key]
        assert r["apply_date"] <= r["activist_date"] <= r["candidate_date"] <= as_of
        assert r["candidate_date"] < plus_years(r["activist_date"], 1)


@pytest.mark.slow
def test_no_party_milestone_is_after_as_of_in_the_demo_campus(tmp_path: Path) -> None:
    """The scale-1 demo campus (seed 20261) once had three staff 发展对象 dated a year ahead: hired too
    recently for the steps to fit before as_of, and three activists named 发展对象 a short gap later."""
    manifest = generate(tmp_path, scale=1.0, seed=20261)
    truth = pq.read_table(tmp_path / "truth" / "party_members.parquet").to_pylist()
    assert _milestones_after(truth, dt.date.fromisoformat(manifest["as_of"])) == []
