"""The national 院校中台 party tables as published datasets, in the standard's own field names.

Six tables of the 职业院校数字基座 data standard (docs/national-tables.md): 党组织情况基础数据 ``zt_dzzqkjcsj``,
党员发展数据 ``zt_dyfzsj``, 党课数据 ``zt_dksj``, 党员活动数据 ``zt_dyhdsj``, 党员干部学习数据 ``zt_dygbxxsj`` and
党员组织关系转移数据 ``zt_dyzzgxzysj``. Each is a :class:`~hub.publisher.DatasetSpec` whose query reads the
warehouse through ``models/sql/national/<dataset>.sql`` (which returns the natural key ``_key`` and the hub's
values) and wraps it here with what every table shares:

- ``zjsjwyxbs`` = upper(substr(sha256(<table> ':' <natural key> ':' <secret>), 1, 32)): 32 upper-case hex
  characters, the same for the same record in every run, not reversible without the secret
  (``HUB_NATIONAL_KEY_SECRET``, else ``HUB_PERSON_KEY_SECRET``);
- ``xxdm``, the 10-digit school code (``HUB_SCHOOL_CODE``);
- ``sjcjsj``, "YYYYMMDD hhmmss" in Asia/Shanghai: the start of the newest load that landed rows in any
  source entity the table is built from (``quality.load_audit``), so a rerun on the same data gives the
  same rows;
- coded fields mapped through ``models/codesets/national_<code>.csv`` (code,name,hub_value).

A value that does not fit (longer than the standard allows, a date not YYYYMMDD, a required field
empty, a hub value with no code, a code table that contradicts itself) is never truncated or guessed:
the query raises, naming each problem, and the dataset's current version stays as it was. Call
:func:`bind_national` on the connection before publishing (it sets the school code and the secret), and
:func:`national_problems` to list every problem of a dataset.

Field names the domain reference does not give come from an open implementation of the standard or are
the hub's choice; ``models/codesets/national_fields.csv`` (dataset,field,published_as) renames any field.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hub.publisher import Column, DatasetSpec, PublishError
from hub.settings import Settings
from models import codesets_dir, sql_dir

SQL_DIR = sql_dir / "national"
FIELDS_CSV = codesets_dir / "national_fields.csv"
TIME_ZONE = "Asia/Shanghai"
SCHOOL_CODE_VARIABLE = "hub_national_xxdm"
KEY_VARIABLE = "hub_national_key"
MAX_LISTED = 20  # problems named in the error that blocks a publish (national_problems lists all)

DATE = ("[0-9]{8}", "a date YYYYMMDD")


@dataclass(frozen=True)
class Field:
    """A field of a national table. ``code_table`` names ``national_<code_table>.csv``, which maps the hub's
    value (what the SQL returns in this column) to the platform's code."""

    name: str
    description: str
    sensitivity: str = "public"
    kind: str = "text"                 # text or int
    max_length: int | None = None      # characters
    pattern: tuple[str, str] | None = None  # (regular expression the whole value matches, in words)
    code_table: str | None = None
    hub_value: str | None = None       # where the hub's value comes from, for messages
    required: bool = False
    max_value: int | None = None       # int fields: 0 .. max_value
    origin: str = "domain"             # domain (docs/domain.md), open implementation, or hub


@dataclass(frozen=True)
class NationalTable:
    dataset: str                 # published dataset name
    table: str                   # the standard's table code: the first part of zjsjwyxbs
    title: str                   # the standard's table name
    description: str
    fields: tuple[Field, ...]    # the table's own fields, between xxdm and sjcjsj
    loads: tuple[str, ...]       # source.entity whose newest load gives sjcjsj
    order_by: tuple[str, ...]    # field names


def _code(n: int) -> tuple[str, str]:
    return (f"[0-9A-Z]{{{n}}}", f"{n} upper-case letter(s) or digit(s)")


def _org_fields(origin: str = "domain") -> tuple[Field, ...]:
    return (
        Field("dzzmc", "党组织名称: the organisation's name (warehouse.dim_party_org.name), at most 150 characters.",
              max_length=150, required=True, origin=origin),
        Field("dzzbh", "党组织编号: the party system's 党组织编码, at most 60 characters.", max_length=60,
              required=True, origin=origin),
    )


def _participants(origin: str) -> tuple[Field, ...]:
    return (
        Field("cyxss", "参与学生数: participants whom the student system holds.", kind="int", max_value=99999,
              required=True, origin=origin),
        Field("cyjss", "参与教师数: participants whom HR holds (staff, retirees included) and the student system "
                       "does not.", kind="int", max_value=99999, required=True, origin=origin),
    )


ZT_DZZQKJCSJ = NationalTable(
    dataset="zt_dzzqkjcsj", table="dzzqkjcsj", title="党组织情况基础数据",
    description="院校中台 党组织情况基础数据: one row per party organisation of the college (党委, 党总支, 党支部, "
                "党小组), its current version, in the national standard's field names and codes.",
    fields=(
        Field("dzzlxm", "党组织类型码 (national_dzzlxm.csv): the organisation's type.", max_length=2, pattern=_code(2),
              code_table="dzzlxm", hub_value="dim_party_org.org_type", required=True),
        *_org_fields(),
        Field("lssjdzzmc", "隶属上级党组织名称: the parent organisation's name (empty for the college's 党委).",
              max_length=150),
        Field("dnldxm", "党内领导姓名: the secretary's (党小组: the group leader's) name.", "internal", max_length=36),
        Field("dnldjgh", "党内领导教工号: the secretary's 工号 (or 学号), at most 20 characters.", "internal",
              max_length=20),
        Field("dnldzwm", "党内领导职务码 (national_dnldzwm.csv): 书记, or 党小组组长 for a 党小组.", max_length=60,
              pattern=_code(2), code_table="dnldzwm", hub_value="secretary / group_leader by org_type"),
        Field("dzzdyrs", "党组织党员人数: members in good standing (full and probationary) of the organisation and "
                         "of every organisation under it (dim_party_org.members_rollup); the 党委 also counts members "
                         "whose 党组织编码 is not an organisation. A 党小组's members are derived from 党小组会 "
                         "attendance: empty, never 0, when there is none.", kind="int"),
        Field("dzzzt", "党组织状态 (national_dzzzt.csv): active, or gone from the party system's latest export.",
              max_length=1, pattern=_code(1), code_table="dzzzt", hub_value="dim_party_org.status", required=True),
    ),
    loads=("party.orgs", "party.members"),
    order_by=("dzzbh",),
)

ZT_DYFZSJ = NationalTable(
    dataset="zt_dyfzsj", table="dyfzsj", title="党员发展数据",
    description="院校中台 党员发展数据: one row per person in the party's development pipeline or admitted, in good "
                "standing, with their stage and the dates they became activist, probationary and full member.",
    fields=(
        Field("dzzlxm", "党组织类型码 (national_dzzlxm.csv) of the person's organisation.", max_length=2,
              pattern=_code(2), code_table="dzzlxm", hub_value="dim_party_org.org_type", required=True),
        *_org_fields(),
        Field("xdylxm", "新党员类型码 (national_xdylxm.csv): student, staff or retired staff.", max_length=2,
              pattern=_code(2), code_table="xdylxm", hub_value="dim_party_member.category", required=True),
        Field("xm", "姓名: the person's name (survivor across systems), at most 36 characters.", "internal",
              max_length=36, required=True),
        Field("rybh", "人员编号: 学号 or 工号, at most 20 characters.", "internal", max_length=20, required=True),
        Field("dyfzztm", "党员发展状态码 (national_dyfzztm.csv): 入党申请人 ... 正式党员.", max_length=2,
              pattern=_code(2), code_table="dyfzztm", hub_value="dim_party_member.stage", required=True),
        Field("cwjjfzrq", "成为积极分子日期 YYYYMMDD (列为积极分子日期).", max_length=8, pattern=DATE),
        Field("cwybdyrq", "成为预备党员日期 YYYYMMDD (入党日期).", max_length=8, pattern=DATE),
        Field("cwzsdyrq", "成为正式党员日期 YYYYMMDD (转正日期).", max_length=8, pattern=DATE),
    ),
    loads=("party.members", "party.development", "party.orgs", "hr.staff", "student.students"),
    order_by=("dzzbh", "rybh"),
)

ZT_DKSJ = NationalTable(
    dataset="zt_dksj", table="dksj", title="党课数据",
    description="院校中台 党课数据: one row per 党课 held by a party organisation, with its lecturer, content, dates "
                "and the students and staff who attended.",
    fields=(
        *_org_fields("open implementation"),
        Field("hdxsm", "活动形式码 (national_hdxsm.csv): on line or in person, from the place.", max_length=2,
              pattern=_code(2), code_table="hdxsm", hub_value="offline / online from the place"),
        Field("dkzjr", "党课主讲人: the lecturer's name.", "internal", max_length=36),
        Field("hdnr", "活动内容: the lecture's title.", max_length=2000),
        Field("hdksrq", "活动开始日期 YYYYMMDD (Beijing date of the start).", max_length=8, pattern=DATE, required=True),
        Field("hdjsrq", "活动结束日期 YYYYMMDD (Beijing date of the end; empty when the app recorded none).",
              max_length=8, pattern=DATE),
        *_participants("domain"),
    ),
    loads=("activity.meetings", "activity.attendance", "party.orgs", "hr.staff", "student.students"),
    order_by=("hdksrq", "dzzbh", "zjsjwyxbs"),
)

ZT_DYHDSJ = NationalTable(
    dataset="zt_dyhdsj", table="dyhdsj", title="党员活动数据",
    description="院校中台 党员活动数据: one row per meeting of a party organisation other than 党课 (支部党员大会, "
                "支委会, 党小组会, 主题党日, 组织生活会), with place, content, dates and participants.",
    fields=(
        *_org_fields("open implementation"),
        Field("hdxs", "活动形式 (national_hdxs.csv): the meeting type.", max_length=1, pattern=_code(1),
              code_table="hdxs", hub_value="fact_org_activity.meeting_type", required=True),
        Field("hddd", "活动地点: the place.", max_length=180),
        Field("hdnr", "活动内容: the meeting's title.", max_length=2000, origin="open implementation"),
        Field("hdksrq", "活动开始日期 YYYYMMDD (Beijing date of the start).", max_length=8, pattern=DATE, required=True,
              origin="open implementation"),
        Field("hdjsrq", "活动结束日期 YYYYMMDD (Beijing date of the end; empty when the app recorded none).",
              max_length=8, pattern=DATE, origin="open implementation"),
        *_participants("open implementation"),
    ),
    loads=("activity.meetings", "activity.attendance", "party.orgs", "hr.staff", "student.students"),
    order_by=("hdksrq", "dzzbh", "zjsjwyxbs"),
)

ZT_DYGBXXSJ = NationalTable(
    dataset="zt_dygbxxsj", table="dygbxxsj", title="党员干部学习数据",
    description="院校中台 党员干部学习数据: one row per party organisation, online course and term: the channel and "
                "content of the learning, when it ran and how many of the organisation's members took part.",
    fields=(
        *_org_fields("open implementation"),
        Field("dygbxxpxzytjhztm", "党员干部学习培训主要途径和载体码 (national_dygbxxpxzytjhztm.csv): the course kind.",
              max_length=2, pattern=_code(2), code_table="dygbxxpxzytjhztm", hub_value="course kind",
              required=True, origin="open implementation"),
        Field("dygbxxpxnrm", "党员干部学习培训内容码 (national_dygbxxpxnrm.csv): the course's topic.", max_length=2,
              pattern=_code(2), code_table="dygbxxpxnrm", hub_value="course topic (title without prefix and 第N讲)",
              required=True, origin="open implementation"),
        Field("hdksrq", "活动开始日期 YYYYMMDD: the first start of a study record.", max_length=8, pattern=DATE,
              required=True, origin="open implementation"),
        Field("hdjsrq", "活动结束日期 YYYYMMDD: the last activity of a study record.", max_length=8, pattern=DATE,
              origin="open implementation"),
        *_participants("open implementation"),
    ),
    loads=("learning.study_records", "learning.courses", "party.members", "party.transfers", "party.orgs",
           "hr.staff", "student.students"),
    order_by=("dzzbh", "hdksrq", "zjsjwyxbs"),
)

ZT_DYZZGXZYSJ = NationalTable(
    dataset="zt_dyzzgxzysj", table="dyzzgxzysj", title="党员组织关系转移数据",
    description="院校中台 党员组织关系转移数据: one row per 组织关系转接 letter: who left, when, and where the "
                "relationship went.",
    fields=(
        Field("xm", "姓名: the person's name (survivor across systems), at most 36 characters.", "internal",
              max_length=36, required=True),
        Field("rybh", "人员编号: 学号 or 工号, at most 20 characters.", "internal", max_length=20, required=True),
        Field("lxrq", "离校日期 YYYYMMDD: the student system's 毕业日期 of a graduate, else the letter's 转出日期.",
              max_length=8, pattern=DATE, required=True),
        Field("zzgxqx", "组织关系去向: the receiving organisation (转入党组织名称), at most 150 characters.",
              max_length=150),
        Field("dyfzztm", "党员发展状态码 (national_dyfzztm.csv): the stage at transfer, 04 预备党员 or 05 正式党员 — "
                         "the receiving committee follows a 预备党员's probation.", max_length=2, pattern=_code(2),
              code_table="dyfzztm", hub_value="dim_party_member.stage at transfer", origin="hub"),
    ),
    loads=("party.transfers", "hr.staff", "student.students"),
    order_by=("lxrq", "rybh", "zjsjwyxbs"),
)

NATIONAL_TABLES: tuple[NationalTable, ...] = (ZT_DZZQKJCSJ, ZT_DYFZSJ, ZT_DKSJ, ZT_DYHDSJ, ZT_DYGBXXSJ, ZT_DYZZGXZYSJ)


def common_fields(table: NationalTable) -> tuple[Field, Field, Field]:
    """zjsjwyxbs, xxdm, sjcjsj: on every row of every table."""
    personal = any(f.name in ("xm", "rybh") for f in table.fields)  # one row per person: the key is personal
    return (
        Field("zjsjwyxbs", "主键数据唯一性标识: upper(substr(sha256(table:natural key:secret), 1, 32)); the same for "
                           "the same record in every run, not reversible.", "internal" if personal else "public",
              max_length=32, pattern=("[0-9A-Z]{32}", "32 upper-case letters or digits"), required=True),
        Field("xxdm", "学校代码: the college's 10-digit school code (HUB_SCHOOL_CODE).", max_length=10,
              pattern=("[0-9]{10}", "10 digits"), required=True),
        Field("sjcjsj", "数据采集时间 'YYYYMMDD hhmmss' (Asia/Shanghai): start of the newest load that landed rows "
                        "in a source of this table.", max_length=15,
              pattern=("[0-9]{8} [0-9]{6}", "YYYYMMDD hhmmss"), required=True),
    )


def all_fields(table: NationalTable) -> tuple[Field, ...]:
    """The table's fields in the order the standard lists them: zjsjwyxbs, xxdm, its own, sjcjsj."""
    key, school, collected = common_fields(table)
    return (key, school, *table.fields, collected)


# ---------------------------------------------------------------------------------------------- config


def read_field_names(path: Path) -> tuple[dict[tuple[str, str], str], list[tuple[str, str]]]:
    """``national_fields.csv``: (dataset, field) -> published name, and the problems found in the file as
    (dataset, message); a line naming no known dataset is a problem of every dataset ("*")."""
    names: dict[tuple[str, str], str] = {}
    problems: list[tuple[str, str]] = []
    if not path.exists():
        return names, problems
    known = {t.dataset: {f.name for f in all_fields(t)} for t in NATIONAL_TABLES}
    with path.open(encoding="utf-8-sig", newline="") as f:  # a BOM from a spreadsheet is fine
        for line, row in enumerate(csv.DictReader(f), 2):
            dataset, field = (row.get("dataset") or "").strip(), (row.get("field") or "").strip()
            published = (row.get("published_as") or "").strip() or field
            where = f"{path.name} line {line}"
            if dataset not in known or field not in known[dataset]:
                problems.append((dataset if dataset in known else "*",
                                 f"{where}: {dataset}.{field} is not a field of a national table"))
            elif not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", published):
                problems.append((dataset, f"{where}: published_as {published!r} is not a lower-case "
                                          "pinyin-initial name"))
            else:
                names[(dataset, field)] = published
    return names, problems


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _code_table(codesets: Path, name: str) -> str:
    path = codesets / f"national_{name}.csv"
    return (f"read_csv({_sql_str(str(path))}, header = true, auto_detect = false, "
            "columns = {'code': 'VARCHAR', 'name': 'VARCHAR', 'hub_value': 'VARCHAR'})")


def _queries(t: NationalTable, names: dict[str, str], config_problems: list[str],
             codesets: Path) -> tuple[str, str]:
    """(the dataset's query, the query that lists its problems)."""
    body = (SQL_DIR / f"{t.dataset}.sql").read_text(encoding="utf-8").strip().rstrip(";")
    fields = all_fields(t)
    loads = ", ".join(_sql_str(x) for x in t.loads)
    ctes = [
        f"_src AS (\n{body}\n)",
        f"""_ctx AS (
    SELECT getvariable({_sql_str(SCHOOL_CODE_VARIABLE)}) AS xxdm, getvariable({_sql_str(KEY_VARIABLE)}) AS secret,
           (SELECT strftime(timezone('{TIME_ZONE}', max(started_at)), '%Y%m%d %H%M%S') FROM quality.load_audit
            WHERE status = 'ok' AND rows_landed > 0 AND source || '.' || entity IN ({loads})) AS sjcjsj
)""",
    ]
    coded = [f for f in t.fields if f.code_table]
    for f in coded:
        ctes.append(f"""_cs_{f.name} AS (
    SELECT trim(hub_value) AS hub_value, min(trim(code)) AS code, count(DISTINCT trim(code)) AS codes,
           string_agg(DISTINCT trim(code), ', ' ORDER BY trim(code)) AS all_codes
    FROM {_code_table(codesets, f.code_table)} WHERE nullif(trim(hub_value), '') IS NOT NULL GROUP BY 1
)""")
    select = [f"upper(substr(sha256({_sql_str(t.table + ':')} || s._key || ':' || c.secret), 1, 32)) AS zjsjwyxbs",
              "c.xxdm AS xxdm"]
    joins = []
    for f in t.fields:
        if f.code_table:
            select += [f"m_{f.name}.code AS {f.name}", f"CAST(s.{f.name} AS VARCHAR) AS _hub_{f.name}"]
            joins.append(f"LEFT JOIN _cs_{f.name} m_{f.name} ON m_{f.name}.hub_value = CAST(s.{f.name} AS VARCHAR)")
        elif f.kind == "int":
            select.append(f"CAST(s.{f.name} AS INTEGER) AS {f.name}")
        else:
            select.append(f"CAST(s.{f.name} AS VARCHAR) AS {f.name}")
    select += ["c.sjcjsj AS sjcjsj", "CAST(s._key AS VARCHAR) AS _key"]
    ctes.append("_rows AS (\n    SELECT " + ",\n           ".join(select) + "\n    FROM _src s CROSS JOIN _ctx c\n    "
                + "\n    ".join(joins) + "\n)")

    checks = [f"SELECT {_sql_str(p)}" for p in config_problems]
    checks += [
        "SELECT 'xxdm: the school code is ' || coalesce('''' || xxdm || '''', 'not set') || ', not 10 digits: set "
        "HUB_SCHOOL_CODE and call pipelines.national.bind_national(con) before publishing' FROM _ctx "
        "WHERE NOT coalesce(regexp_full_match(xxdm, '[0-9]{10}'), false)",
        "SELECT 'zjsjwyxbs: no key secret is set: call pipelines.national.bind_national(con) before publishing' "
        "FROM _ctx WHERE coalesce(secret, '') = ''",
        "SELECT 'natural key ' || _key || ' appears ' || count(*) || ' times, so zjsjwyxbs would not be unique' "
        "FROM _rows WHERE _key IS NOT NULL GROUP BY _key HAVING count(*) > 1",
    ]
    for f in coded:
        csv_name = f"models/codesets/national_{f.code_table}.csv"
        pattern, words = f.pattern or (".*", "")
        checks += [
            f"SELECT '{csv_name}: hub value ''' || hub_value || ''' is mapped to several codes (' || all_codes || ')' "
            f"FROM _cs_{f.name} WHERE codes > 1",
            f"SELECT '{csv_name}: code ''' || coalesce(trim(code), '') || ''' (hub value ''' || "
            f"coalesce(trim(hub_value), '') || ''') does not fit {f.name}, which takes {words}' "
            f"FROM {_code_table(codesets, f.code_table)} WHERE NOT coalesce(regexp_full_match(trim(code), "
            f"{_sql_str(pattern)}), false)",
            f"SELECT '{f.name}: ' || count(*) || ' record(s) have hub value ''' || _hub_{f.name} || ''' "
            f"({f.hub_value}), which has no code in {csv_name}: add a row code,name,hub_value (e.g. record ' "
            f"|| min(_key) || ')' FROM _rows WHERE _hub_{f.name} IS NOT NULL AND {f.name} IS NULL "
            f"GROUP BY _hub_{f.name}",
        ]
    for f in fields:
        text = f.kind == "text"
        if f.max_length and text:
            checks.append(
                f"SELECT '{f.name}: ' || count(*) || ' record(s) longer than {f.max_length} characters, the most "
                f"the standard allows (e.g. record ' || arg_max(_key, length({f.name})) || ', ' || "
                f"max(length({f.name})) || ' characters): correct the source; values are never truncated' "
                f"FROM _rows WHERE length({f.name}) > {f.max_length} HAVING count(*) > 0")
        if f.pattern and text and not f.code_table:
            checks.append(
                f"SELECT '{f.name}: ' || count(*) || ' record(s) are not {f.pattern[1]} (e.g. record ' || "
                f"min(_key) || ': ''' || min({f.name}) || ''')' FROM _rows WHERE {f.name} IS NOT NULL AND "
                f"NOT regexp_full_match({f.name}, {_sql_str(f.pattern[0])}) HAVING count(*) > 0")
        if f.required:
            unmapped = f" AND _hub_{f.name} IS NULL" if f.code_table else ""
            checks.append(
                f"SELECT '{f.name}: ' || count(*) || ' record(s) have no value, and the standard requires one "
                f"(e.g. record ' || coalesce(min(_key), 'without a key') || ')' FROM _rows "
                f"WHERE {f.name} IS NULL{unmapped} HAVING count(*) > 0")
        if f.kind == "int" and f.max_value is not None:
            checks.append(
                f"SELECT '{f.name}: ' || count(*) || ' record(s) outside 0..{f.max_value} (e.g. record ' || "
                f"min(_key) || ')' FROM _rows WHERE {f.name} < 0 OR {f.name} > {f.max_value} HAVING count(*) > 0")
    ctes.append("_problems AS (\n    SELECT msg FROM (\n    " + "\n    UNION ALL\n    ".join(checks)
                + "\n    ) AS p(msg) WHERE msg IS NOT NULL\n)")
    with_ = "WITH " + ",\n".join(ctes)

    columns = ", ".join(f"_rows.{f.name} AS {_ident(names.get(f.name, f.name))}" for f in fields)
    query = f"""{with_},
_verdict AS (
    SELECT count(*) AS n, array_to_string(list_slice(list(msg ORDER BY msg), 1, {MAX_LISTED}), '; ') AS listed
    FROM _problems
)
SELECT {columns}
FROM _rows CROSS JOIN _verdict
WHERE CASE WHEN _verdict.n > 0
           THEN error({_sql_str(t.dataset + ' not published: ')} || _verdict.n || ' problem(s): ' || _verdict.listed
                      || CASE WHEN _verdict.n > {MAX_LISTED} THEN '; ... (pipelines.national.national_problems lists '
                              || 'them all)' ELSE '' END)
           ELSE true END"""
    problems = f"{with_}\nSELECT msg FROM _problems ORDER BY msg"
    return query, problems


@dataclass(frozen=True)
class NationalBuild:
    datasets: tuple[DatasetSpec, ...]
    problem_queries: dict[str, str]            # dataset -> query listing its problems
    published_names: dict[str, dict[str, str]]  # dataset -> field -> published column name


def build_national(codesets: Path = codesets_dir) -> NationalBuild:
    """The national datasets, with the code tables and field names of ``codesets`` (national_*.csv)."""
    fields_csv = codesets / FIELDS_CSV.name
    overrides, config_problems = read_field_names(fields_csv)
    specs, problem_queries, published = [], {}, {}
    for t in NATIONAL_TABLES:
        fields = all_fields(t)
        names = {f.name: overrides.get((t.dataset, f.name), f.name) for f in fields}
        mine = [msg for dataset, msg in config_problems if dataset in (t.dataset, "*")]
        if len(set(names.values())) != len(names):
            mine.append(f"{fields_csv.name}: two fields of {t.dataset} are published under one name")
        query, problems = _queries(t, names, mine, codesets)
        specs.append(DatasetSpec(
            name=t.dataset, description=t.description, query=query,
            order_by=", ".join(_ident(names[f]) for f in t.order_by),
            columns=tuple(Column(names[f.name], f.description, f.sensitivity) for f in fields),
            audience="internal"))
        problem_queries[t.dataset] = problems
        published[t.dataset] = names
    return NationalBuild(tuple(specs), problem_queries, published)


NATIONAL = build_national()
NATIONAL_DATASETS: tuple[DatasetSpec, ...] = NATIONAL.datasets

# The warehouse tables (Dagster assets ["warehouse", name]) each national dataset reads.
def _warehouse_models_read(dataset: str) -> list[str]:
    """The warehouse models (Dagster assets) a national table's SQL reads, by the SQL parser: a side table
    (bridge_person_record) counts as the model that writes it (dim_person). No hand-kept list to drift."""
    from models.build import model_of
    from models.sqlrefs import table_refs

    path = SQL_DIR / f"{dataset}.sql"
    reads = table_refs(path.read_text(encoding="utf-8"), where=str(path)).reads
    return sorted({model_of(schema, name)[1] for schema, name in reads if schema == "warehouse"})


NATIONAL_SOURCES: dict[str, list[str]] = {t.dataset: _warehouse_models_read(t.dataset) for t in NATIONAL_TABLES}


# ---------------------------------------------------------------------------------------------- use


def bind_national(con: duckdb.DuckDBPyConnection, *, school_code: str | None = None,
                  key_secret: str | None = None, settings: Settings | None = None) -> None:
    """Give the connection what the national queries read: the school code and the secret of zjsjwyxbs.
    A run passes both from its resources (run_settings.school_code, HUB_SCHOOL_CODE; the identity
    resource's national key, HUB_NATIONAL_KEY_SECRET, else its person key); without them they come from
    ``settings`` (the school code, and the person key as the secret)."""
    settings = settings or Settings.from_env()
    code = settings.school_code if school_code is None else school_code
    secret = key_secret or settings.person_key_secret
    if not re.fullmatch(r"[0-9]{10}", code or ""):
        raise PublishError(f"HUB_SCHOOL_CODE must be the college's 10-digit 学校代码 (xxdm), got {code!r}")
    if not secret:
        raise PublishError("no secret for zjsjwyxbs: set HUB_NATIONAL_KEY_SECRET or HUB_PERSON_KEY_SECRET")
    con.execute(f"SET VARIABLE {SCHOOL_CODE_VARIABLE} = ?", [code])
    con.execute(f"SET VARIABLE {KEY_VARIABLE} = ?", [secret])


def national_problems(con: duckdb.DuckDBPyConnection, dataset: str, *, build: NationalBuild = NATIONAL) -> list[str]:
    """Every problem that blocks publishing ``dataset`` now (empty: it can be published)."""
    return [r[0] for r in con.execute(build.problem_queries[dataset]).fetchall()]
