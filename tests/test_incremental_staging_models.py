"""Every incremental staging model other than grades (models/incremental.py INCREMENTAL_STAGING) gives the
same tables as a full build, table by table (the staging table and the model's rows in quality.quarantine,
quality.superseded, quality.value_finding and quality.reconciliation_issue), after one sequence of raw loads
run against each model's own columns: duplicates and conflicts that appear and are resolved, a corrected
value, a key sent with a trailing space and another with a full-width space, a NULL and a blank key part,
two versions of one key in one load ordered by the source timestamp (the older superseded), a value the
model's rules quarantine and later fixed, values the shipped plausibility checks quarantine or flag, and each
model's specifics: two raw months that are one staging month (党费 '2024-3' and '2024-03'), two raw years that
are one (评议年度 '2024' and '02024'), a case-insensitive key (介绍信编号), one file per year (cross-load
conflicts). The snapshot models stay full (no entry); tests/test_incremental_staging.py covers grades."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from models.build import STAGING_MODELS, build_staging
from models.incremental import INCREMENTAL_STAGING, build_staging_incremental
from models.plausibility import load_checks
from models.row_rules import conservation

AS_OF = date(2025, 6, 30)  # the run's as-of date for past_date checks


@dataclass(frozen=True)
class Spec:
    model: str
    base: dict[str, str | None]                 # a valid raw row, every column the model reads
    key: callable                               # n -> the raw key columns of key n
    vary: tuple[str, tuple[str, ...]]           # a column and valid values of it: corrections, conflicts
    bad: dict[str, str]                         # what the model's own rules quarantine
    implausible: dict[str, str] | None = None   # what a shipped plausibility check quarantines
    flagged: dict[str, str] | None = None       # what a shipped plausibility check flags (row kept)
    ts: str | None = None                       # the header's updated_at column
    files: bool = False                         # loads are named files (one export per year)
    extra: tuple[tuple[dict, ...], ...] = field(default=((), (), ()))  # per load: the model's specifics


def _p(n: int) -> str:
    return f"{n:04d}"


SPECS = [
    Spec("stg_activity_attendance",
         base={"meeting_id": "M1", "person_no": "P0", "status": "出席", "checkin_time": "2025-01-10T09:00:00+08:00",
               "updated_at": "2025-01-10T10:00:00+08:00"},
         key=lambda n: {"meeting_id": f"M{n % 4}", "person_no": f"P{n}"},
         vary=("status", ("出席", "请假", "缺席")), bad={"status": "迟到"}, ts="updated_at",
         extra=(({"meeting_id": "M7", "person_no": "P70", "checkin_time": "昨天"},), (),
                ({"meeting_id": "M7", "person_no": "P70"},))),
    Spec("stg_learning_study_records",
         base={"record_id": "R0", "user_no": "P1", "course_id": "LC1", "started_at": "1735693200000",
               "last_active_at": "1735696800000", "minutes": "45", "progress": "80", "quiz_score": "",
               "completed": "false", "updated_at": "2025-01-10T10:00:00+08:00"},
         key=lambda n: {"record_id": f"R{n}"}, vary=("minutes", ("45", "50", "55")),
         bad={"started_at": "2025-01-01"}, implausible={"progress": "150"}, ts="updated_at",
         extra=(({"record_id": "R70", "user_no": " "},), ({"record_id": "R71", "minutes": "-5"},),
                ({"record_id": "R70"}, {"record_id": "R71", "minutes": "5"}))),
    Spec("stg_party_dues",
         base={"人员编号": "P0", "姓名": "张三", "党组织编码": "D01", "缴费月份": "2024-03", "缴费基数": "8000.00",
               "应缴金额": "40.00", "实缴金额": "40.00", "缴费日期": "2024-03-05"},
         key=lambda n: {"人员编号": f"P{n}", "缴费月份": f"2024-{n % 12 + 1:02d}"},
         vary=("实缴金额", ("40.00", "45.00", "50.00")), bad={"缴费基数": "八千"},
         implausible={"实缴金额": "-50.00"}, flagged={"姓名": "韦\x1b小宝"}, files=True,
         extra=(({"人员编号": "P80", "缴费月份": "2024-03"}, {"人员编号": "P81", "缴费月份": "2024-04"}),
                ({"人员编号": "P80", "缴费月份": "2024-3", "实缴金额": "41.00"},),  # one staging month with P80's
                ({"人员编号": "P80", "缴费月份": "2024-03", "实缴金额": "42.00"},
                 {"人员编号": "P81", "缴费月份": "2024-4 "}))),
    Spec("stg_students",
         base={"studentNo": "S0", "name": "李四", "idCard": "450102200501010016", "gender": "男",
               "birthDate": "2005-01-01", "nation": "汉族", "politicalStatus": "GQTY", "collegeCode": "01",
               "collegeName": "计算机学院", "major": "软件工程", "className": "软件2301", "grade": "2023",
               "status": "在读", "enrolDate": "2023-09-01", "graduateDate": "", "counselorNo": "T001",
               "mobile": "13800000000", "updatedAt": "2025-01-10 10:00:00"},
         key=lambda n: {"studentNo": f"S{_p(n)}"}, vary=("major", ("软件工程", "网络工程", "数据科学")),
         bad={"gender": "X"}, implausible={"birthDate": "2099-01-01"}, flagged={"name": "周\u0007安卫"},
         ts="updatedAt"),
    Spec("stg_hr_staff",
         base={"gh": "T0", "xm": "王五", "sfzjh": "450102198001010011", "xbm": "1", "csrq": "1980-01-01",
               "mz": "汉族", "zzmm": "群众", "xl": "", "zcdm": "", "zc": "", "dwh": "01", "dwmc": "计算机学院",
               "jzglb": "", "dqzt": "11", "rzrq": "2010-09-01", "sjhm": "13900000000",
               "updated_at": "2025-01-10T10:00:00+08:00"},
         key=lambda n: {"gh": f"T{_p(n)}"}, vary=("dwmc", ("计算机学院", "数学学院", "外国语学院")),
         bad={"zcdm": "999"}, implausible={"rzrq": "2099-04-12"}, flagged={"xm": "周\u0007安卫"}, ts="updated_at"),
    Spec("stg_academic_courses",
         base={"kch": "C0", "kcmc": "高等数学", "xf": "4.0", "kclb": "必修", "kkdwh": "02"},
         key=lambda n: {"kch": f"C{n}"}, vary=("kcmc", ("高等数学", "线性代数", "概率论")), bad={"xf": "四"},
         implausible={"xf": "-1"}, flagged={"kcmc": "数\u200b学"}),
    Spec("stg_activity_meetings",
         base={"meeting_id": "M0", "org_code": "D01", "type": "党课", "title": "学习党章",
               "start_time": "2025-01-10T14:00:00+08:00", "end_time": "2025-01-10T16:00:00+08:00",
               "place": "会议室", "lecturer": "张三", "updated_at": "2025-01-10T10:00:00+08:00"},
         key=lambda n: {"meeting_id": f"M{n}"}, vary=("title", ("学习党章", "主题党日", "组织生活")),
         bad={"type": "茶话会"}, implausible={"end_time": "2025-01-10T13:00:00+08:00"},
         flagged={"lecturer": "张\u0007三"}, ts="updated_at"),
    Spec("stg_learning_courses",
         base={"course_id": "LC0", "title": "党史", "kind": "在线课程", "hours": "2.0", "published_at": "1735693200000"},
         key=lambda n: {"course_id": f"LC{n}"}, vary=("hours", ("2.0", "3.0", "4.5")), bad={"kind": "线下"},
         implausible={"hours": "-2"}, flagged={"title": "党\x07史"}),
    Spec("stg_party_assessments",
         base={"人员编号": "P0", "姓名": "赵六", "党组织编码": "D01", "评议年度": "2024", "评议等次": "合格"},
         key=lambda n: {"人员编号": f"P{n}", "评议年度": str(2020 + n % 5)},
         vary=("评议等次", ("合格", "优秀", "基本合格")), bad={"评议等次": "良"}, flagged={"姓名": "赵\x1b六"},
         files=True,
         extra=(({"人员编号": "P80", "评议年度": "2024"},), ({"人员编号": "P80", "评议年度": "02024", "评议等次": "优秀"},),
                ({"人员编号": "P80", "评议年度": "2024", "评议等次": "不合格"},))),
    Spec("stg_party_transfers",
         base={"介绍信编号": "JS0", "人员编号": "P1", "姓名": "钱七", "公民身份号码": "450102199001010087",
               "转出党组织编码": "D01", "转入党组织名称": "某大学党委", "转接类型": "省内", "转出日期": "2024-05-01",
               "回执日期": ""},
         key=lambda n: {"介绍信编号": f"js-{n}"}, vary=("转入党组织名称", ("某大学党委", "某公司党委", "某街道党工委")),
         bad={"转接类型": "国外"}, implausible={"转出日期": "2024-02-30"}, flagged={"回执日期": "2024-04-01"},
         extra=(({"介绍信编号": "ab-90"},), ({"介绍信编号": "AB-90 ", "转入党组织名称": "某公司党委"},),
                ({"介绍信编号": "Ab-90"},))),
]


def _sequence(s: Spec) -> list[list[dict]]:
    """Four loads of raw rows (overrides of ``s.base``), the same for every model."""
    col, values = s.vary
    first = next(iter(s.key(0)))   # the key column that gets spaces and a blank
    last = list(s.key(0))[-1]      # the key column that gets a NULL

    def k(n: int, **more) -> dict:
        return {**s.key(n), **more}

    def spaced(n: int, space: str) -> dict:
        key = s.key(n)
        return {**key, first: key[first] + space}

    ts = (lambda t: {s.ts: f"2025-0{t}-01T09:00:00+08:00"}) if s.ts else (lambda t: {})
    load1 = [k(1, **{col: values[0]}), k(2), k(2),                                  # a duplicate
             k(3, **{col: values[0]}), k(3, **{col: values[1]}),                     # a conflict
             k(4, **s.bad), {**spaced(5, " "), last: None},                          # rejected; a NULL key part
             *([k(9, **s.implausible)] if s.implausible else []),
             *([k(10, **s.flagged)] if s.flagged else []), *s.extra[0]]
    load2 = [k(1, **{col: values[1]}), k(3, **{col: values[0]}),                     # corrected; resolved
             {**spaced(1, " "), col: values[2]},                                     # k1 again, with a space
             k(4), spaced(7, "\u3000"), {**k(8), last: None},                        # fixed; full-width; NULL
             {**k(11), first: " "},                                                  # a blank key part
             *([k(9)] if s.implausible else []), *s.extra[1]]
    if s.ts:  # two versions of one key in one load: the older is superseded
        load2 += [k(6, **{col: values[0]}, **ts(1)), k(6, **{col: values[1]}, **ts(2))]
    load3 = [k(1, **{col: values[0]}), k(7, **{col: values[1]}), k(2, **{col: values[1]}), k(12),
             k(6, **{col: values[2]}), *([k(10)] if s.flagged else []), *s.extra[2]]
    return [load1, load2, load3, []]


def _lit(v) -> str:
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def _land(con, s: Spec, n: int, rows: list[dict]) -> None:
    m = STAGING_MODELS[s.model]
    cols = list(s.base)
    file = f"'{m.entity}_{2020 + n}.csv'" if s.files else "NULL"
    meta = (f"'L{n}' AS _load_id, '{m.source}' AS _source, TIMESTAMPTZ '2025-01-01' + INTERVAL {n} DAY "
            f"AS _extracted_at, NULL AS _row_hash, {file} AS _file")
    names = ", ".join(f'"{c}"' for c in [*cols, "_row_number"])
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = ?",
                         [m.raw_table]).fetchone()[0]
    if not rows:
        if not exists:
            raise AssertionError("the first load has rows")
        return
    values = ", ".join("(" + ", ".join(_lit({**s.base, **r}[c]) for c in cols) + f", {i})"
                       for i, r in enumerate(rows, 1))
    select = f"SELECT *, {meta} FROM (VALUES {values}) t({names})"
    con.execute(f'INSERT INTO raw."{m.raw_table}" {select}' if exists else f'CREATE TABLE raw."{m.raw_table}" AS {select}')


def _tables(con, s: Spec) -> dict[str, list[tuple]]:
    m = STAGING_MODELS[s.model]

    def rows(sql: str, *params) -> list[tuple]:
        return sorted(con.execute(sql, list(params)).fetchall(), key=repr)

    return {
        f"staging.{s.model}": rows(f"SELECT * FROM staging.{s.model}"),
        "quality.quarantine": rows("SELECT stage, source, entity, load_id, rule, record_key, detail, "
                                   "CAST(original_row AS VARCHAR) FROM quality.quarantine WHERE source = ? "
                                   "AND entity = ?", m.source, m.entity),
        "quality.superseded": rows("SELECT * EXCLUDE (superseded_at, original_row), CAST(original_row AS VARCHAR) "
                                   "FROM quality.superseded WHERE model = ?", s.model),
        "quality.value_finding": rows("SELECT * EXCLUDE (found_at) FROM quality.value_finding WHERE model = ?",
                                      s.model),
        "quality.reconciliation_issue": rows("SELECT * EXCLUDE (found_at, \"values\"), CAST(\"values\" AS VARCHAR) "
                                             "FROM quality.reconciliation_issue WHERE model = ?", s.model),
    }


@pytest.fixture(scope="module")
def checks():
    return load_checks()  # the shipped quality/plausibility.yaml




def test_every_non_snapshot_model_is_incremental_and_every_spec_is_one():
    assert {s.model for s in SPECS} == set(INCREMENTAL_STAGING) - {"stg_academic_grades"}
    full = {n for n, m in STAGING_MODELS.items() if m.snapshot or m.history}
    assert set(INCREMENTAL_STAGING) | full == set(STAGING_MODELS), (
        "a staging model is neither incremental nor a snapshot: list it in INCREMENTAL_STAGING with a Spec here "
        "if it is key-local, else say why beside INCREMENTAL_STAGING and name it in this test")
    assert not set(INCREMENTAL_STAGING) & full


def _run(pair, checks, spec: Spec, steps: list[tuple[list[dict], date]]) -> list[str]:
    """Land each step's rows in both databases, build incrementally at the step's as-of date and compare
    with a full build at the same date, table by table. Returns the incremental builds' modes."""
    inc, full = pair
    modes, seen, want = [], {}, {}
    staged = f"staging.{spec.model}"
    keys = ", ".join(f'CAST("{col}" AS VARCHAR)' for col in INCREMENTAL_STAGING[spec.model].values())
    for n, (rows, as_of) in enumerate(steps, 1):
        for c in pair:
            _land(c, spec, n, rows)
        if n > 1:
            inc.execute(f"CREATE OR REPLACE TEMP TABLE _staged_before AS SELECT * FROM {staged}")
        stats = build_staging_incremental(inc, spec.model, checks=checks, as_of=as_of)
        modes.append(stats["mode"])
        if stats["mode"] == "incremental":
            # the change log names every key whose staging rows changed, as the table holds the key
            # (models/delta.py; the incremental facts match their rows by it)
            unlogged = inc.execute(f"""WITH
                    added AS (SELECT * FROM {staged} EXCEPT ALL SELECT * FROM _staged_before),
                    gone AS (SELECT * FROM _staged_before EXCEPT ALL SELECT * FROM {staged}),
                    changed AS (SELECT [{keys}] AS key FROM added UNION SELECT [{keys}] AS key FROM gone)
                SELECT key FROM changed EXCEPT SELECT key FROM meta.delta_key WHERE model = ? AND seq = (
                    SELECT max(seq) FROM meta.delta_build WHERE model = ?)""", [spec.model, spec.model]).fetchall()
            assert not unlogged, f"after step {n}: staging keys changed but not logged: {unlogged}"
        # a first build is a full one, and with nothing new nothing changes: compare after the others
        # (a build of students or staff costs seconds on a busy machine: the macros' plans are large)
        if stats["mode"] == "incremental":
            build_staging(full, spec.model, checks=checks, as_of=as_of)
            want = _tables(full, spec)
            assert stats["keys_touched"] > 0
        got = _tables(inc, spec)
        want = want or got
        for table in want:
            assert got[table] == want[table], f"after step {n}: {table} differs"
            seen[table] = seen.get(table, 0) + len(want[table])
        c = conservation(inc, STAGING_MODELS[spec.model])
        assert c["latest_raw_versions"] == c["staged"] + c["quarantined"] + c["superseded"], f"after step {n}"
    exercised = {t for t, n in seen.items() if n}
    needed = {f"staging.{spec.model}", "quality.quarantine", "quality.reconciliation_issue"}  # key variants
    needed |= {"quality.superseded"} if spec.ts else set()
    needed |= {"quality.value_finding"} if spec.flagged else set()
    assert needed <= exercised, f"the loads never exercised {needed - exercised}"
    return modes


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model)
def test_incremental_equals_full_after_a_sequence_of_loads(pair, checks, spec: Spec):
    modes = _run(pair, checks, spec, [(rows, AS_OF) for rows in _sequence(spec)])
    assert modes == ["full", "incremental", "incremental", "skipped"]


# Models with past_date checks, and as-of dates that move across their rows' dates, both ways.
MOVES = {
    "stg_party_dues": [date(2024, 3, 1), date(2025, 6, 30), date(2025, 6, 30), date(2024, 3, 4), date(2099, 12, 31)],
    "stg_students": [date(2004, 6, 1), date(2025, 6, 30), date(2025, 6, 30), date(2004, 12, 31), date(2099, 12, 31)],
    "stg_hr_staff": [date(2009, 1, 1), date(2025, 6, 30), date(2025, 6, 30), date(2010, 8, 31), date(2099, 12, 31)],
}


def test_every_model_with_a_past_date_check_moves_its_as_of_here(checks):
    assert set(MOVES) == {n for n in INCREMENTAL_STAGING if any(c.kind == "past_date" for c in checks.get(n, []))}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.model in MOVES], ids=lambda s: s.model)
def test_a_moved_as_of_date_rejudges_only_what_it_may_change(pair, checks, spec: Spec):
    """The as-of date of the past_date checks (the data's latest date, unless configured) moves with the
    data: from one date to another the build stays incremental, with or without a new load, and equals a
    full build at the new date."""
    loads = [*_sequence(spec)[:3], [], [], []]
    dates = [*MOVES[spec.model], MOVES[spec.model][-1]]
    modes = _run(pair, checks, spec, list(zip(loads, dates, strict=True)))
    assert modes == ["full", "incremental", "incremental", "incremental", "incremental", "skipped"]
