"""The national 院校中台 party tables (pipelines/national.py), published from a warehouse built from the
small simulated campus and read back with DuckDB: field names and order, the common fields, dates, counts
against the warehouse, stability of zjsjwyxbs, and the problems that block a publish."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from campus_sim.inbox import drop_party_exports
from campus_sim.servers import SourceServers
from connectors import load_entity, load_sources
from hub.publisher import Publisher, PublishError, read_catalog, read_manifest
from hub.settings import PROJECT_ROOT, Settings
from hub.warehouse import connect
from models import codesets_dir
from pipelines.national import (
    NATIONAL_DATASETS,
    NATIONAL_SOURCES,
    NATIONAL_TABLES,
    SCHOOL_CODE_VARIABLE,
    build_national,
    national_problems,
)
from pipelines.national import bind_national as bind
from tests.campus_graph import all_but_suites, materialise, served_campus

SCHOOL = "4145000001"
SECRET = "test-secret"  # the national key the tests bind (zjsjwyxbs); person_key is the graph's own

# The tables as the standard (docs/domain.md and the open implementation of the interface) lays them out.
FIELDS = {
    "zt_dzzqkjcsj": ["zjsjwyxbs", "xxdm", "dzzlxm", "dzzmc", "dzzbh", "lssjdzzmc", "dnldxm", "dnldjgh", "dnldzwm",
                     "dzzdyrs", "dzzzt", "sjcjsj"],
    "zt_dyfzsj": ["zjsjwyxbs", "xxdm", "dzzlxm", "dzzmc", "dzzbh", "xdylxm", "xm", "rybh", "dyfzztm", "cwjjfzrq",
                  "cwybdyrq", "cwzsdyrq", "sjcjsj"],
    "zt_dksj": ["zjsjwyxbs", "xxdm", "dzzmc", "dzzbh", "hdxsm", "dkzjr", "hdnr", "hdksrq", "hdjsrq", "cyxss", "cyjss",
                "sjcjsj"],
    "zt_dyhdsj": ["zjsjwyxbs", "xxdm", "dzzmc", "dzzbh", "hdxs", "hddd", "hdnr", "hdksrq", "hdjsrq", "cyxss", "cyjss",
                  "sjcjsj"],
    "zt_dygbxxsj": ["zjsjwyxbs", "xxdm", "dzzmc", "dzzbh", "dygbxxpxzytjhztm", "dygbxxpxnrm", "hdksrq", "hdjsrq",
                    "cyxss", "cyjss", "sjcjsj"],
    "zt_dyzzgxzysj": ["zjsjwyxbs", "xxdm", "xm", "rybh", "lxrq", "zzgxqx", "dyfzztm", "sjcjsj"],
}
DATES = {"cwjjfzrq", "cwybdyrq", "cwzsdyrq", "hdksrq", "hdjsrq", "lxrq"}
LIMITS = {"dzzmc": 150, "dzzbh": 60, "lssjdzzmc": 150, "dnldxm": 36, "dnldjgh": 20, "xm": 36, "rybh": 20,
          "dkzjr": 36, "hddd": 180, "hdnr": 2000, "zzgxqx": 150, "dzzlxm": 2, "xdylxm": 2, "dyfzztm": 2, "hdxsm": 2,
          "hdxs": 1, "dzzzt": 1}
SPECS = {s.name: s for s in NATIONAL_DATASETS}


def _load(con: duckdb.DuckDBPyConnection, work: Path, campus_dir: Path) -> None:
    """Every source of the small campus loaded again into ``con`` through the real connectors and servers,
    straight (no asset graph): the rerun below."""
    inbox = work / "inbox"
    drop_party_exports(campus_dir, inbox)
    with SourceServers(campus_dir) as servers, pytest.MonkeyPatch.context() as mp:
        env = Settings.from_env({"HUB_VAR_DIR": str(work)}).source_env(servers.urls)
        env |= {"HUB_ACADEMIC_URL": f"sqlite:///{campus_dir / 'academic' / 'academic.sqlite'}",
                "HUB_INBOX_DIR": str(inbox)}
        for k, v in env.items():
            mp.setenv(k, v)
        for source in load_sources(PROJECT_ROOT / "sources.yaml").values():
            for entity in source.entities.values():
                load_entity(con, work / "raw", source, entity)


def _national_models() -> dg.AssetSelection:
    """The warehouse assets the national tables read."""
    return dg.AssetSelection.assets(*sorted({dg.AssetKey(["warehouse", t]) for tables in NATIONAL_SOURCES.values()
                                             for t in tables}, key=str))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("national")


@pytest.fixture(scope="module")
def wh(work, copy_campus_warehouse):
    """A copy of the small campus's warehouse, built through the asset graph (tests/conftest.py: every source
    through the real connectors and servers), bound for the national tables. A copy: the tests here load
    into it and rebind it."""
    con = connect(copy_campus_warehouse(work / "warehouse.duckdb"))
    bind(con, school_code=SCHOOL, key_secret=SECRET)
    yield con
    con.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory, wh) -> str:
    """Every national dataset published once."""
    root = str(tmp_path_factory.mktemp("published"))
    for spec in NATIONAL_DATASETS:
        manifest = Publisher(root).publish(wh, spec, lineage=[], quality={})
        assert manifest["changed"]
    return root


def _read(root: str, name: str) -> tuple[list[str], list[dict]]:
    manifest = read_manifest(root, name)
    paths = [str(Path(root) / name / manifest["version"] / f["path"]) for f in manifest["files"]]
    rel = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [paths])
    columns = [d[0] for d in rel.description]
    return columns, [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]


def _rows(root: str, name: str) -> list[dict]:
    return _read(root, name)[1]


def _codes(table: str) -> dict[str, str]:
    """code -> hub value of models/codesets/national_<table>.csv."""
    with (codesets_dir / f"national_{table}.csv").open(encoding="utf-8") as f:
        return {r["code"]: r["hub_value"] for r in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------------- shape


@pytest.mark.parametrize("name", list(FIELDS))
def test_field_names_and_order(root, name):
    columns, rows = _read(root, name)
    assert columns == FIELDS[name]
    assert [c["name"] for c in read_manifest(root, name)["schema"]["columns"]] == FIELDS[name]
    assert rows, f"{name} is empty on the small campus"


def test_the_six_tables_are_declared_with_their_warehouse_sources():
    assert [s.name for s in NATIONAL_DATASETS] == list(FIELDS)
    assert set(NATIONAL_SOURCES) == set(FIELDS)
    # read from the SQL by the parser: the organisations' table reads only dim_party_org (members_rollup is a
    # column of it), not dim_party_member as the old hand-kept list said; a side table counts as its model
    assert NATIONAL_SOURCES["zt_dzzqkjcsj"] == ["dim_party_org"]
    assert NATIONAL_SOURCES["zt_dyzzgxzysj"] == ["dim_party_member", "dim_person", "fact_relation_transfer"]
    assert "bridge_person_record" not in NATIONAL_SOURCES["zt_dksj"] and "dim_person" in NATIONAL_SOURCES["zt_dksj"]


@pytest.mark.parametrize("name", list(FIELDS))
def test_common_fields(wh, root, name):
    rows = _rows(root, name)
    keys = [r["zjsjwyxbs"] for r in rows]
    assert all(re.fullmatch(r"[0-9A-Z]{32}", k) for k in keys)
    assert len(set(keys)) == len(keys), "zjsjwyxbs must be unique in a table"
    assert {r["xxdm"] for r in rows} == {SCHOOL}
    # sjcjsj: the newest load that landed rows in one of the table's sources, Beijing time
    loads = next(t.loads for t in NATIONAL_TABLES if t.dataset == name)
    started = [s for e, s in wh.execute("SELECT source || '.' || entity, started_at FROM quality.load_audit "
                                        "WHERE status = 'ok' AND rows_landed > 0").fetchall() if e in loads]
    expected = max(started).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d %H%M%S")
    assert {r["sjcjsj"] for r in rows} == {expected}


@pytest.mark.parametrize("name", list(FIELDS))
def test_dates_and_lengths(root, name):
    for row in _rows(root, name):
        for field, value in row.items():
            if field in DATES and value is not None:
                assert re.fullmatch(r"[0-9]{8}", value) and datetime.strptime(value, "%Y%m%d")
            if field in LIMITS and value is not None:
                assert len(value) <= LIMITS[field], (field, value)


def test_personal_data_stays_out(wh, root):
    """xm and rybh are internal; no ID or mobile number appears in any national table."""
    for spec in NATIONAL_DATASETS:
        spec.check()
        assert spec.audience == "internal"
        sensitivity = {c.name: c.sensitivity for c in spec.columns}
        assert "restricted" not in sensitivity.values()
        assert all(sensitivity.get(c) in (None, "internal") for c in ("xm", "rybh", "dnldxm", "dnldjgh", "dkzjr"))
    secrets = {v for row in wh.execute("SELECT id_number, phone FROM warehouse.dim_person").fetchall()
               for v in row if v}
    assert len(secrets) > 1000
    for name in FIELDS:
        for row in _rows(root, name):
            for value in row.values():
                if isinstance(value, str):
                    assert value not in secrets
                    assert not re.fullmatch(r"[0-9]{17}[0-9X]|1[3-9][0-9]{9}", value)


# ---------------------------------------------------------------------------------------------- content


def test_organisations_match_the_warehouse(wh, root):
    orgs = {r[0]: r[1:] for r in wh.execute(
        "SELECT org_code, name, org_type, parent_code, status, full_members + probationary_members, secretary_no "
        "FROM warehouse.dim_party_org WHERE is_current").fetchall()}
    rows = {r["dzzbh"]: r for r in _rows(root, "zt_dzzqkjcsj")}
    assert set(rows) == set(orgs)
    types, statuses = _codes("dzzlxm"), _codes("dzzzt")
    children = defaultdict(list)
    for code, (_, org_type, parent, *_rest) in orgs.items():
        if org_type != "党小组":  # a 党小组's members are already its branch's
            children[parent].append(code)

    def tree_members(code: str) -> int:
        return orgs[code][4] + sum(tree_members(c) for c in children[code])

    # members in good standing whose 党组织编码 is not an active organisation: counted in the 党委
    unknown = wh.execute(
        "SELECT count(*) FROM warehouse.dim_party_member m WHERE m.is_current AND m.register = 'member' "
        "AND m.status = '正常' AND m.org_code NOT IN (SELECT org_code FROM warehouse.dim_party_org "
        "WHERE is_current AND status = 'active')").fetchone()[0]
    assert unknown > 0
    for code, (name, org_type, parent, status, members, secretary_no) in orgs.items():
        row = rows[code]
        assert (row["dzzmc"], types[row["dzzlxm"]], statuses[row["dzzzt"]]) == (name, org_type, status)
        assert row["dnldjgh"] == secretary_no
        if org_type == "党小组":
            # derived from 党小组会 attendance: never 0 where the group meets
            assert row["dzzdyrs"] == members and members > 0
            continue
        assert row["dzzdyrs"] == tree_members(code) + (unknown if parent is None else 0)
        if org_type == "党支部":
            assert row["dzzdyrs"] == members
    committee = next(r for r in rows.values() if types[r["dzzlxm"]] == "党委")
    assert committee["lssjdzzmc"] is None
    assert committee["dzzdyrs"] == wh.execute(
        "SELECT count(*) FROM warehouse.dim_party_member m WHERE m.is_current AND m.register = 'member' "
        "AND m.status = '正常'").fetchone()[0]
    # the same college total as the marts show (one definition: dim_party_org.members_rollup)
    assert committee["dzzdyrs"] == wh.execute(
        "SELECT members_rollup FROM warehouse.dim_party_org WHERE is_current AND org_type = '党委'").fetchone()[0]
    branches = [r for r in rows.values() if types[r["dzzlxm"]] == "党支部" and statuses[r["dzzzt"]] == "active"]
    assert len(branches) == wh.execute("SELECT count(*) FROM warehouse.dim_party_org WHERE is_current "
                                       "AND org_type = '党支部' AND status = 'active'").fetchone()[0]


def test_development_matches_the_warehouse(wh, root):
    rows = _rows(root, "zt_dyfzsj")
    people = {r[0] for r in wh.execute("SELECT DISTINCT person_no FROM warehouse.fact_development_event").fetchall()}
    # A record that breaks an error-severity business rule is held back: the graph's rule checks found the
    # campus's injected ones (an applicant under 18, an activist of under a year) in fact_development_event.
    held = {r[0] for r in wh.execute("SELECT DISTINCT record_key FROM quality.rule_violation "
                                     "WHERE severity = 'error'").fetchall()}
    assert held and held <= people
    assert {r["rybh"] for r in rows} == people - held and len(rows) == len(people - held)
    stages = _codes("dyfzztm")
    expected = Counter(s for (s,) in wh.execute(
        "SELECT stage FROM warehouse.dim_party_member WHERE is_current AND register IN ('member', 'development') "
        "AND status = '正常' AND person_no IN (SELECT person_no FROM warehouse.fact_development_event) "
        "AND person_no NOT IN (SELECT record_key FROM quality.rule_violation WHERE severity = 'error')").fetchall())
    assert Counter(stages[r["dyfzztm"]] for r in rows) == expected
    assert {"applicant", "activist", "candidate", "probationary", "full"} <= set(expected)
    events = {(p, e): d.strftime("%Y%m%d") for p, e, d in wh.execute(
        "SELECT person_no, event, event_date FROM warehouse.fact_development_event").fetchall()}
    for r in rows:
        assert r["cwjjfzrq"] == events.get((r["rybh"], "activist"))
        assert r["cwybdyrq"] == events.get((r["rybh"], "probationary"))
        assert r["cwzsdyrq"] == events.get((r["rybh"], "full"))
    names = dict(wh.execute("SELECT m.person_no, p.name FROM warehouse.dim_party_member m JOIN warehouse.dim_person p "
                            "USING (person_key) WHERE m.is_current").fetchall())
    assert all(r["xm"] == names[r["rybh"]] for r in rows)
    categories = _codes("xdylxm")
    assert Counter(categories[r["xdylxm"]] for r in rows)["student"] > 0


def _present(wh, lecture: bool) -> tuple[int, int]:
    return wh.execute(
        "SELECT count(*), count(*) FILTER (WHERE a.person_no IN (SELECT person_no FROM warehouse.bridge_person_record "
        "WHERE system = 'student')) FROM warehouse.fact_activity_attendance a WHERE a.status = 'present' "
        f"AND a.meeting_type {'=' if lecture else '<>'} 'party_lecture'").fetchone()


def test_party_lectures_match_the_warehouse(wh, root):
    rows = _rows(root, "zt_dksj")
    lectures = wh.execute("SELECT meeting_date, lecturer, title, place FROM warehouse.fact_org_activity "
                          "WHERE meeting_type = 'party_lecture'").fetchall()
    assert len(rows) == len(lectures) > 0
    assert Counter((r["hdksrq"], r["dkzjr"], r["hdnr"]) for r in rows) == Counter(
        (d.strftime("%Y%m%d"), lecturer, title) for d, lecturer, title, _ in lectures)
    forms = _codes("hdxsm")
    assert Counter(forms[r["hdxsm"]] for r in rows) == Counter(
        "online" if place.startswith("线上") else "offline" for *_, place in lectures)
    present, students = _present(wh, lecture=True)
    assert sum(r["cyxss"] + r["cyjss"] for r in rows) == present
    assert sum(r["cyxss"] for r in rows) == students


def test_activities_match_the_warehouse(wh, root):
    rows = _rows(root, "zt_dyhdsj")
    meetings = Counter(t for (t,) in wh.execute("SELECT meeting_type FROM warehouse.fact_org_activity "
                                                "WHERE meeting_type <> 'party_lecture'").fetchall())
    forms = _codes("hdxs")
    assert Counter(forms[r["hdxs"]] for r in rows) == meetings
    assert set(meetings) == {"branch_assembly", "branch_committee", "group_meeting", "theme_day", "life_meeting"}
    present, students = _present(wh, lecture=False)
    assert sum(r["cyxss"] + r["cyjss"] for r in rows) == present
    assert sum(r["cyxss"] for r in rows) == students
    assert all(r["hdksrq"] <= r["hdjsrq"] for r in rows)


def test_learning_matches_the_warehouse(wh, root):
    rows = _rows(root, "zt_dygbxxsj")
    learners = wh.execute(
        "SELECT m.org_code, r.course_id, r.term, r.person_no, r.course_kind FROM warehouse.fact_study_record r "
        "JOIN warehouse.dim_party_member m ON m.person_no = r.person_no AND m.is_current "
        "AND m.register IN ('member', 'transfer') "
        "JOIN warehouse.dim_party_org o ON o.org_code = m.org_code AND o.is_current").fetchall()
    groups = {(org, course, term) for org, course, term, *_ in learners}
    assert len(rows) == len(groups) > 0
    assert sum(r["cyxss"] + r["cyjss"] for r in rows) == len({(o, c, t, p) for o, c, t, p, _ in learners})
    channels = _codes("dygbxxpxzytjhztm")
    kinds = {(o, c, t): k for o, c, t, _, k in learners}
    assert Counter(channels[r["dygbxxpxzytjhztm"]] for r in rows) == Counter(kinds.values())
    assert {r["dygbxxpxnrm"] for r in rows} <= set(_codes("dygbxxpxnrm"))
    assert all(r["hdksrq"] <= r["hdjsrq"] for r in rows)


def test_transfers_match_the_warehouse(wh, root, campus_dir):
    rows = _rows(root, "zt_dyzzgxzysj")
    letters = wh.execute("SELECT t.person_no, coalesce(s.graduated_on, t.out_date), t.to_org_name "
                         "FROM warehouse.fact_relation_transfer t LEFT JOIN staging.stg_students s "
                         "ON s.student_no = t.person_no AND s.enrolment_status = '毕业'").fetchall()
    assert len(rows) == len(letters) > 0
    assert Counter((r["rybh"], r["lxrq"], r["zzgxqx"]) for r in rows) == Counter(
        (p, d.strftime("%Y%m%d"), to) for p, d, to in letters)
    assert all(r["xm"] for r in rows)
    # against the truth: lxrq is the graduate's 毕业日期, and the stage at transfer is kept
    truth = duckdb.connect()
    try:
        expected = {p: (g.strftime("%Y%m%d"), s) for p, g, s in truth.execute(
            f"SELECT t.person_no, s.graduate_date, m.stage FROM read_parquet('{campus_dir}/truth/transfers.parquet') t "
            f"JOIN read_parquet('{campus_dir}/truth/students.parquet') s ON s.student_no = t.person_no "
            f"JOIN read_parquet('{campus_dir}/truth/party_members.parquet') m ON m.person_no = t.person_no").fetchall()}
    finally:
        truth.close()
    stages = _codes("dyfzztm")
    got = {r["rybh"]: (r["lxrq"], stages[r["dyfzztm"]]) for r in rows}
    names = {"正式党员": "full", "预备党员": "probationary"}
    assert expected and {p: (d, names[s]) for p, (d, s) in expected.items() if p in got} == {
        p: v for p, v in got.items() if p in expected}
    assert {s for _, s in got.values()} == {"full", "probationary"}
    out_dates = {p: d.strftime("%Y%m%d") for p, d in wh.execute(
        "SELECT person_no, out_date FROM warehouse.fact_relation_transfer").fetchall()}
    assert any(got[p][0] != out_dates[p] for p in got), "the graduation date, not the letter's 转出日期"


# ---------------------------------------------------------------------------------------------- stability


def test_a_rerun_on_the_same_data_changes_nothing(wh, work, campus_dir, root, tmp_path):
    """Every source loaded again (nothing new lands: API rows already held, export files already seen) and
    the warehouse rebuilt: the same rows, sjcjsj included, so no new version."""
    before = {n: read_catalog(root)["datasets"][n]["current_version"] for n in FIELDS}
    loads = wh.execute("SELECT count(*) FROM quality.load_audit").fetchone()[0]
    _load(wh, work, campus_dir)
    assert wh.execute("SELECT count(*) FROM quality.load_audit").fetchone()[0] > loads
    # the warehouse models rebuilt through the asset graph, on a copy (wh keeps its file open)
    wh.execute("CHECKPOINT")
    rerun = tmp_path / "rerun.duckdb"
    shutil.copyfile(wh.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
                    .fetchone()[0], rerun)
    materialise(_national_models().upstream() & dg.AssetSelection.key_prefixes(["warehouse"]), warehouse=rerun,
                checks=False)
    con = connect(rerun)
    try:
        bind(con, school_code=SCHOOL, key_secret=SECRET)
        for spec in NATIONAL_DATASETS:
            manifest = Publisher(root).publish(con, spec, lineage=[], quality={})
            assert not manifest["changed"] and manifest["version"] == before[spec.name]
    finally:
        con.close()


def test_zjsjwyxbs_is_the_same_in_another_build(tmp_path_factory, campus_dir, root):
    """A second warehouse built from scratch through the asset graph from the same campus gives the same
    records under the same zjsjwyxbs; only sjcjsj (the time of its own loads) differs."""
    again = tmp_path_factory.mktemp("national-again")
    with served_campus(campus_dir, again) as env:  # checks as the campus warehouse's: the rules hold records back
        materialise(_national_models().upstream(), checks=all_but_suites)
    other = connect(env["HUB_WAREHOUSE"])
    try:
        bind(other, school_code=SCHOOL, key_secret=SECRET)
        other_root = str(tmp_path_factory.mktemp("published-again"))
        for spec in NATIONAL_DATASETS:
            Publisher(other_root).publish(other, spec, lineage=[], quality={})
            first = {tuple(v for k, v in r.items() if k != "sjcjsj") for r in _rows(root, spec.name)}
            second = {tuple(v for k, v in r.items() if k != "sjcjsj") for r in _rows(other_root, spec.name)}
            assert first == second, spec.name
    finally:
        other.close()


def test_zjsjwyxbs_depends_on_the_secret(wh):
    spec = SPECS["zt_dyfzsj"]
    first = dict(wh.execute(f"SELECT rybh, zjsjwyxbs FROM ({spec.query})").fetchall())
    try:
        bind(wh, school_code=SCHOOL, key_secret="another-secret")
        second = dict(wh.execute(f"SELECT rybh, zjsjwyxbs FROM ({spec.query})").fetchall())
    finally:
        bind(wh, school_code=SCHOOL, key_secret=SECRET)
    assert first.keys() == second.keys() and not set(first.values()) & set(second.values())


# ---------------------------------------------------------------------------------------------- blocking


def _blocked(wh, root: str, spec, *mutations: str, build=None) -> str:
    """Publish ``spec`` after ``mutations`` (rolled back afterwards): it must fail and leave the current
    version as it was. Returns the message."""
    before = read_catalog(root)["datasets"][spec.name]["current_version"]
    wh.execute("BEGIN TRANSACTION")
    try:
        for sql in mutations:
            wh.execute(sql)
        problems = national_problems(wh, spec.name, **({"build": build} if build else {}))
        with pytest.raises(duckdb.Error) as exc:
            Publisher(root).publish(wh, spec, lineage=[], quality={})
    finally:
        wh.execute("ROLLBACK")
    assert read_catalog(root)["datasets"][spec.name]["current_version"] == before
    message = str(exc.value)
    assert f"{spec.name} not published" in message and problems and all(p in message for p in problems)
    return message


def test_a_too_long_organisation_name_blocks(wh, root):
    code = wh.execute("SELECT min(org_code) FROM warehouse.dim_party_org WHERE is_current "
                      "AND org_type = '党支部'").fetchone()[0]
    message = _blocked(wh, root, SPECS["zt_dzzqkjcsj"],
                       f"UPDATE warehouse.dim_party_org SET name = repeat('党', 151) WHERE org_code = '{code}'")
    assert "dzzmc: 1 record(s) longer than 150 characters" in message and code in message
    assert "151 characters" in message and "never truncated" in message


def test_a_too_long_person_number_blocks(wh, root):
    person = wh.execute("SELECT min(person_no) FROM warehouse.fact_development_event").fetchone()[0]
    long_no = person + "X" * (21 - len(person))
    message = _blocked(
        wh, root, SPECS["zt_dyfzsj"],
        f"UPDATE warehouse.dim_party_member SET person_no = '{long_no}' WHERE person_no = '{person}'",
        f"UPDATE warehouse.fact_development_event SET person_no = '{long_no}' WHERE person_no = '{person}'")
    assert "rybh: 1 record(s) longer than 20 characters" in message and long_no in message


def test_a_value_without_a_code_blocks(wh, root):
    message = _blocked(wh, root, SPECS["zt_dyhdsj"],
                       "UPDATE warehouse.fact_org_activity SET meeting_type = 'study_session' "
                       "WHERE meeting_id = (SELECT min(meeting_id) FROM warehouse.fact_org_activity "
                       "WHERE meeting_type = 'theme_day')")
    assert "hub value 'study_session'" in message and "models/codesets/national_hdxs.csv" in message


def test_an_unmapped_code_in_the_code_table_blocks(wh, root, tmp_path):
    """The code tables are configuration: a hub value missing from one blocks that dataset (never guessed);
    a code table that maps a value twice or holds a code that does not fit blocks too."""
    codesets = tmp_path / "codesets"
    codesets.mkdir()
    for path in codesets_dir.glob("national_*.csv"):
        shutil.copy(path, codesets)
    table = codesets / "national_dzzlxm.csv"
    table.write_text("".join(line for line in table.read_text(encoding="utf-8").splitlines(keepends=True)
                             if not line.rstrip().endswith(",党小组")), encoding="utf-8")
    build = build_national(codesets)
    spec = next(s for s in build.datasets if s.name == "zt_dzzqkjcsj")
    message = _blocked(wh, root, spec, build=build)
    assert "dzzlxm:" in message and "hub value '党小组'" in message and "national_dzzlxm.csv" in message
    assert "1 problem(s)" in message

    table.write_text(table.read_text(encoding="utf-8") + "003,党支部（重复）,党支部\n", encoding="utf-8")
    build = build_national(codesets)
    message = _blocked(wh, root, next(s for s in build.datasets if s.name == "zt_dyfzsj"), build=build)
    assert "hub value '党支部' is mapped to several codes (003, 03)" in message
    assert "code '003' (hub value '党支部') does not fit dzzlxm, which takes 2 upper-case" in message


def test_field_names_are_configurable(wh, tmp_path):
    codesets = tmp_path / "codesets"
    codesets.mkdir()
    for path in codesets_dir.glob("national_*.csv"):
        shutil.copy(path, codesets)
    (codesets / "national_fields.csv").write_text(
        "dataset,field,published_as,origin\nzt_dygbxxsj,dygbxxpxnrm,xxpxnrm,hub\n", encoding="utf-8")
    build = build_national(codesets)
    spec = next(s for s in build.datasets if s.name == "zt_dygbxxsj")
    out = str(tmp_path / "published")
    Publisher(out).publish(wh, spec, lineage=[], quality={})
    columns, rows = _read(out, "zt_dygbxxsj")
    assert columns == [("xxpxnrm" if c == "dygbxxpxnrm" else c) for c in FIELDS["zt_dygbxxsj"]]

    (codesets / "national_fields.csv").write_text(
        "dataset,field,published_as,origin\nzt_dygbxxsj,no_such_field,x,hub\n", encoding="utf-8")
    build = build_national(codesets)
    problems = national_problems(wh, "zt_dygbxxsj", build=build)
    assert problems == ["national_fields.csv line 2: zt_dygbxxsj.no_such_field is not a field of a national table"]
    assert national_problems(wh, "zt_dksj", build=build) == []


def test_the_school_code_must_be_bound_and_ten_digits(wh, root):
    with pytest.raises(PublishError, match="10-digit"):
        bind(wh, school_code="45000", key_secret=SECRET)
    try:
        wh.execute(f"RESET VARIABLE {SCHOOL_CODE_VARIABLE}")
        message = _blocked(wh, root, SPECS["zt_dyzzgxzysj"])
    finally:
        bind(wh, school_code=SCHOOL, key_secret=SECRET)
    assert "xxdm: the school code is not set" in message and "HUB_SCHOOL_CODE" in message


def test_the_bound_school_code_comes_from_settings(wh):
    try:
        bind(wh, settings=Settings.from_env({"HUB_SCHOOL_CODE": "4512345678"}), key_secret=SECRET)
        assert wh.execute(f"SELECT DISTINCT xxdm FROM ({SPECS['zt_dksj'].query})").fetchall() == [("4512345678",)]
    finally:
        bind(wh, school_code=SCHOOL, key_secret=SECRET)


# ---------------------------------------------------------------------------------------------- the province
# hub/province.py: two colleges' national tables, each as the college itself published it, written as
# partitions of the six Iceberg tables and read back through pyiceberg, and through pyarrow and DuckDB
# over the tables' data files: equal to each college's own published version; a college rewritten
# leaves the other's rows and data files untouched.

OTHER = "4145000002"


@pytest.fixture(scope="module")
def two_colleges(tmp_path_factory, wh, root) -> dict[str, str]:
    """xxdm -> published root: college A's is a copy of ``root`` (the module's own stays as it is), college
    B's the same warehouse bound to another school code and key."""
    base = tmp_path_factory.mktemp("province")
    roots = {SCHOOL: str(base / f"published-{SCHOOL}"), OTHER: str(base / f"published-{OTHER}")}
    shutil.copytree(root, roots[SCHOOL])
    try:
        bind(wh, school_code=OTHER, key_secret="college-b-secret")
        for spec in NATIONAL_DATASETS:
            Publisher(roots[OTHER]).publish(wh, spec, lineage=[], quality={})
    finally:
        bind(wh, school_code=SCHOOL, key_secret=SECRET)
    return roots


def _sorted_rows(table) -> list[tuple]:
    columns = sorted(table.column_names)
    return sorted(zip(*[table.column(c).to_pylist() for c in columns], strict=True), key=repr)


def _province_equals_published(catalog, roots: dict[str, str], read_files) -> None:
    import pyarrow.dataset as pads

    from hub import province
    from pipelines.national import NATIONAL

    for dataset in province.national_datasets():
        over_files = read_files(province.data_files(catalog, dataset))
        for xxdm, published_root in roots.items():
            _, published = province.read_published(published_root, dataset)
            assert published.num_rows > 0, f"{dataset} of {xxdm} has rows to compare"
            assert _sorted_rows(province.read_college(catalog, dataset, xxdm)) == _sorted_rows(published), \
                f"{dataset} {xxdm} through pyiceberg"
            mine = over_files.filter(pads.field(NATIONAL.published_names[dataset]["xxdm"]) == xxdm)
            assert _sorted_rows(mine) == _sorted_rows(published), f"{dataset} {xxdm} over the data files"


def _local_files(files: list[str]):
    import pyarrow.dataset as pads

    return pads.dataset([f.removeprefix("file://") for f in files], format="parquet").to_table()


def test_province_tables_read_back_equal_to_each_college_and_one_college_rewritten_alone(wh, two_colleges,
                                                                                          tmp_path):
    from hub import province

    roots = two_colleges
    catalog = province.open_catalog(province.catalog_properties(env={"HUB_VAR_DIR": str(tmp_path)}))
    assert catalog.properties["uri"] == f"sqlite:///{tmp_path / 'province' / 'catalog.sqlite'}"
    for xxdm, published_root in roots.items():
        commits = province.publish_college(catalog, xxdm, published_root)
        assert [c.dataset for c in commits] == list(province.national_datasets())
        assert all(c.changed for c in commits)
    _province_equals_published(catalog, roots, _local_files)
    assert [f.name for f in catalog.load_table("national.zt_dyfzsj").spec().fields] == ["xxdm"]
    assert {p.split("/")[-2] for p in province.data_files(catalog, "zt_dyfzsj")} == {f"xxdm={SCHOOL}",
                                                                                     f"xxdm={OTHER}"}
    # DuckDB over the same files (hive_partitioning off: xxdm is in the files, as text)
    files = [f.removeprefix("file://") for f in province.data_files(catalog, "zt_dksj")]
    counts = dict(duckdb.sql(f"SELECT xxdm, count(*) FROM read_parquet({files}, hive_partitioning = false) "
                             "GROUP BY 1").fetchall())
    assert counts == {x: read_catalog(r)["datasets"]["zt_dksj"]["row_count"] for x, r in roots.items()}

    # the same versions again: nothing committed
    def snapshots():
        return {d: catalog.load_table(f"national.{d}").metadata.current_snapshot_id
                for d in province.national_datasets()}

    before = snapshots()
    assert not any(c.changed for c in province.publish_college(catalog, SCHOOL, roots[SCHOOL]))
    assert snapshots() == before

    # college A publishes new versions (another key: every zjsjwyxbs changes); B's rows and files stay
    def files_of(xxdm):
        return {d: {f for f in province.data_files(catalog, d) if f"xxdm={xxdm}" in f}
                for d in province.national_datasets()}

    b_files, a_files = files_of(OTHER), files_of(SCHOOL)
    try:
        bind(wh, school_code=SCHOOL, key_secret="rotated-secret")
        for spec in NATIONAL_DATASETS:
            assert Publisher(roots[SCHOOL]).publish(wh, spec, lineage=[], quality={})["changed"]
    finally:
        bind(wh, school_code=SCHOOL, key_secret=SECRET)
    assert all(c.changed for c in province.publish_college(catalog, SCHOOL, roots[SCHOOL]))
    _province_equals_published(catalog, roots, _local_files)
    assert files_of(OTHER) == b_files, "college B's data files are untouched"
    assert all(not (files_of(SCHOOL)[d] & a_files[d]) for d in a_files), "college A's files were replaced"
    for d in province.national_datasets():
        assert catalog.load_table(f"national.{d}").properties[f"hub.source.{SCHOOL}"] == \
            read_catalog(roots[SCHOOL])["datasets"][d]["current_version"]

    # another college's published root under this college's code: refused, nothing changes
    before = snapshots()
    with pytest.raises(PublishError, match=f"holds xxdm \\['{OTHER}'\\], not only {SCHOOL}"):
        province.publish_college(catalog, SCHOOL, roots[OTHER], datasets=("zt_dksj",))
    assert snapshots() == before

    # the command: the same catalog (HUB_VAR_DIR), nothing new to commit; a bad argument is one line
    from click.testing import CliRunner

    from hub.cli import main

    env = {"HUB_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["province", "publish", "--college", f"{OTHER}={roots[OTHER]}"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count(f"xxdm={OTHER}: unchanged") == 6
    result = CliRunner().invoke(main, ["province", "publish", "--college", OTHER], env=env)
    assert result.exit_code == 2 and "expected XXDM=ROOT" in result.output
    assert snapshots() == before


from tests import s3_server  # noqa: E402 (the province's S3 test below)

s3_endpoint, s3_bucket = s3_server.s3_endpoint, s3_server.s3_bucket  # fixtures: moto's S3 server on loopback


@pytest.mark.postgres
def test_province_catalog_on_postgresql_and_warehouse_on_s3_with_colleges_committing_at_once(two_colleges,
                                                                                             s3_bucket):
    """The production shape: catalog in PostgreSQL, data and metadata on the S3 API; the two colleges'
    commits race on every table (the catalog's compare-and-swap, retried)."""
    import os
    import threading

    import fsspec
    import psycopg
    import pyarrow.dataset as pads

    from hub import province
    from tests.pg_database import fresh_database

    roots = two_colleges
    with fresh_database("hub_iceberg_test") as url:
        env = {**os.environ, "HUB_ICEBERG_CATALOG_URI": url.replace("postgresql://", "postgresql+psycopg://"),
               "HUB_ICEBERG_WAREHOUSE": f"s3://{s3_bucket}/province"}
        catalog = province.open_catalog(province.catalog_properties(env=env))
        results, errors = {}, []

        def run(xxdm):
            try:
                results[xxdm] = province.publish_college(catalog, xxdm, roots[xxdm])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(x,)) for x in roots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and sorted(results) == sorted(roots)

        def over_s3(files):
            assert all(f.startswith(f"s3://{s3_bucket}/province/national/") for f in files)
            return pads.dataset([f.removeprefix("s3://") for f in files], format="parquet",
                                filesystem=fsspec.filesystem("s3")).to_table()

        _province_equals_published(catalog, roots, over_s3)
        with psycopg.connect(url) as pg:
            rows = pg.execute("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                              "ORDER BY table_name").fetchall()
        assert [(ns, name) for ns, name, _ in rows] == [("national", d) for d in sorted(province.national_datasets())]
        assert all(loc.startswith(f"s3://{s3_bucket}/province/national/") for _, _, loc in rows)
        catalog.engine.dispose()
