"""A corpus of bad input rows, pushed through the hub's real intake paths, and what staging makes of each.

Every case is one kind of bad input (a row, or rows sharing a key) placed among good rows of one intake:

* REST: the campus API servers on loopback (HR page_number, students cursor, activity offset, learning
  link_header pagination), read by the REST connector exactly as in production (sources.yaml);
* SQL: the 教务 tables in a scratch PostgreSQL schema (grades) and a scratch MariaDB database (courses);
* files: a GBK CSV (发展党员), two UTF-8 CSV yearly files (党费缴纳_2024/2025), XLSX workbooks written with
  openpyxl (党员信息, 组织关系转接).

Everything is loaded once (module fixture), the staging models are built with ``build_staging``, and each
case asserts its outcome: quarantined with which rule (the detail naming the column), superseded by a
newer version, accepted (with a finding when its key was read after taking off spaces or case), or a
finding naming both files. For every intake the good rows arrive, and per staging model the latest raw
versions = staged + quarantined + superseded.

The corpus is a table (``CASES``): a case names its intake, its rows and the outcome; more kinds of bad
input are added as rows of the table.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from campus_sim.servers import SourceServers
from connectors import load_entity, load_sources
from hub.settings import PROJECT_ROOT
from models.build import STAGING_MODELS, build_staging, load_code_sets
from models.row_rules import conservation
from tests.test_servers import _attendance, _courses, _meetings, _staff, _students, _study_records

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIA = "mysql+pymysql://root@127.0.0.1:3306/test"


@dataclass(frozen=True)
class Intake:
    """One source entity as the hub reads it: its staging model and how a staged row's key is spelled."""

    source: str
    entity: str
    model: str
    staged_key: str     # SQL over the staging table giving the record key
    path: str           # rest / postgres / mariadb / csv-gbk / csv / xlsx


INTAKES = {i.model: i for i in [
    Intake("hr", "staff", "stg_hr_staff", "staff_no", "rest"),
    Intake("student", "students", "stg_students", "student_no", "rest"),
    Intake("activity", "meetings", "stg_activity_meetings", "meeting_id", "rest"),
    Intake("activity", "attendance", "stg_activity_attendance", "meeting_id || '|' || person_no", "rest"),
    Intake("learning", "study_records", "stg_learning_study_records", "record_id", "rest"),
    Intake("academic", "grades", "stg_academic_grades",
           "student_no || '|' || course_code || '|' || term || '|' || exam_type_name", "postgres"),
    Intake("academic", "courses", "stg_academic_courses", "course_code", "mariadb"),
    Intake("party", "development", "stg_party_development", "person_no", "csv-gbk"),
    Intake("party", "dues", "stg_party_dues", "person_no || '|' || strftime(month, '%Y-%m')", "csv"),
    Intake("party", "members", "stg_party_members", "person_no", "xlsx"),
    Intake("party", "transfers", "stg_party_transfers", "letter_no", "xlsx"),
]}


@dataclass(frozen=True)
class Case:
    """A kind of bad input. ``rows`` are changes to the intake's template row (one dict per row sent);
    ``key`` is the record key staging should know it by. ``outcome``: a quarantine rule, ``superseded``
    (the newest version staged, the others in quality.superseded), ``duplicate`` (one copy staged, the
    others duplicate_row), ``accepted`` (staged under ``key``) or ``finding:<kind>``. ``column`` must be
    named in the detail; ``staged`` (column, value) is what the staged row must hold."""

    kind: str
    model: str
    key: str
    rows: list[dict]
    outcome: str
    column: str | None = None
    staged: tuple[str, str] | None = None
    file: str | None = None           # files: which file of the entity the rows go to
    finding: str | None = None        # a finding the case also produces (key_variant)


HR_T = "2026-02-0{}T08:30:00+08:00"

CASES: list[Case] = [
    # -- REST: HR (page_number pagination) -------------------------------------------------------
    Case("null name", "stg_hr_staff", "20109001", [{"xm": None}], "missing_value", "xm"),
    Case("name of full-width spaces", "stg_hr_staff", "20109002", [{"xm": "\u3000\u3000"}], "missing_value", "xm"),
    Case("name sent as a JSON list", "stg_hr_staff", "20109003", [{"xm": ["张", "三"]}], "wrong_shape", "xm"),
    Case("name sent as a JSON object", "stg_hr_staff", "20109004", [{"xm": {"姓": "张", "名": "三"}}],
         "wrong_shape", "xm"),
    Case("工号 with a trailing space", "stg_hr_staff", "20109005", [{"gh": "20109005 "}], "accepted", "gh",
         finding="key_variant"),
    Case("工号 with a full-width leading space, also sent plain", "stg_hr_staff", "20109006",
         [{"gh": "\u300020109006"}, {"gh": "20109006"}], "duplicate", "gh", finding="key_variant"),
    Case("工号 with no-break spaces around it", "stg_hr_staff", "20109007", [{"gh": "\u00a020109007\u00a0"}],
         "accepted", "gh", finding="key_variant"),
    Case("same 工号 twice in one load, different updated_at", "stg_hr_staff", "20109008",
         [{"xm": "覃旧名", "updated_at": HR_T.format(1)}, {"xm": "覃新名", "updated_at": HR_T.format(3)}],
         "superseded", "updated_at", staged=("name", "覃新名")),
    Case("same 工号 twice, same updated_at, different values", "stg_hr_staff", "20109009",
         [{"xm": "覃甲"}, {"xm": "覃乙"}], "conflicting_duplicate", "xm"),
    Case("same 工号 twice, identical", "stg_hr_staff", "20109010", [{}, {}], "duplicate", "gh"),
    # -- REST: students (cursor pagination) ------------------------------------------------------
    Case("student name null", "stg_students", "202409990001", [{"name": None}], "missing_value", "name"),
    Case("student name a JSON list written as text", "stg_students", "202409990002",
         [{"name": '["李", "四"]'}], "wrong_shape", "name"),
    Case("same 学号 twice, different updatedAt", "stg_students", "202409990003",
         [{"major": "旧专业", "updatedAt": "2026-03-01 10:00:00"},
          {"major": "新专业", "updatedAt": "2026-03-02 10:00:00"}], "superseded", "updatedAt",
         staged=("major", "新专业")),
    # -- REST: activity (offset pagination) ------------------------------------------------------
    Case("meeting without org_code", "stg_activity_meetings", "M90001", [{"org_code": None}], "missing_value",
         "org_code"),
    Case("meeting title a JSON object", "stg_activity_meetings", "M90002", [{"title": {"zh": "党课"}}],
         "wrong_shape", "title"),
    Case("attendance twice, the later updated_at wins", "stg_activity_attendance", "M00001|202401019901",
         [{"status": "缺席", "updated_at": "2026-03-01T18:00:00+08:00"},
          {"status": "出席", "updated_at": "2026-03-04T18:00:00+08:00"}], "superseded", "updated_at",
         staged=("status_name", "出席")),
    Case("attendance twice, same updated_at, different status", "stg_activity_attendance",
         "M00001|202401019902", [{"status": "缺席"}, {"status": "出席"}], "conflicting_duplicate", "person_no"),
    # -- REST: learning (link_header pagination, epoch milliseconds) ----------------------------
    Case("study record with a blank user_no", "stg_learning_study_records", "R900001", [{"user_no": ""}],
         "missing_value", "user_no"),
    Case("study record twice, later epoch-ms updated_at wins", "stg_learning_study_records", "R900002",
         [{"minutes": 5, "updated_at": 1_760_000_000_000}, {"minutes": 50, "updated_at": 1_760_000_900_000}],
         "superseded", "updated_at", staged=("CAST(minutes AS INTEGER)", "50")),
    # -- SQL: PostgreSQL (教务 grades) -----------------------------------------------------------
    Case("学号 with trailing spaces in a database column", "stg_academic_grades",
         "202401019903|GB101|2024-2025-1|正常考试", [{"xh": "202401019903  "}], "accepted", "xh",
         finding="key_variant"),
    Case("grade stored twice, the later updated_at wins", "stg_academic_grades",
         "202401019904|GB101|2024-2025-1|正常考试",
         [{"cj": "58", "updated_at": "2025-01-10 10:00:00"}, {"cj": "78", "updated_at": "2025-02-10 10:00:00"}],
         "superseded", "updated_at", staged=("score_original", "78")),
    Case("grade stored twice, same updated_at, different cj", "stg_academic_grades",
         "202401019905|GB101|2024-2025-1|正常考试", [{"cj": "58"}, {"cj": "78"}], "conflicting_duplicate", "cj"),
    # -- SQL: MariaDB (教务 courses) --------------------------------------------------------------
    Case("course name a JSON list", "stg_academic_courses", "GB901", [{"kcmc": '["思政", "党史"]'}],
         "wrong_shape", "kcmc"),
    Case("课程号 with a full-width trailing space", "stg_academic_courses", "GB902", [{"kch": "GB902\u3000"}],
         "accepted", "kch", finding="key_variant"),
    # -- CSV, GBK (发展党员) -----------------------------------------------------------------------
    Case("development record without a name", "stg_party_development", "D9001", [{"姓名": ""}], "missing_value",
         "姓名"),
    Case("development record without 党组织编码", "stg_party_development", "D9002", [{"党组织编码": ""}],
         "missing_value", "党组织编码"),
    Case("人员编号 of a full-width space only", "stg_party_development", "", [{"人员编号": "\u3000"}],
         "raw:missing_primary_key", "人员编号"),
    Case("人员编号 twice with different values and no timestamp", "stg_party_development", "D9003",
         [{"发展阶段": "入党积极分子"}, {"发展阶段": "发展对象"}], "conflicting_duplicate", "发展阶段"),
    # -- CSV, UTF-8 (党费缴纳, one file per year) ---------------------------------------------------
    Case("dues key in two yearly files with different amounts", "stg_party_dues", "P9001|2024-12",
         [{"实缴金额": "12.00"}, {"实缴金额": "15.00", "_file": "2025"}], "finding:cross_load_conflict", "实缴金额",
         staged=("CAST(paid AS VARCHAR)", "15.00")),
    Case("dues key again with a trailing space, same values", "stg_party_dues", "P9002|2024-03",
         [{}, {"人员编号": "P9002 "}], "duplicate", "人员编号", finding="key_variant"),
    Case("dues without 党组织编码", "stg_party_dues", "P9003|2024-03", [{"党组织编码": ""}], "missing_value",
         "党组织编码"),
    # -- XLSX (党员信息) ---------------------------------------------------------------------------
    Case("member without a name", "stg_party_members", "P8001", [{"姓名": None}], "missing_value", "姓名"),
    Case("member name a JSON list", "stg_party_members", "P8002", [{"姓名": '["张", "三"]'}], "wrong_shape", "姓名"),
    Case("member key written once with a trailing space", "stg_party_members", "P8003", [{"人员编号": "P8003 "}],
         "accepted", "人员编号", finding="key_variant"),
    Case("member key with and without a space, different values", "stg_party_members", "P8004",
         [{"所在党支部": "第一支部"}, {"人员编号": "P8004\u3000", "所在党支部": "第二支部"}], "conflicting_duplicate",
         "所在党支部"),
    # -- XLSX (组织关系转接, keys case-insensitive) -------------------------------------------------
    Case("介绍信编号 in lower case, also in upper case", "stg_party_transfers", "ZJ9001",
         [{"介绍信编号": "zj9001"}, {"介绍信编号": "ZJ9001"}], "duplicate", "介绍信编号", finding="key_variant"),
    Case("介绍信编号 in lower case alone", "stg_party_transfers", "ZJ9002", [{"介绍信编号": "zj9002"}], "accepted",
         "介绍信编号", finding="key_variant"),
]


# -------------------------------------------------------------------------------- templates


def _template(model: str, key: str) -> dict:
    """A good row of the intake whose record key is ``key``."""
    if model == "stg_hr_staff":
        return {**_staff()[0], "gh": key, "zcdm": "012", "updated_at": HR_T.format(2)}
    if model == "stg_students":
        return {**_students()[0], "studentNo": key}
    if model == "stg_activity_meetings":
        return {**_meetings()[0], "meeting_id": key}
    if model == "stg_activity_attendance":
        meeting, person = key.split("|")
        return {**_attendance()[0], "meeting_id": meeting, "person_no": person,
                "updated_at": "2026-03-02T18:00:00+08:00"}
    if model == "stg_learning_study_records":
        return {**_study_records()[0], "record_id": key}
    if model == "stg_academic_grades":
        xh, kch, term, exam = key.split("|")
        return {"xh": xh, "kch": kch, "xnxq": term, "cj": "88", "ksxz": exam, "updated_at": "2025-01-10 10:00:00"}
    if model == "stg_academic_courses":
        return {"kch": key, "kcmc": "形势与政策", "xf": "1.0", "kclb": "必修", "kkdwh": "101"}
    if model == "stg_party_development":
        return {"人员编号": key, "姓名": "黄小明", "公民身份号码": "", "性别": "男", "党组织编码": "451000100101",
                "发展阶段": "入党申请人", "申请入党日期": "20240301", "谈话日期": "", "列为积极分子日期": "",
                "列为发展对象日期": "", "培养联系人": "覃明"}
    if model == "stg_party_dues":
        person, month = key.split("|")
        return {"人员编号": person, "姓名": "黄小明", "党组织编码": "451000100101", "缴费月份": month,
                "缴费基数": "8000.00", "应缴金额": "40.00", "实缴金额": "40.00", "缴费日期": month.replace("-", "") + "10"}
    if model == "stg_party_members":
        return {"人员编号": key, "姓名": "韦华", "公民身份号码": "", "性别": "男", "民族": "壮族",
                "出生日期": "1990-01-01", "学历": "本科", "人员类别": "在职教职工", "党组织编码": "451000100101",
                "所在党支部": "第一支部", "党员类型": "正式党员", "申请入党日期": "2010-03-01",
                "列为积极分子日期": "2010-09-01", "列为发展对象日期": "2011-03-01", "入党日期": "2011-07-01",
                "转正日期": "2012-07-01", "党籍状态": "正常", "联系电话": "13800000000"}
    if model == "stg_party_transfers":
        return {"介绍信编号": key, "人员编号": "P7001", "姓名": "蒙丽", "公民身份号码": "", "转出党组织编码": "451000100101",
                "转入党组织名称": "中共南宁市委组织部", "转接类型": "省内", "转出日期": "2026-06-01", "回执日期": ""}
    raise KeyError(model)


GOOD_KEYS = {  # the good rows of each intake, sent around the bad ones
    "stg_hr_staff": [r["gh"] for r in _staff()],
    "stg_students": [r["studentNo"] for r in _students()],
    "stg_activity_meetings": [r["meeting_id"] for r in _meetings()],
    "stg_activity_attendance": [f"{r['meeting_id']}|{r['person_no']}" for r in _attendance()],
    "stg_learning_study_records": [r["record_id"] for r in _study_records()],
    "stg_academic_grades": [f"2024010101{i:02d}|GB10{i % 3}|2024-2025-1|正常考试" for i in range(8)],
    "stg_academic_courses": [f"GB10{i}" for i in range(3)],
    "stg_party_development": [f"D100{i}" for i in range(4)],
    "stg_party_dues": [f"P100{i}|2024-0{1 + i}" for i in range(4)],
    "stg_party_members": [f"P200{i}" for i in range(4)],
    "stg_party_transfers": [f"ZJ100{i}" for i in range(3)],
}
REST_FILES = {"stg_hr_staff": "hr/staff.jsonl", "stg_students": "student/students.jsonl",
              "stg_activity_meetings": "activity/meetings.jsonl",
              "stg_activity_attendance": "activity/attendance.jsonl",
              "stg_learning_study_records": "learning/study_records.jsonl"}


def _good_rows(model: str) -> list[dict]:
    originals = {"stg_hr_staff": _staff, "stg_students": _students, "stg_activity_meetings": _meetings,
                 "stg_activity_attendance": _attendance, "stg_learning_study_records": _study_records}
    if model == "stg_hr_staff":  # 副教授 is 012 in GB/T 8561
        return [{**r, "zcdm": "012"} for r in _staff()]
    if model in originals:
        return originals[model]()
    return [_template(model, k) for k in GOOD_KEYS[model]]


def _rows(model: str) -> list[dict]:
    """The intake's rows: good ones, then every case's rows (changes applied to the template)."""
    rows = _good_rows(model)
    for case in CASES:
        if case.model == model:
            rows += [{**_template(model, case.key or "X"), **change} for change in case.rows]
    return rows


@dataclass
class Corpus:
    con: object
    stats: dict[str, dict] = field(default_factory=dict)


def _write_rest(data_dir: Path) -> None:
    for model, file in REST_FILES.items():
        path = data_dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows(model)), encoding="utf-8")
    courses = data_dir / "learning" / "courses.jsonl"
    courses.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _courses()), encoding="utf-8")


def _scratch(url: str, kind: str):
    try:
        sa.create_engine(url).connect().close()
    except sa.exc.OperationalError as exc:
        pytest.skip(f"{kind} not reachable on this machine: {str(exc.orig).splitlines()[0]}")
    name = f"hub_corpus_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE {'SCHEMA' if kind == 'postgres' else 'DATABASE'} {name}"))
    scoped = (f"{url}?options=-csearch_path%3D{name}" if kind == "postgres"
              else url.rsplit("/", 1)[0] + f"/{name}?charset=utf8mb4")
    return admin, name, scoped


def _fill(url: str, table: str, columns: list[str], rows: list[dict], id_column: bool) -> None:
    engine = sa.create_engine(url)
    cols = (["id INTEGER PRIMARY KEY"] if id_column else []) + [f"{c} VARCHAR(200)" for c in columns]
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE TABLE {table} ({', '.join(cols)})"))
        names = (["id"] if id_column else []) + columns
        c.execute(sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"),
                  [{**({"id": i + 1} if id_column else {}), **{k: r.get(k) for k in columns}}
                   for i, r in enumerate(rows)])
    engine.dispose()


def _write_csv(path: Path, rows: list[dict], encoding: str) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))


def _write_xlsx(path: Path, rows: list[dict]) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(rows[0]))
    for r in rows:
        ws.append([r[c] for c in rows[0]])  # text cells, as the party system exports them
    wb.save(path)


def _write_files(inbox: Path) -> None:
    inbox.mkdir(parents=True)
    _write_csv(inbox / "发展党员_2026.csv", _rows("stg_party_development"), "gbk")
    dues = _rows("stg_party_dues")
    for year in ("2024", "2025"):
        rows = [{k: v for k, v in r.items() if k != "_file"} for r in dues if r.get("_file", "2024") == year]
        _write_csv(inbox / f"党费缴纳_{year}.csv", rows, "utf-8")
    _write_xlsx(inbox / "党员信息_2026.xlsx", _rows("stg_party_members"))
    _write_xlsx(inbox / "组织关系转接_2026.xlsx", _rows("stg_party_transfers"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    from hub.warehouse import connect

    root = tmp_path_factory.mktemp("corpus")
    _write_rest(root / "campus")
    _write_files(root / "inbox" / "party")
    pg_admin, pg_name, pg_url = _scratch(PG, "postgres")
    my_admin, my_name, my_url = _scratch(MARIA, "mariadb")
    con = connect(root / "warehouse.duckdb")
    try:
        _fill(pg_url, "jw_cj", ["xh", "kch", "xnxq", "cj", "ksxz", "updated_at"], _rows("stg_academic_grades"), True)
        _fill(my_url, "jw_kc", ["kch", "kcmc", "xf", "kclb", "kkdwh"], _rows("stg_academic_courses"), False)
        with SourceServers(root / "campus") as servers, pytest.MonkeyPatch.context() as env:
            for name, value in {"HUB_HR_URL": servers.urls["hr"], "HUB_XG_URL": servers.urls["student"],
                                "HUB_ACTIVITY_URL": servers.urls["activity"],
                                "HUB_LEARNING_URL": servers.urls["learning"],
                                "HUB_INBOX_DIR": str(root / "inbox" / "party"),
                                "HUB_ACADEMIC_URL": pg_url}.items():
                env.setenv(name, value)
            sources = load_sources(PROJECT_ROOT / "sources.yaml")  # ${VAR}s are read when a source is used
            for intake in INTAKES.values():
                env.setenv("HUB_ACADEMIC_URL", my_url if intake.path == "mariadb" else pg_url)
                source = sources[intake.source]
                for result in load_entity(con, root / "raw", source, source.entities[intake.entity]):
                    assert result.status == "ok", result.message
        load_code_sets(con)
        found = Corpus(con)
        for model in INTAKES:
            found.stats[model] = build_staging(con, model)
        yield found
    finally:
        con.close()
        for admin, name, kind in ((pg_admin, pg_name, "postgres"), (my_admin, my_name, "mariadb")):
            with admin.connect() as c:
                c.execute(sa.text(f"DROP {'SCHEMA' if kind == 'postgres' else 'DATABASE'} {name}"
                                  f"{' CASCADE' if kind == 'postgres' else ''}"))
            admin.dispose()


def _staged(con, model: str, key: str, column: str | None = None) -> list:
    intake = INTAKES[model]
    return [r[0] for r in con.execute(f"SELECT {column or intake.staged_key} FROM staging.{model} "
                                      f"WHERE {intake.staged_key} = ?", [key]).fetchall()]


def _quarantined(con, model: str, key: str) -> list[tuple[str, str, dict]]:
    intake = INTAKES[model]
    return [(rule, detail, json.loads(row)) for rule, detail, row in con.execute(
        "SELECT rule, detail, original_row FROM quality.quarantine WHERE stage = 'staging' AND source = ? "
        "AND entity = ? AND coalesce(record_key, '') = ?", [intake.source, intake.entity, key]).fetchall()]


# ------------------------------------------------------------------------------------ the corpus


def test_the_corpus_has_the_kinds_it_claims():
    assert len(CASES) >= 25 and len({c.kind for c in CASES}) == len(CASES)
    assert {INTAKES[c.model].path for c in CASES} == {"rest", "postgres", "mariadb", "csv-gbk", "csv", "xlsx"}


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_each_kind_of_bad_input_has_its_outcome(corpus, case: Case):
    con, model, key = corpus.con, case.model, case.key
    quarantined = _quarantined(con, model, key)
    staged = _staged(con, model, key)
    if case.outcome in ("missing_value", "wrong_shape", "conflicting_duplicate"):
        assert staged == [], f"{case.kind}: the bad row must not be staged"
        assert len(quarantined) == len(case.rows), quarantined
        for rule, detail, original in quarantined:
            assert rule == case.outcome, (rule, detail)
            assert case.column in detail, f"{case.kind}: detail {detail!r} does not name {case.column}"
            assert "row" in detail or "record" in detail, f"{case.kind}: detail {detail!r} has no row"
            assert original["_load_id"] and original["_row_number"]  # the original row, as landed
    elif case.outcome.startswith("raw:"):  # caught at intake already: never reaches staging
        [(rule, detail)] = con.execute(
            "SELECT rule, detail FROM quality.quarantine WHERE stage = 'raw' AND source = ? AND entity = ? "
            "AND detail LIKE ?", [INTAKES[model].source, INTAKES[model].entity, f"%{case.column}%"]).fetchall()
        assert rule == case.outcome.removeprefix("raw:") and not quarantined and not staged
    elif case.outcome == "superseded":
        assert len(staged) == 1 and not quarantined, quarantined
        rows = con.execute("SELECT reason, detail, winner_load_id = load_id, original_row FROM quality.superseded "
                           "WHERE model = ? AND record_key = ?", [model, key]).fetchall()
        assert len(rows) == len(case.rows) - 1
        reason, detail, same_load, original = rows[0]
        assert reason == "older_version_in_load" and same_load and case.column in detail
        assert json.loads(original)[case.column] is not None
    elif case.outcome == "duplicate":
        assert len(staged) == 1
        assert [rule for rule, _, _ in quarantined] == ["duplicate_row"] * (len(case.rows) - 1)
    elif case.outcome == "accepted":
        assert staged == [key] and not quarantined
    elif case.outcome.startswith("finding:"):
        assert len(staged) == 1 and not quarantined
        [(detail, values)] = con.execute(
            "SELECT detail, \"values\" FROM quality.reconciliation_issue WHERE model = ? AND kind = ? "
            "AND record_key = ?", [model, case.outcome.removeprefix("finding:"), key]).fetchall()
        assert case.column in detail and "党费缴纳_2024.csv" in detail and "党费缴纳_2025.csv" in detail
        assert "12.00" in detail and "15.00" in detail and "kept 党费缴纳_2025.csv" in detail
        assert case.column in values
    if case.staged:
        column, value = case.staged
        assert [str(v) for v in _staged(con, model, key, column)] == [value]
    if case.finding:
        details = [d for (d,) in con.execute("SELECT detail FROM quality.reconciliation_issue WHERE model = ? "
                                             "AND kind = ? AND record_key = ?", [model, case.finding, key]).fetchall()]
        assert details and all(case.column in d for d in details), details


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("model", list(INTAKES))
def test_the_good_rows_of_the_same_page_or_file_arrive_and_rows_are_conserved(corpus, model):
    con = corpus.con
    staged = {k for (k,) in con.execute(f"SELECT {INTAKES[model].staged_key} FROM staging.{model}").fetchall()}
    assert set(GOOD_KEYS[model]) <= staged
    c = conservation(con, STAGING_MODELS[model])
    assert c["latest_raw_versions"] == c["staged"] + c["quarantined"] + c["superseded"], c
    stats = corpus.stats[model]
    assert stats["rows_in"] + stats["rows_superseded"] == c["latest_raw_versions"]
    assert len(staged) == stats["rows_accepted"]  # one staged row per key


@pytest.mark.postgres
@pytest.mark.mariadb
def test_hr_sends_one_staff_number_twice_in_a_load_and_the_newer_wins(corpus):
    """The older version comes first in the page (the API sorts by updated_at): it used to be kept and the
    newer one quarantined as a duplicate. Now the newer one is staged and the older one superseded."""
    con = corpus.con
    assert con.execute("SELECT name, source_updated_at FROM staging.stg_hr_staff WHERE staff_no = '20109008'"
                       ).fetchall() == [("覃新名", HR_T.format(3))]
    [(detail, original)] = con.execute("SELECT detail, original_row FROM quality.superseded "
                                       "WHERE model = 'stg_hr_staff' AND record_key = '20109008'").fetchall()
    assert json.loads(original)["xm"] == "覃旧名" and HR_T.format(1) in detail
    assert not _quarantined(con, "stg_hr_staff", "20109008")


def test_conservation_is_a_blocking_check_of_each_staging_asset(tmp_path):
    """The check runs in Dagster on the staging asset, with its figures; a row gone missing fails it and
    holds back what is built on the table."""
    import dagster as dg
    import pyarrow as pa

    from hub.resources import WarehouseResource
    from hub.warehouse import connect
    from pipelines.staging import staging_checks

    assert {next(iter(c.check_keys)).asset_key.path[1] for c in staging_checks} == set(STAGING_MODELS)
    [check] = [c for c in staging_checks if next(iter(c.check_keys)).asset_key.path == ["staging", "stg_hr_staff"]]
    assert all(spec.blocking for spec in check.check_specs)
    path = tmp_path / "w.duckdb"
    con = connect(path)
    rows = [{**r, "zcdm": "012"} for r in _staff()] + [{**_template("stg_hr_staff", "20109008"), "xm": "旧"},
                                                        {**_template("stg_hr_staff", "20109008"),
                                                         "updated_at": HR_T.format(4)}]
    con.register("staff", pa.Table.from_pylist(rows))
    con.execute("CREATE TABLE raw.hr__staff AS SELECT * EXCLUDE (sjhm), CAST(sjhm AS VARCHAR) AS sjhm, 'L1' AS _load_id, "
                "'hr' AS _source, TIMESTAMPTZ '2026-03-01' AS _extracted_at, row_number() OVER () AS _row_number, "
                "NULL AS _row_hash, NULL::VARCHAR AS _file FROM staff")
    load_code_sets(con)
    stats = build_staging(con, "stg_hr_staff")
    con.close()
    assert (stats["rows_accepted"], stats["rows_rejected"], stats["rows_superseded"]) == (38, 1, 1)

    @dg.asset(key=["staging", "stg_hr_staff"])
    def stub() -> None:  # the table is built already
        return None

    key = dg.AssetKey(["publish", "probe"])

    @dg.asset(key=key, deps=[dg.AssetKey(["staging", "stg_hr_staff"])])
    def downstream() -> None:
        return None

    resources = {"warehouse": WarehouseResource(path=str(path))}
    ok = dg.materialize([stub, downstream, check], resources=resources, raise_on_error=False)
    [evaluation] = ok.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.check_name == "rows_conserved"
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta == {"latest_raw_versions": 40, "staged": 38, "quarantined": 1, "superseded": 1, "difference": 0}

    con = connect(path)
    con.execute("DELETE FROM quality.superseded")
    con.close()
    bad = dg.materialize([stub, downstream, check], resources=resources, raise_on_error=False)
    [evaluation] = bad.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["difference"].value == 1
    assert key not in {e.asset_key for e in bad.get_asset_materialization_events()}
