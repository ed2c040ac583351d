"""Values wrong on their face, pushed through the real intake paths (XLSX and GBK CSV in an inbox, REST on a
loopback server, a SQL database), staged in a real DuckDB: each is quarantined or flagged with a reason that
names its column and value, the good rows of the same file or page arrive, and nothing lands silently
changed.

``CASES`` is the corpus: one bad value per case, each on its own record key, so that one load per entity
carries every case of that entity next to the good rows (one load and one staging build per entity, not per
case).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest
from foreign_rest import Reply, Vendor

from connectors import load_entity, load_sources
from hub.neutralise import neutralise, neutralise_batch
from models.build import build_staging, load_code_sets
from models.plausibility import PlausibilityConfigError, load_checks

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    kind: str                 # what is wrong, in words
    intake: str               # xlsx | csv | rest | sql: the path it comes in by
    entity: str               # source.entity
    field: str                # the source's field that carries the bad value
    value: Any                # as the source sends it (an XLSX number cell is a Python number)
    outcome: str              # quarantine | flag | accepted
    rule: str | None = None   # quarantine/flag: the rule
    staged: tuple[str, Any] | None = None  # flag/accepted: (staged column, the value it must hold)
    stage: str = "staging"    # where a quarantine happens: raw (at the load) or staging


CASES = [
    Case("impossible date 2024-02-30", "xlsx", "party.members", "入党日期", "2024-02-30", "quarantine", "invalid_date"),
    Case("zero date 0000-00-00", "xlsx", "party.members", "转正日期", "0000-00-00", "quarantine", "invalid_date"),
    Case("impossible compact date 20240230", "xlsx", "party.members", "出生日期", "20240230", "quarantine",
         "invalid_date"),
    Case("date no parser knows", "xlsx", "party.members", "申请入党日期", "去年三月", "quarantine", "invalid_date"),
    Case("Chinese date 2024年3月5日", "xlsx", "party.members", "入党日期", "2024年3月5日", "accepted",
         staged=("probationary_on", dt.date(2024, 3, 5))),
    Case("入党日期 in 2099", "xlsx", "party.members", "入党日期", "2099-07-01", "quarantine", "future_date"),
    Case("转正日期 in 2099", "xlsx", "party.members", "转正日期", "2099.07.01", "quarantine", "future_date"),
    Case("birth date in 2099 (party register)", "xlsx", "party.members", "出生日期", "2099-01-01", "quarantine",
         "future_date"),
    Case("ID number as a number cell", "xlsx", "party.members", "公民身份号码", 450102199001010087, "quarantine",
         "precision_lost", stage="raw"),
    Case("ID number as a text cell", "xlsx", "party.members", "公民身份号码", "450102199001010087", "accepted",
         staged=("id_number", "450102199001010087")),
    Case("委员人数 -3", "xlsx", "party.orgs", "委员人数", -3, "quarantine", "negative_value"),
    Case("negative 党费", "csv", "party.dues", "实缴金额", "-50.00", "quarantine", "negative_value"),
    Case("negative 应缴金额", "csv", "party.dues", "应缴金额", "-0.20", "quarantine", "negative_value"),
    Case("缴费日期 in 2099", "csv", "party.dues", "缴费日期", "20990105", "quarantine", "future_date"),
    Case("缴费日期 2024年3月5日", "csv", "party.dues", "缴费日期", "2024年3月5日", "accepted",
         staged=("paid_on", dt.date(2024, 3, 5))),
    Case("control characters in a name (CSV)", "csv", "party.dues", "姓名", "韦\x1b小宝\x00", "flag",
         "control_characters", staged=("name", "韦小宝")),
    Case("birth date in 2099 (HR)", "rest", "hr.staff", "csrq", "2099-08-14", "quarantine", "future_date"),
    Case("hire date in 2099", "rest", "hr.staff", "rzrq", "2099-04-12", "quarantine", "future_date"),
    Case("birth date 2024-02-30 (HR)", "rest", "hr.staff", "csrq", "2024-02-30", "quarantine", "invalid_date"),
    Case("control characters in a name (REST)", "rest", "hr.staff", "xm", "周\u0007安卫", "flag",
         "control_characters", staged=("name", "周安卫")),
    Case("study progress 150", "rest", "learning.study_records", "progress", 150, "quarantine",
         "percent_out_of_range"),
    Case("study minutes -5", "rest", "learning.study_records", "minutes", -5, "quarantine", "negative_value"),
    Case("meeting ends before it starts", "rest", "activity.meetings", "end_time", "2023-09-01T18:30:00+08:00",
         "quarantine", "end_before_start"),
    Case("negative credits", "sql", "academic.courses", "xf", "-2", "quarantine", "negative_value"),
]

# -- good rows, as the simulated campus's systems write them -------------------------------------------
MEMBER_HEADER = ["人员编号", "姓名", "性别", "民族", "公民身份号码", "出生日期", "学历", "人员类别", "党组织编码",
                 "所在党支部", "党员类型", "申请入党日期", "列为积极分子日期", "列为发展对象日期", "入党日期", "转正日期",
                 "延长预备期", "党籍状态", "联系电话"]
MEMBER = ["19850012", "张珍", "女", "壮族", "452425196006015986", dt.date(1960, 6, 1), "大学本科", "离退休人员",
          "451000100100", "人文与教育学院教工党支部", "正式党员", dt.date(1980, 11, 13), dt.date(1981, 10, 23),
          dt.date(1983, 7, 21), "1983.10.26", dt.date(1984, 10, 26), "", "正常", "15893410186"]
ORG_HEADER = ["党组织编码", "党组织名称", "党组织类别", "上级党组织编码", "支部类型", "所属单位", "书记姓名", "书记人员编号",
              "成立日期", "换届日期", "届满日期", "委员人数"]
ORG = ["451000100100", "人文与教育学院教工党支部", "党支部", "451000100000", "教工", "101", "龙颖宁", "20250012",
       dt.date(2017, 2, 6), dt.date(2024, 2, 9), 46427.0, 3.0]
DUES_HEADER = ["人员编号", "姓名", "党组织编码", "缴费月份", "缴费基数", "应缴金额", "实缴金额", "缴费日期"]
DUES = ["19850012", "张珍", "451000100100", "2024-01", "7426.51", "74.27", "74.27", "20240319"]
STAFF = {"gh": "19730011", "xm": "潘平智", "xbm": "1", "csrq": "1950-08-14", "mz": "壮族", "sfzjh": "452126195008145130",
         "zzmm": "群众", "xl": "14", "zc": "副教授", "zcdm": "012", "dwh": "207", "dwmc": "后勤处", "jzglb": "11",
         "dqzt": "01", "rzrq": "1973-04-12", "sjhm": "19333545279", "updated_at": "2025-10-24T04:38:43+08:00"}
STUDY = {"record_id": "SR00000001", "user_no": "20070013", "course_id": "LC00003", "started_at": 1693611920000,
         "last_active_at": 1694352156000, "minutes": 156, "progress": 100, "quiz_score": None, "completed": True,
         "updated_at": 1694352156000}
MEETING = {"meeting_id": "MT0000001", "org_code": "451000100100", "type": "支部党员大会", "title": "2023年第3季度支部党员大会",
           "start_time": "2023-09-01T19:30:00+08:00", "end_time": "2023-09-01T20:33:00+08:00", "place": "实训楼一楼会议室",
           "lecturer": None, "updated_at": "2023-09-04T20:28:14+08:00"}
COURSE = {"kch": "GB101", "kcmc": "思想道德与法治", "xf": "3.0", "kclb": "公共基础课", "kkdwh": "101"}

KEYS = {"party.members": ["人员编号"], "party.orgs": ["党组织编码"], "party.dues": ["人员编号", "缴费月份"],
        "hr.staff": ["gh"], "learning.study_records": ["record_id"], "activity.meetings": ["meeting_id"],
        "academic.courses": ["kch"]}
MODELS = {"party.members": "stg_party_members", "party.orgs": "stg_party_orgs", "party.dues": "stg_party_dues",
          "hr.staff": "stg_hr_staff", "learning.study_records": "stg_learning_study_records",
          "activity.meetings": "stg_activity_meetings", "academic.courses": "stg_academic_courses"}
STAGED_KEY = {"party.members": "person_no", "party.orgs": "org_code", "party.dues": "person_no", "hr.staff": "staff_no",
              "learning.study_records": "record_id", "activity.meetings": "meeting_id", "academic.courses": "course_code"}


def _record(entity: str, i: int) -> dict:
    """A good record of ``entity``, its key made unique by ``i`` (the good rows: 1, 2; case n: 100 + n)."""
    if entity == "party.members":
        r = dict(zip(MEMBER_HEADER, MEMBER, strict=True)) | {"人员编号": f"1985{i:04d}"}
    elif entity == "party.orgs":
        r = dict(zip(ORG_HEADER, ORG, strict=True)) | {"党组织编码": f"4510001{i:05d}"}
    elif entity == "party.dues":
        r = dict(zip(DUES_HEADER, DUES, strict=True)) | {"人员编号": f"1985{i:04d}"}
    elif entity == "hr.staff":
        r = STAFF | {"gh": f"1973{i:04d}"}
    elif entity == "learning.study_records":
        r = STUDY | {"record_id": f"SR{i:08d}"}
    elif entity == "activity.meetings":
        r = MEETING | {"meeting_id": f"MT{i:07d}"}
    else:
        r = COURSE | {"kch": f"GB{i:03d}"}
    return r


def _key(entity: str, record: dict) -> str:
    return "|".join(str(record[k]) for k in KEYS[entity])


def _text(value: Any) -> str:
    """A sent value as the raw zone keeps it (text); an integer past 15 digits as a float reads it back."""
    if isinstance(value, int) and abs(value) >= 10**15:
        return str(int(float(value)))  # 450102199001010087 -> 450102199001010112: what precision_lost names
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _rows(entity: str) -> tuple[list[dict], dict[Case, dict]]:
    good = [_record(entity, i) for i in (1, 2)]
    bad = {c: _record(entity, 100 + n) | {c.field: c.value} for n, c in enumerate(CASES) if c.entity == entity}
    return good, bad


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Every case through its intake path, one load per entity, then the staging builds."""
    from hub.warehouse import connect

    work = tmp_path_factory.mktemp("plausibility")
    inbox = work / "inbox"
    inbox.mkdir()
    con = connect(work / "warehouse.duckdb")
    rows = {e: _rows(e) for e in {c.entity for c in CASES}}

    def xlsx(name: str, header: list[str], entity: str) -> None:
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(header)
        good, bad = rows[entity]
        for r in [*good, *bad.values()]:
            ws.append([r[h] for h in header])
        wb.save(inbox / name)

    xlsx("党员信息.xlsx", MEMBER_HEADER, "party.members")
    xlsx("党组织信息.xlsx", ORG_HEADER, "party.orgs")
    good, bad = rows["party.dues"]
    with (inbox / "党费缴纳_2024.csv").open("w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(DUES_HEADER)
        w.writerows([r[h] for h in DUES_HEADER] for r in [*good, *bad.values()])

    db = work / "academic.sqlite"
    with sqlite3.connect(db) as lite:
        lite.execute("CREATE TABLE jw_kc (kch TEXT, kcmc TEXT, xf TEXT, kclb TEXT, kkdwh TEXT)")
        good, bad = rows["academic.courses"]
        lite.executemany("INSERT INTO jw_kc VALUES (:kch, :kcmc, :xf, :kclb, :kkdwh)", [*good, *bad.values()])
        lite.execute("CREATE TABLE jw_cj (id TEXT, xh TEXT, kch TEXT, xnxq TEXT, cj TEXT, ksxz TEXT, updated_at TEXT)")

    def page(entity: str, wrap) -> Any:
        good, bad = rows[entity]
        return lambda seen: Reply(body=wrap([*good, *bad.values()]))

    routes = {"/api/hr/v1/staff": page("hr.staff", lambda r: {"data": {"list": r, "total": len(r), "pages": 1}}),
              "/api/learning/v1/study-records": page("learning.study_records", lambda r: r),
              "/api/activity/v1/meetings": page("activity.meetings",
                                                lambda r: {"count": len(r), "next": None, "results": r})}
    env = {"HUB_INBOX_DIR": str(inbox), "HUB_ACADEMIC_URL": f"sqlite:///{db}"}
    with Vendor(routes) as vendor, pytest.MonkeyPatch.context() as mp:
        for k, v in (env | {"HUB_HR_URL": vendor.url, "HUB_LEARNING_URL": vendor.url,
                            "HUB_ACTIVITY_URL": vendor.url}).items():
            mp.setenv(k, v)
        sources = load_sources(PROJECT_ROOT / "sources.yaml")
        for name in rows:
            system, entity = name.split(".")
            [result] = load_entity(con, work / "raw", sources[system], sources[system].entities[entity])
            assert result.status == "ok", result.message
            assert result.rows_read == result.rows_landed + result.rows_skipped + result.rows_rejected
        load_code_sets(con)
        for name in rows:
            build_staging(con, MODELS[name])
    yield con, rows
    con.close()


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_each_bad_value_is_caught_at_its_row_and_the_good_rows_arrive(corpus, case):
    con, rows = corpus
    good, bad = rows[case.entity]
    record = bad[case]
    key, model, staged_key = _key(case.entity, record), MODELS[case.entity], STAGED_KEY[case.entity]
    system, entity = case.entity.split(".")
    landed = {k for (k,) in con.execute(f"SELECT {staged_key} FROM staging.{model}").fetchall()}
    assert {str(g[KEYS[case.entity][0]]) for g in good} <= landed, "the good rows of the same file/page arrive"
    sent = _text(case.value)

    if case.outcome == "quarantine":
        assert str(record[KEYS[case.entity][0]]) not in landed
        got = con.execute("SELECT rule, detail, original_row FROM quality.quarantine WHERE stage = ? AND source = ? "
                          "AND entity = ? AND record_key = ?", [case.stage, system, entity, key]).fetchall()
        assert len(got) == 1, got
        rule, detail, original = got[0]
        assert rule == case.rule
        assert case.field in detail and sent in detail, detail
        original = json.loads(original)
        kept = original.get("values", original)  # raw: {"file", "row", "values"}; staging: the raw row
        assert _text(kept[case.field]) == sent, "the quarantine keeps the value as sent"
        return

    column, expected = case.staged
    [(value,)] = con.execute(f"SELECT {column} FROM staging.{model} WHERE {staged_key} = ?",
                             [str(record[KEYS[case.entity][0]])]).fetchall()
    assert value == expected
    findings = con.execute("SELECT rule, column_name, value, detail FROM quality.value_finding WHERE model = ? "
                           "AND record_key = ?", [model, key]).fetchall()
    if case.outcome == "accepted":
        assert findings == []
        return
    [(rule, column_name, raw_value, detail)] = findings
    assert (rule, column_name, raw_value) == (case.rule, case.field, sent), "the finding keeps the value as sent"
    assert case.field in detail and json.dumps(sent, ensure_ascii=False)[1:-1].lower() in detail.lower(), detail


def test_every_row_sent_is_staged_or_quarantined(corpus):
    """Per entity: every row sent is staged, quarantined or (raw) set aside; nothing else."""
    con, rows = corpus
    for name, (good, bad) in rows.items():
        system, entity = name.split(".")
        staged = con.execute(f"SELECT count(*) FROM staging.{MODELS[name]}").fetchone()[0]
        held = con.execute("SELECT count(*) FROM quality.quarantine WHERE source = ? AND entity = ?",
                           [system, entity]).fetchone()[0]
        assert staged + held == len(good) + len(bad), name


def test_a_rebuild_replaces_its_findings_and_flag_severity_keeps_the_row(tmp_path, con):
    """Severity comes from the configuration: with 实缴金额 set to flag, the negative payment is kept and
    reported once, however often the model is rebuilt; with an as-of date (run_settings.as_of) the future
    is judged at that date."""
    config = tmp_path / "plausibility.yaml"
    config.write_text("stg_party_dues:\n  paid: {kind: non_negative, raw: 实缴金额, severity: flag}\n"
                      "  paid_on: {kind: past_date, raw: 缴费日期, severity: quarantine}\n", encoding="utf-8")
    load_code_sets(con)
    meta = "'L1' AS _load_id, 'party' AS _source, now() AS _extracted_at, NULL AS _row_hash, 'f.csv' AS _file"
    con.execute(f"""CREATE TABLE raw.party__dues AS SELECT *, {meta} FROM (VALUES
        ('1001', '甲', '451000100100', '2024-01', '', '0.20', '-0.20', '20240110', 1),
        ('1002', '乙', '451000100100', '2024-01', '', '0.20', '0.20', '20240319', 2))
        t("人员编号", "姓名", "党组织编码", "缴费月份", "缴费基数", "应缴金额", "实缴金额", "缴费日期", _row_number)""")
    for _ in range(2):
        stats = build_staging(con, "stg_party_dues", checks=load_checks(config), as_of=dt.date(2024, 2, 29))
    assert stats["rejected_by_rule"] == {"future_date": 1}
    [(detail,)] = con.execute("SELECT detail FROM quality.quarantine WHERE rule = 'future_date'").fetchall()
    assert "缴费日期" in detail and "20240319" in detail and "2024-02-29" in detail
    assert con.execute("SELECT person_no, paid FROM staging.stg_party_dues").fetchall() == [("1001", Decimal("-0.20"))]
    assert con.execute("SELECT record_key, rule, column_name, value FROM quality.value_finding").fetchall() == [
        ("1001|2024-01", "negative_value", "实缴金额", "-0.20")]


def test_a_configuration_mistake_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("stg_party_dues:\n  paid: {kind: non_negative, raw: 实缴金额, severity: block}\n", encoding="utf-8")
    with pytest.raises(PlausibilityConfigError, match=r"stg_party_dues.paid: severity must be one of"):
        load_checks(bad)
    bad.write_text("stg_nothing:\n  x: {kind: text, raw: y}\n", encoding="utf-8")
    with pytest.raises(PlausibilityConfigError, match="stg_nothing: no such staging model"):
        load_checks(bad)
    assert load_checks()  # the shipped configuration is valid


# -- formulas in what the hub writes -------------------------------------------------------------------
FORMULAS = ["=HYPERLINK(\"http://x\",\"点此\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1"]


def test_formula_like_text_is_neutralised_and_numbers_are_not():
    assert [neutralise(v) for v in FORMULAS] == ["'" + v for v in FORMULAS]
    assert [neutralise(v) for v in ["-5", "+3.5", "-12%", "张三", "", None, -5, 3.5]] == [
        "-5", "+3.5", "-12%", "张三", "", None, -5, 3.5]
    batch = pa.record_batch({"name": [*FORMULAS, "-5", None], "n": list(range(len(FORMULAS) + 2))})
    out = neutralise_batch(batch)
    assert out.schema == batch.schema
    assert out.column("name").to_pylist() == ["'" + v for v in FORMULAS] + ["-5", None]
    assert out.column("n").to_pylist() == batch.column("n").to_pylist()


def test_hub_sql_export_csv_neutralises_formulas(tmp_path):
    import duckdb

    from hub.analyst_sql import export, open_snapshot

    snap = tmp_path / "analyst.duckdb"
    with duckdb.connect(str(snap)) as c:
        c.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('=1+1', -5), ('张三', 2), ('@cmd', 3)) v(name, n)")
    con = open_snapshot(snap)
    try:
        assert export(con, "SELECT * FROM t ORDER BY n", tmp_path / "out.csv") == 3
    finally:
        con.close()
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == ['"\'=1+1",-5', '"张三",2', '"\'@cmd",3']


def test_hub_sql_csv_output_neutralises_formulas(tmp_path, monkeypatch):
    import duckdb
    from click.testing import CliRunner

    from hub.cli import main

    snap = tmp_path / "analyst.duckdb"
    with duckdb.connect(str(snap)) as c:
        c.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('+1+1', -5), ('-5', 2)) v(name, n)")
    monkeypatch.setenv("HUB_SNAPSHOT", str(snap))
    result = CliRunner().invoke(main, ["sql", "SELECT * FROM t ORDER BY n", "--csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["name,n", "'+1+1,-5", "-5,2"]


def test_the_report_neutralises_formulas():
    from hub.report import _t

    assert _t("=cmd|' /C calc'!A0") == "&#x27;=cmd|&#x27; /C calc&#x27;!A0"
    assert _t("-12%") == "-12%" and _t("<b>") == "&lt;b&gt;"
