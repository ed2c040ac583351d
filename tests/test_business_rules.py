"""The party business rules (quality/rules.yaml, quality/rules/*.sql) on the small simulated campus.

Each rule is held against ground truth: the five rule conflicts the simulator injects must be found
exactly (record keys as sets, from truth/defects.csv); every other rule must find exactly what an
independent Python reading of truth/*.parquet says (nothing, or the months and quarters the simulator's
lax branches skip); and every rule must fire on a deliberately broken copy of the warehouse, at the
threshold and not before it.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import shutil
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from hub.settings import PROJECT_ROOT
from hub.warehouse import connect
from quality.business_rules import (
    RULES_DIR,
    RuleConfigError,
    data_as_of,
    evaluate,
    load_config,
    resolve_as_of,
    run_rules,
)

MODELS = ("dim_party_member", "dim_party_org", "fact_dues_payment", "fact_org_activity", "fact_assessment",
          "fact_development_event")
INJECTED = ("probation_overdue", "activist_under_one_year", "applicant_under_18", "dues_below_rate",
            "branch_under_3_full", "full_date_inconsistent", "org_term_length", "committee_size_invalid",
            "secretary_missing", "assessment_missing", "organisation_life_gap")
# The standards file, read here independently: the rules that share a threshold with a mart read it.
STD = yaml.safe_load((PROJECT_ROOT / "models" / "assessment_standards.yaml").read_text(encoding="utf-8"))
ERRORS = {"applicant_under_18", "activist_under_one_year", "development_dates_out_of_order"}
MEMBER_STAGES = ("预备党员", "正式党员")
PIPELINE_STAGES = ("入党申请人", "入党积极分子", "发展对象")
# The activity app's meeting names and the codes of map_facts.csv, written out here independently.
MEETING_CODES = {"支部党员大会": "branch_assembly", "支委会": "branch_committee", "党小组会": "group_meeting",
                 "党课": "party_lecture", "主题党日": "theme_day", "组织生活会": "life_meeting"}
# rule -> (meeting type, months per period, organisations it applies to)
MEETING_RULES = {
    "meetings_branch_assembly_quarterly": ("branch_assembly", 3, "branch"),
    "meetings_branch_committee_monthly": ("branch_committee", 1, "branch_with_committee"),
    "meetings_group_monthly": ("group_meeting", 1, "group"),
    "meetings_party_lecture_quarterly": ("party_lecture", 3, "branch"),
    "meetings_theme_day_monthly": ("theme_day", 1, "branch"),
    "meetings_life_meeting_yearly": ("life_meeting", 12, "branch"),
}


def add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pristine(campus_warehouse) -> Path:
    """The small campus's warehouse, built through the asset graph (tests/conftest.py: every source through
    the real connectors and servers), closed and read-only: the tests here break copies of it."""
    return campus_warehouse


@pytest.fixture
def copy_of(pristine, tmp_path):
    """Opens a fresh copy of the pristine warehouse, to break on purpose."""
    opened = []

    def _open():
        target = tmp_path / f"copy{len(opened)}" / "warehouse.duckdb"
        target.parent.mkdir()
        shutil.copyfile(pristine, target)
        opened.append(connect(target))
        return opened[-1]

    yield _open
    for c in opened:
        c.close()


@pytest.fixture(scope="module")
def as_of(campus_dir) -> date:
    return date.fromisoformat(json.loads((campus_dir / "manifest.json").read_text(encoding="utf-8"))["as_of"])


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def wh(pristine, tmp_path_factory, as_of, config):
    """A copy of the warehouse with every rule run once, and the run's result."""
    path = tmp_path_factory.mktemp("rules_run") / "warehouse.duckdb"
    shutil.copyfile(pristine, path)
    con = connect(path)
    run = run_rules(con, config=config, as_of=as_of)
    yield con, run
    con.close()


@pytest.fixture(scope="module")
def found(wh) -> dict[str, set[str]]:
    con, run = wh
    keys = defaultdict(set)
    for rule, key in con.execute("SELECT rule, record_key FROM quality.rule_violation").fetchall():
        keys[rule].add(key)
    return {rule: keys[rule] for rule in run.violations}


@pytest.fixture(scope="module")
def truth(campus_dir):
    t = {p.stem: pd.read_parquet(p) for p in (campus_dir / "truth").glob("*.parquet")
         if p.stem != "grades"}
    t["defects"] = pd.read_csv(campus_dir / "truth" / "defects.csv", dtype=str, keep_default_na=False)
    return t


def _keys(con, rule: str) -> set[str]:
    return {k for (k,) in con.execute("SELECT record_key FROM quality.rule_violation WHERE rule = ?",
                                      [rule]).fetchall()}


# ---------------------------------------------------------------------------------------------- configuration


def test_configuration_names_every_rule_with_a_severity_and_sql(config):
    assert set(config.rules) == {
        *INJECTED, "talk_later_than_one_month", "development_dates_out_of_order", "political_status_mismatch", "committee_missing",
        "branch_over_50_members", "org_term_expired", "org_term_expiring", *MEETING_RULES,
        "excellent_share_over_third", "dues_arrears", "organisation_life_gap", "assessment_missing",
        "org_term_length", "committee_size_invalid", "secretary_missing", "full_date_inconsistent"}
    for rule in config.rules.values():  # each cites its regulation (or says the value is the college's)
        assert any(src in rule.description for src in ("党章", "细则", "支部条例", "民主评议意见", "中组部", "college")), \
            rule.name
    assert {n for n, r in config.rules.items() if r.severity == "error"} == ERRORS
    assert {r.severity for r in config.rules.values()} == {"error", "warning"}
    assert config.rules["applicant_under_18"].params == {"min_age_years": 18}
    assert config.rules["probation_overdue"].params == {"probation_months": 12, "grace_months": 3}
    assert config.rules["org_term_expiring"].params == {"warn_days": STD["organisations"]["term_warning_days"]} \
        == {"warn_days": 180}, "one term-warning threshold: the standards file's"
    assert config.rules["committee_size_invalid"].params == {"committee_min": 3, "committee_max": 7}
    for rule in config.rules.values():
        assert rule.entity.startswith("warehouse.") and rule.description
        assert (RULES_DIR / f"{rule.sql_name}.sql").is_file()


def test_rules_never_read_the_clock():
    for path in RULES_DIR.glob("*.sql"):
        text = path.read_text(encoding="utf-8").lower()
        for clock in ("current_date", "current_timestamp", "now()", "today()", "get_current"):
            assert clock not in text, f"{path.name} reads the clock ({clock}): use $as_of"


@pytest.mark.parametrize(("change", "message"), [
    ("severity: error", None),
    ("severity: fatal", "severity must be one of"),
    ("entity: dim_person", "entity must name a table"),
    ("sql: no_such_rule", "no SQL file"),
    ("params: {}", r"uses \$min_full_members"),
    ("threshold: 3", "unknown key"),
])
def test_a_bad_configuration_fails_when_loaded(tmp_path, change, message):
    key = change.split(":")[0]
    spec = {"severity": "severity: warning", "entity": "entity: warehouse.dim_party_org",
            "params": "params: {min_full_members: 3}"}
    spec[key] = change
    (tmp_path / "rules.yaml").write_text("rules:\n  branch_under_3_full:\n" + "".join(
        f"    {line}\n" for line in spec.values()), encoding="utf-8")
    if message is None:
        assert load_config(tmp_path / "rules.yaml").rules["branch_under_3_full"].severity == "error"
    else:
        with pytest.raises(RuleConfigError, match=message):
            load_config(tmp_path / "rules.yaml")


def test_as_of_is_explicit_and_deterministic(wh, as_of, config, monkeypatch):
    con, run = wh
    assert run.as_of == as_of
    assert data_as_of(con) == as_of, "the simulated campus's latest date is its as_of"
    assert resolve_as_of(con, config) == as_of
    pinned = dataclasses.replace(config, as_of=date(2025, 12, 31))
    assert resolve_as_of(con, pinned) == date(2025, 12, 31)
    monkeypatch.setenv("HUB_AS_OF", "2026-03-31")
    assert resolve_as_of(con, pinned) == date(2025, 12, 31), "the library reads no environment: a run passes it"
    assert resolve_as_of(con, pinned, "2026-06-30") == date(2026, 6, 30), "an argument (run_settings.as_of) wins"
    with pytest.raises(RuleConfigError, match="not a date"):
        resolve_as_of(con, pinned, "31/10/2026")
    # An earlier as_of changes what is due: the latest overdue probation is not yet overdue on the day its
    # year and three months' grace end, and is the day after.
    overdue = config.rules["probation_overdue"]
    admitted = max(d for (d,) in con.execute(
        "SELECT probationary_on FROM warehouse.dim_party_member WHERE is_current AND person_no IN "
        "(SELECT record_key FROM quality.rule_violation WHERE rule = 'probation_overdue')").fetchall())
    due = add_months(admitted, 15)
    before = {r[3] for r in evaluate(con, overdue, due)}
    after = {r[3] for r in evaluate(con, overdue, due + timedelta(days=1))}
    assert len(after - before) >= 1 and before < after


def test_a_rerun_replaces_the_rows_and_counts_by_severity(wh, config, as_of):
    con, run = wh
    before = con.execute("SELECT rule, severity, entity, record_key, detail FROM quality.rule_violation "
                         "ORDER BY ALL").fetchall()
    again = run_rules(con, config=config, as_of=as_of)
    assert again.violations == run.violations
    assert con.execute("SELECT rule, severity, entity, record_key, detail FROM quality.rule_violation "
                       "ORDER BY ALL").fetchall() == before, "same data, same findings, no duplicates"
    table = dict(con.execute("SELECT severity, count(*) FROM quality.rule_violation WHERE rule IN "
                             f"({', '.join('?' * len(run.violations))}) GROUP BY ALL", list(run.violations))
                 .fetchall())
    assert run.by_severity == {"error": table.get("error", 0), "warning": table.get("warning", 0)}
    assert run.by_severity["error"] == 2, "the two injected development conflicts"
    only = run_rules(con, ["branch_under_3_full"], config=config, as_of=as_of)
    assert list(only.violations) == ["branch_under_3_full"]
    with pytest.raises(RuleConfigError, match="unknown rule"):
        run_rules(con, ["no_such_rule"], config=config, as_of=as_of)
    rows = con.execute("SELECT * FROM quality.rule_violation WHERE rule = 'applicant_under_18'").fetchall()
    assert len(rows) == 1 and all(v is not None for v in rows[0]), "every column filled"


# ---------------------------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("rule", INJECTED)
def test_injected_conflicts_are_found_exactly(found, truth, rule):
    d = truth["defects"]
    expected = set(d.loc[d["kind"] == rule, "record_key"])
    assert expected, f"the simulator injects {rule} at every scale"
    assert found[rule] == expected


def _members(truth) -> pd.DataFrame:
    p = truth["party_members"]
    return p[p["stage"].isin(MEMBER_STAGES) & (p["status"] == "正常")]


def _expected_talks(truth, as_of) -> set[str]:
    p = truth["party_members"]
    p = p[p["stage"].isin(PIPELINE_STAGES) & p["talk_date"].notna()]
    return {r.person_no for r in p.itertuples()
            if r.talk_date > add_months(r.apply_date, 1) or r.talk_date < r.apply_date}


def _expected_dates(truth, as_of) -> set[str]:
    p = truth["party_members"]
    d = truth["defects"]
    kept_out = set(d.loc[(d["system"] == "party") & (d["kind"] == "orphan_reference"), "record_key"])
    p = p[(p["stage"].isin(PIPELINE_STAGES) | p["stage"].isin(MEMBER_STAGES)) & (p["status"] == "正常")
          & ~p["person_no"].isin(kept_out)]
    out = set()
    for r in p.itertuples():
        stages = [r.apply_date, r.activist_date, r.candidate_date, r.admit_date, r.full_date]
        present = [x for x in stages if x is not None]
        talk = r.talk_date if r.stage in PIPELINE_STAGES else None  # the member register has no talk date
        if present != sorted(present) or any(x > as_of for x in [*present, talk] if x is not None):
            out.add(r.person_no)
    return out


def _expected_political(truth, as_of) -> set[str]:
    status = {**dict(zip(truth["staff"]["staff_no"], truth["staff"]["political_status"], strict=True)),
              **dict(zip(truth["students"]["student_no"], truth["students"]["political_status"], strict=True))}
    return {r.person_no for r in _members(truth).itertuples()
            if status.get(r.person_no) != ("01" if r.stage == "正式党员" else "02")}


def _branches(truth) -> pd.DataFrame:
    o = truth["party_orgs"]
    return o[o["kind"] == "党支部"]


def _expected_committee(truth, as_of) -> set[str]:
    b = _branches(truth)
    return set(b.loc[(b["full_members"] >= 7) & (b["committee_size"] == 0), "org_code"])


def _expected_over_50(truth, as_of) -> set[str]:
    b = _branches(truth)
    return set(b.loc[b["members"] > 50, "org_code"])


def _termed(truth) -> pd.DataFrame:
    o = truth["party_orgs"]
    return o[o["kind"].isin(["党委", "党总支", "党支部"])]


def _expected_expired(truth, as_of) -> set[str]:
    return {r.org_code for r in _termed(truth).itertuples() if r.term_end < as_of}


def _expected_expiring(truth, as_of) -> set[str]:
    days = STD["organisations"]["term_warning_days"]
    return {r.org_code for r in _termed(truth).itertuples() if as_of <= r.term_end <= as_of + timedelta(days=days)}


def _expected_excellent(truth, as_of) -> set[str]:
    a = truth["assessments"]
    d = truth["defects"]
    orphans = set(d.loc[(d["entity"] == "assessments") & (d["kind"] == "orphan_reference"), "record_key"])
    a = a[~(a["person_no"] + "|" + a["year"].astype(str)).isin(orphans)]
    g = a.groupby(["org_code", "year"])["grade"].agg(assessed="size", excellent=lambda s: (s == "优秀").sum())
    return {f"{org}|{year}" for (org, year), r in g.iterrows() if 3 * r["excellent"] > r["assessed"]}


def _expected_arrears(truth, as_of) -> set[str]:
    dues = truth["dues"]
    dues = dues[dues["paid"] > 0]
    months = dues["month"].map(lambda m: int(m[:4]) * 12 + int(m[5:]) - 1)
    first = int(months.min())
    latest: dict[str, int] = {}
    for person, m in zip(dues["person_no"], months, strict=True):
        if m <= month_index(as_of):
            latest[person] = max(latest.get(person, -1), m)
    out = set()
    for r in _members(truth).itertuples():
        start = latest[r.person_no] + 1 if r.person_no in latest else max(first, month_index(r.admit_date))
        if month_index(as_of) - start + 1 >= 6:
            out.add(r.person_no)
    return out


def _expected_meetings(truth, as_of, meeting_type: str, months: int, applies_to: str) -> set[str]:
    m = truth["meetings"]
    day = m["start_time"].dt.tz_convert("Asia/Shanghai").dt.date
    held = Counter(zip(m["org_code"], m["type"].map(MEETING_CODES), day.map(month_index), strict=True))
    since = min(day).replace(day=1)
    o = truth["party_orgs"]
    orgs = {"branch": o[o["kind"] == "党支部"],
            "branch_with_committee": o[(o["kind"] == "党支部") & (o["committee_size"] > 0)],
            "group": o[o["kind"] == "党小组"]}[applies_to]
    out = set()
    start = date(since.year, 1, 1)
    while add_months(start, months) - timedelta(days=1) <= as_of:
        if start >= since:
            label = {1: f"{start:%Y-%m}", 3: f"{start.year}-Q{(start.month - 1) // 3 + 1}",
                     12: str(start.year)}[months]
            for org in orgs.itertuples():
                if org.founded is not None and org.founded > start:
                    continue
                n = sum(held[(org.org_code, meeting_type, month_index(start) + k)] for k in range(months))
                if n < 1:
                    out.add(f"{org.org_code}|{meeting_type}|{label}")
        start = add_months(start, months)
    return out


EXPECTED_FROM_TRUTH = {
    "talk_later_than_one_month": _expected_talks,
    "development_dates_out_of_order": _expected_dates,
    "political_status_mismatch": _expected_political,
    "committee_missing": _expected_committee,
    "branch_over_50_members": _expected_over_50,
    "org_term_expired": _expected_expired,
    "org_term_expiring": _expected_expiring,
    "excellent_share_over_third": _expected_excellent,
    "dues_arrears": _expected_arrears,
    **{rule: (lambda t, a, spec=spec: _expected_meetings(t, a, *spec)) for rule, spec in MEETING_RULES.items()},
}


@pytest.mark.parametrize("rule", sorted(EXPECTED_FROM_TRUTH))
def test_rules_without_injected_conflicts_find_what_the_truth_says(found, truth, as_of, rule):
    assert found[rule] == EXPECTED_FROM_TRUTH[rule](truth, as_of)


def test_the_lax_branches_are_what_the_meeting_rules_find(found, truth, as_of):
    """The generator makes most branches compliant and a few lax ones skip months: the meeting findings
    come from those few branches, and compliant branches have none."""
    flagged = {key.split("|")[0] for rule in MEETING_RULES for key in found[rule]}
    branches = set(_branches(truth)["org_code"])
    assert flagged, "at least one lax branch skips a meeting"
    assert len(flagged & branches) <= max(1, round(0.12 * len(branches))), "most branches are compliant"


# ---------------------------------------------------------------------------------------------- broken on purpose


def _run(con, rule, as_of, config=None) -> set[str]:
    run_rules(con, [rule], config=config, as_of=as_of)
    return _keys(con, rule)


def _one(con, sql: str, params=None):
    row = con.execute(sql, params or []).fetchone()
    assert row is not None, f"no candidate row for the broken-input case: {sql}"
    return row


def test_applicant_age_is_checked_at_the_18th_birthday(copy_of, found, as_of):
    con = copy_of()
    rows = con.execute("""SELECT e.person_no, p.birth_date FROM warehouse.fact_development_event e
                          JOIN warehouse.dim_person p USING (person_key)
                          WHERE e.event = 'applied' AND p.has_valid_id AND strftime(p.birth_date, '%m-%d') <> '02-29'
                            AND e.person_no NOT IN (SELECT unnest(?))
                          ORDER BY e.person_no LIMIT 2""", [sorted(found["applicant_under_18"])]).fetchall()
    (young, born_young), (adult, born_adult) = rows
    con.execute("UPDATE warehouse.fact_development_event SET event_date = ? WHERE person_no = ? AND event = 'applied'",
                [born_young.replace(year=born_young.year + 18) - timedelta(days=1), young])
    con.execute("UPDATE warehouse.fact_development_event SET event_date = ? WHERE person_no = ? AND event = 'applied'",
                [born_adult.replace(year=born_adult.year + 18), adult])
    assert _run(con, "applicant_under_18", as_of) == found["applicant_under_18"] | {young}


def test_talk_is_due_within_a_month(copy_of, found, as_of):
    con = copy_of()
    (late, applied), (on_time, applied2) = con.execute("""
        SELECT person_no, min(event_date) FILTER (WHERE event = 'applied') FROM warehouse.fact_development_event
        WHERE person_no IN (SELECT person_no FROM warehouse.fact_development_event WHERE event = 'talked')
        GROUP BY person_no ORDER BY person_no LIMIT 2""").fetchall()
    for person, talked in ((late, add_months(applied, 1) + timedelta(days=1)), (on_time, add_months(applied2, 1))):
        con.execute("UPDATE warehouse.fact_development_event SET event_date = ? WHERE person_no = ? AND event = 'talked'",
                    [talked, person])
    assert _run(con, "talk_later_than_one_month", as_of) == found["talk_later_than_one_month"] | {late}


def test_a_year_as_activist_is_needed(copy_of, found, as_of):
    con = copy_of()
    (short, activist), (enough, activist2) = con.execute("""
        SELECT person_no, min(event_date) FILTER (WHERE event = 'activist') FROM warehouse.fact_development_event
        WHERE event IN ('activist', 'candidate') GROUP BY person_no HAVING count(*) = 2
        ORDER BY person_no LIMIT 2""").fetchall()
    for person, candidate in ((short, add_months(activist, 12) - timedelta(days=1)), (enough, add_months(activist2, 12))):
        con.execute("UPDATE warehouse.fact_development_event SET event_date = ? WHERE person_no = ? "
                    "AND event = 'candidate'", [candidate, person])
    assert _run(con, "activist_under_one_year", as_of) == found["activist_under_one_year"] | {short}


def test_development_milestones_in_order_and_not_after_as_of(copy_of, found, as_of):
    con = copy_of()
    (future, _), (backwards, applied), (today, _) = con.execute("""
        SELECT person_no, min(event_date) FILTER (WHERE event = 'applied') FROM warehouse.fact_development_event
        GROUP BY person_no HAVING count(*) FILTER (WHERE event IN ('applied', 'activist', 'candidate')) = 3
           AND count(*) FILTER (WHERE event IN ('probationary', 'full')) = 0
        ORDER BY person_no LIMIT 3""").fetchall()
    event = "UPDATE warehouse.fact_development_event SET event_date = ? WHERE person_no = ? AND event = ?"
    con.execute(event, [as_of + timedelta(days=1), future, "candidate"])
    con.execute(event, [as_of, today, "candidate"])
    con.execute(event, [applied - timedelta(days=1), backwards, "activist"])
    assert _run(con, "development_dates_out_of_order", as_of) == found["development_dates_out_of_order"] | {
        future, backwards}
    detail = dict(con.execute("SELECT record_key, detail FROM quality.rule_violation "
                              "WHERE rule = 'development_dates_out_of_order'").fetchall())
    assert detail[future] == f"candidate {as_of + timedelta(days=1)} is after as_of {as_of}"
    assert "activist" in detail[backwards] and "before an earlier stage" in detail[backwards]


def test_probation_is_overdue_a_day_after_a_year_and_the_grace(copy_of, found, config, as_of):
    """细则: the higher committee approves 转正 within three months of the end of probation, so a record may
    read 预备 for a year and three months; a recorded 延长预备期 moves the end of probation."""
    con = copy_of()
    over, on_time, extended = [r[0] for r in con.execute("""
        SELECT person_no FROM warehouse.dim_party_member
        WHERE is_current AND register = 'member' AND status = '正常' AND stage = 'probationary'
          AND person_no NOT IN (SELECT unnest(?))
          AND person_no IN (SELECT person_no FROM staging.stg_party_members WHERE probation_extension_months IS NULL)
        ORDER BY person_no LIMIT 3""", [sorted(found["probation_overdue"])]).fetchall()]
    limit = add_months(as_of, -15)
    for person, admitted in ((over, limit - timedelta(days=1)), (on_time, limit), (extended, limit - timedelta(days=300))):
        con.execute("UPDATE warehouse.dim_party_member SET probationary_on = ? WHERE person_no = ? AND is_current",
                    [admitted, person])
    con.execute("UPDATE staging.stg_party_members SET probation_extension_months = 12 WHERE person_no = ?", [extended])
    assert _run(con, "probation_overdue", as_of) == found["probation_overdue"] | {over}
    rule = config.rules["probation_overdue"]
    lenient = dataclasses.replace(config, rules={**config.rules, rule.name: dataclasses.replace(
        rule, params={**rule.params, "grace_months": 12})})
    assert _run(con, "probation_overdue", as_of, lenient) == set(), "12 months' grace: none overdue yet"
    strict = dataclasses.replace(config, rules={**config.rules, rule.name: dataclasses.replace(
        rule, params={**rule.params, "grace_months": 0})})
    assert {on_time, over} <= _run(con, "probation_overdue", as_of, strict), "no grace: overdue after a year"


def test_conversion_date_is_the_end_of_probation_or_of_a_recorded_extension(copy_of, found, as_of):
    con = copy_of()
    rows = con.execute("""SELECT person_no, probationary_on FROM warehouse.dim_party_member
        WHERE is_current AND register = 'member' AND status = '正常' AND stage = 'full' AND probationary_on IS NOT NULL
          AND strftime(probationary_on, '%m-%d') <> '02-29' AND person_no NOT IN (SELECT unnest(?))
          AND person_no IN (SELECT person_no FROM staging.stg_party_members WHERE probation_extension_months IS NULL)
        ORDER BY person_no LIMIT 4""", [sorted(found["full_date_inconsistent"])]).fetchall()
    (late, a1), (extended, a2), (bad_ext, a3), (day_late, a4) = rows
    sets = "UPDATE warehouse.dim_party_member SET full_on = ? WHERE person_no = ? AND is_current"
    ext = "UPDATE staging.stg_party_members SET probation_extension_months = ? WHERE person_no = ?"
    con.execute(sets, [add_months(a1, 18), late])           # 18 months, no extension recorded
    con.execute(sets, [add_months(a2, 18), extended])       # 18 months, 6 recorded: consistent
    con.execute(ext, [6, extended])
    con.execute(sets, [add_months(a3, 16), bad_ext])        # an extension of 4 months is not allowed
    con.execute(ext, [4, bad_ext])
    con.execute(sets, [add_months(a4, 12) + timedelta(days=2), day_late])
    assert _run(con, "full_date_inconsistent", as_of) == found["full_date_inconsistent"] | {late, bad_ext, day_late}
    detail = dict(con.execute("SELECT record_key, detail FROM quality.rule_violation "
                              "WHERE rule = 'full_date_inconsistent'").fetchall())
    assert "no extension is recorded" in detail[late] and "outside 6-12" in detail[bad_ext]


def test_political_status_must_follow_the_stage_in_every_system(copy_of, found, as_of):
    con = copy_of()
    staff, = _one(con, """SELECT m.person_no FROM warehouse.dim_party_member m
                          JOIN staging.stg_hr_staff h ON h.staff_no = m.person_no
                          WHERE m.is_current AND m.register = 'member' AND m.stage = 'full' AND m.status = '正常'
                          ORDER BY 1 LIMIT 1""")
    student, = _one(con, """SELECT m.person_no FROM warehouse.dim_party_member m
                            JOIN staging.stg_students s ON s.student_no = m.person_no
                            WHERE m.is_current AND m.register = 'member' AND m.stage = 'probationary'
                              AND m.status = '正常' ORDER BY 1 LIMIT 1""")
    con.execute("UPDATE staging.stg_hr_staff SET political_status = '13' WHERE staff_no = ?", [staff])
    con.execute("UPDATE staging.stg_students SET political_status = '01' WHERE student_no = ?", [student])
    assert _run(con, "political_status_mismatch", as_of) == found["political_status_mismatch"] | {staff, student}
    detail = dict(con.execute("SELECT record_key, detail FROM quality.rule_violation "
                              "WHERE rule = 'political_status_mismatch'").fetchall())
    assert "needs political status 01" in detail[staff] and "hr has 13" in detail[staff]
    assert "needs political status 02" in detail[student] and "student has 01" in detail[student]


def _two_branches(con) -> tuple[str, str]:
    a, b = [r[0] for r in con.execute("SELECT org_code FROM warehouse.dim_party_org WHERE is_current "
                                      "AND org_type = '党支部' ORDER BY org_code LIMIT 2").fetchall()]
    return a, b


def test_branch_size_rules_fire_at_their_thresholds(copy_of, found, as_of):
    con = copy_of()
    a, b = _two_branches(con)
    sets = "UPDATE warehouse.dim_party_org SET full_members = ?, probationary_members = ?, committee_size = ? " \
           "WHERE is_current AND org_code = ?"
    con.execute(sets, [7, 0, 0, a])     # 7 full, no committee: a committee is due
    con.execute(sets, [6, 0, 0, b])     # 6 full: a secretary is enough
    assert _run(con, "committee_missing", as_of) == found["committee_missing"] | {a}
    con.execute(sets, [40, 11, 5, a])   # 51 members
    con.execute(sets, [40, 10, 5, b])   # 50 members: still within the norm
    assert _run(con, "branch_over_50_members", as_of) == found["branch_over_50_members"] | {a}
    assert _run(con, "branch_under_3_full", as_of) == found["branch_under_3_full"]
    injected, = found["branch_under_3_full"]
    con.execute("UPDATE warehouse.dim_party_org SET full_members = 3 WHERE is_current AND org_code = ?", [injected])
    assert _run(con, "branch_under_3_full", as_of) == set(), "fixed: its row is gone on the next run"


def test_terms_expire_and_warn_ahead_by_the_standards_file(copy_of, found, as_of):
    days = STD["organisations"]["term_warning_days"]
    con = copy_of()
    a, b = _two_branches(con)
    sets = "UPDATE warehouse.dim_party_org SET term_end = ? WHERE is_current AND org_code = ?"
    con.execute(sets, [as_of - timedelta(days=1), a])
    con.execute(sets, [as_of, b])
    assert _run(con, "org_term_expired", as_of) == (found["org_term_expired"] - {b}) | {a}
    assert _run(con, "org_term_expiring", as_of) == (found["org_term_expiring"] - {a}) | {b}
    con.execute(sets, [as_of + timedelta(days=days), a])
    con.execute(sets, [as_of + timedelta(days=days + 1), b])
    assert _run(con, "org_term_expiring", as_of) == (found["org_term_expiring"] - {b}) | {a}


def test_term_length_follows_the_organisation_type(copy_of, found, as_of):
    con = copy_of()
    a, b = [r[0] for r in con.execute(
        "SELECT org_code FROM warehouse.dim_party_org WHERE is_current AND org_type = '党支部' AND elected_on IS NOT NULL "
        "AND strftime(elected_on, '%m-%d') <> '02-29' AND org_code NOT IN (SELECT unnest(?)) ORDER BY 1 LIMIT 2",
        [sorted(found["org_term_length"])]).fetchall()]
    top, = _one(con, "SELECT org_code FROM warehouse.dim_party_org WHERE is_current AND org_type = '党委'")
    con.execute("UPDATE warehouse.dim_party_org SET term_end = elected_on + INTERVAL 5 YEAR "
                "WHERE is_current AND org_code IN (?, ?)", [a, top])   # 5 years: right for the 党委 only
    con.execute("UPDATE warehouse.dim_party_org SET term_end = NULL WHERE is_current AND org_code = ?", [b])
    assert _run(con, "org_term_length", as_of) == (found["org_term_length"] - {top}) | {a, b}


def test_committee_size_is_odd_and_a_branch_committee_three_to_seven(copy_of, found, as_of):
    con = copy_of()
    a, b = _two_branches(con)
    zz, = _one(con, "SELECT org_code FROM warehouse.dim_party_org WHERE is_current AND org_type = '党总支' "
                    "ORDER BY 1 LIMIT 1")
    sets = "UPDATE warehouse.dim_party_org SET committee_size = ? WHERE is_current AND org_code = ?"
    con.execute(sets, [9, a])    # odd, but more than 7 in a branch
    con.execute(sets, [7, b])    # the most a branch committee may have
    con.execute(sets, [6, zz])   # even
    assert _run(con, "committee_size_invalid", as_of) == found["committee_size_invalid"] | {a, zz}


def test_an_organisation_without_a_secretary_is_found(copy_of, found, as_of):
    con = copy_of()
    a, b = _two_branches(con)
    con.execute("UPDATE warehouse.dim_party_org SET secretary_name = NULL, secretary_no = NULL "
                "WHERE is_current AND org_code = ?", [a])
    con.execute("UPDATE warehouse.dim_party_org SET secretary_no = NULL WHERE is_current AND org_code = ?", [b])
    assert _run(con, "secretary_missing", as_of) == found["secretary_missing"] | {a}, "a name is enough"


def test_six_months_without_organisation_life_and_not_five(copy_of, found, as_of):
    con = copy_of()
    six, five = [r[0] for r in con.execute("""
        SELECT person_no FROM warehouse.fact_activity_attendance
        WHERE person_no IN (SELECT person_no FROM warehouse.dim_party_member WHERE is_current AND register = 'member'
                            AND status = '正常' AND probationary_on < DATE '2024-06-01')
          AND person_no NOT IN (SELECT split_part(unnest(?), '|', 1))
        GROUP BY person_no HAVING count(DISTINCT date_trunc('month', meeting_date)) FILTER (
            WHERE status = 'present' AND meeting_date >= DATE '2025-01-01' AND meeting_date < DATE '2025-10-01') = 9
        ORDER BY 1 LIMIT 2""", [sorted(found["organisation_life_gap"])]).fetchall()]
    for person, months in ((six, 6), (five, 5)):
        con.execute("UPDATE warehouse.fact_activity_attendance SET status = 'absent' WHERE person_no = ? "
                    "AND meeting_date >= DATE '2025-02-01' AND meeting_date < ?",
                    [person, add_months(date(2025, 2, 1), months)])
    assert _run(con, "organisation_life_gap", as_of) == found["organisation_life_gap"] | {f"{six}|2025-02"}
    detail, = _one(con, "SELECT detail FROM quality.rule_violation WHERE rule = 'organisation_life_gap' "
                        "AND record_key = ?", [f"{six}|2025-02"])
    assert detail == "6 consecutive months without organisation life: 2025-02, 2025-03, 2025-04, 2025-05, 2025-06, 2025-07"
    # excused (请假) has a cause: it counts as organisation life unless configured otherwise
    con.execute("UPDATE warehouse.fact_activity_attendance SET status = 'excused' WHERE person_no = ? "
                "AND meeting_date >= DATE '2025-02-01' AND meeting_date < DATE '2025-03-01'", [six])
    assert f"{six}|2025-02" not in _run(con, "organisation_life_gap", as_of)


def test_a_member_without_a_yearly_assessment_is_found(copy_of, found, as_of):
    con = copy_of()
    (person, year), = con.execute("""SELECT a.person_no, a.year FROM warehouse.fact_assessment a
        JOIN warehouse.dim_party_member m ON m.person_no = a.person_no AND m.is_current AND m.register = 'member'
             AND m.status = '正常' ORDER BY a.year DESC, a.person_no LIMIT 1""").fetchall()
    con.execute("DELETE FROM warehouse.fact_assessment WHERE person_no = ? AND year = ?", [person, year])
    assert _run(con, "assessment_missing", as_of) == found["assessment_missing"] | {f"{person}|{year}"}
    # the current year is not complete: nothing is due for it
    assert not any(k.endswith(f"|{as_of.year}") for k in _run(con, "assessment_missing", as_of))


@pytest.mark.parametrize("rule", sorted(MEETING_RULES))
def test_a_missed_meeting_is_found(copy_of, found, as_of, rule):
    meeting_type, months, applies_to = MEETING_RULES[rule]
    con = copy_of()
    kind = {"branch": "org_type = '党支部'", "branch_with_committee": "org_type = '党支部' AND committee_size > 0",
            "group": "org_type = '党小组'"}[applies_to]
    # The first organisation and complete period in which it did hold such a meeting (a compliant period).
    org, day = _one(con, f"""
        SELECT a.org_code, min(a.meeting_date) FROM warehouse.fact_org_activity a
        JOIN warehouse.dim_party_org o ON o.org_code = a.org_code AND o.is_current AND o.{kind}
        WHERE a.meeting_type = ? AND a.meeting_date >= DATE '2024-01-01' GROUP BY 1 ORDER BY 1 LIMIT 1""",
                        [meeting_type])
    start = date(day.year, (day.month - 1) // months * months + 1, 1)
    label = {1: f"{start:%Y-%m}", 3: f"{start.year}-Q{(start.month - 1) // 3 + 1}", 12: str(start.year)}[months]
    key = f"{org}|{meeting_type}|{label}"
    assert key not in found[rule]
    con.execute("DELETE FROM warehouse.fact_org_activity WHERE org_code = ? AND meeting_type = ? "
                "AND meeting_date >= ? AND meeting_date < ?", [org, meeting_type, start, add_months(start, months)])
    assert _run(con, rule, as_of) == found[rule] | {key}


def test_excellent_share_may_reach_but_not_pass_one_third(copy_of, found, as_of):
    con = copy_of()
    groups = con.execute("SELECT org_code, year FROM warehouse.fact_assessment GROUP BY ALL HAVING count(*) >= 3 "
                         "ORDER BY ALL LIMIT 2").fetchall()
    (org_a, year_a), (org_b, year_b) = groups
    for (org, year), excellent in (((org_a, year_a), 1), ((org_b, year_b), 2)):
        # keep three assessments of the group, `excellent` of them 优秀
        con.execute("""DELETE FROM warehouse.fact_assessment WHERE org_code = ? AND year = ? AND person_no NOT IN (
                           SELECT person_no FROM warehouse.fact_assessment WHERE org_code = ? AND year = ?
                           ORDER BY person_no LIMIT 3)""", [org, year, org, year])
        con.execute("""UPDATE warehouse.fact_assessment SET grade = CASE WHEN person_no IN (
                           SELECT person_no FROM warehouse.fact_assessment WHERE org_code = ? AND year = ?
                           ORDER BY person_no LIMIT ?) THEN 'excellent' ELSE 'qualified' END
                       WHERE org_code = ? AND year = ?""", [org, year, excellent, org, year])
    assert _run(con, "excellent_share_over_third", as_of) == found["excellent_share_over_third"] | {f"{org_b}|{year_b}"}


def test_six_months_unpaid_is_arrears_five_is_not(copy_of, found, as_of):
    con = copy_of()
    month = date(as_of.year, as_of.month, 1)
    six, five = [r[0] for r in con.execute("""
        SELECT d.person_no FROM warehouse.fact_dues_payment d
        JOIN warehouse.dim_party_member m ON m.person_no = d.person_no AND m.is_current AND m.register = 'member'
             AND m.status = '正常'
        GROUP BY d.person_no HAVING max(d.month) = ? AND count(*) >= 12 ORDER BY 1 LIMIT 2""", [month]).fetchall()]
    for person, unpaid in ((six, 6), (five, 5)):
        con.execute("DELETE FROM warehouse.fact_dues_payment WHERE person_no = ? AND month > ?",
                    [person, add_months(month, -unpaid)])
    assert _run(con, "dues_arrears", as_of) == found["dues_arrears"] | {six}
    detail, = _one(con, "SELECT detail FROM quality.rule_violation WHERE rule = 'dues_arrears' AND record_key = ?",
                   [six])
    assert detail.startswith(f"6 months unpaid, {add_months(month, -5):%Y-%m} to {month:%Y-%m}")


def test_dues_below_rate_counts_payments_up_to_as_of(wh, config, found):
    con, _ = wh
    rule = config.rules["dues_below_rate"]
    earliest = min(k.split("|")[1] for k in found["dues_below_rate"])
    cut = date(int(earliest[:4]), int(earliest[5:]), 1)
    assert {r[3] for r in evaluate(con, rule, cut)} == {k for k in found["dues_below_rate"] if k.endswith(earliest)}


# ---------------------------------------------------------------------------------------------- Dagster


def test_one_asset_check_per_rule_never_blocking(config):
    import dagster as dg

    from pipelines.rules import rule_checks

    specs = {spec.key.name: spec for check in rule_checks for spec in check.check_specs}
    assert set(specs) == set(config.rules)
    for name, spec in specs.items():
        rule = config.rules[name]
        assert spec.asset_key == dg.AssetKey(rule.asset_path)
        assert not spec.blocking, "rules judge records: error records are held back, the table is not"
    # ready at once with a publish step, a rule check goes first: the publish reads its violations
    assert all(int(check.node_def.tags["dagster/priority"]) > 0 for check in rule_checks)
    assert specs["dues_arrears"].asset_key == dg.AssetKey(["warehouse", "fact_dues_payment"])
    deps = {d.asset_key for d in specs["dues_arrears"].additional_deps}
    assert deps == {dg.AssetKey(["warehouse", "dim_party_member"]), dg.AssetKey(["warehouse", "fact_org_activity"])}, \
        "waits for the members it reads, and the meetings the as-of date is read from (dues are its own table)"


def test_checks_run_in_dagster_and_report(pristine, tmp_path, config, as_of, monkeypatch):
    """The checks on a copy of the warehouse through Dagster: stand-in assets for the warehouse tables
    (already built), the rule checks, an asset downstream of a table with a failing error rule, and the
    national development table, which publishes from the violations the checks wrote in this run."""
    import dagster as dg

    from hub.publisher import read_catalog
    from hub.resources import IdentityResource, PublisherResource, RunSettingsResource, WarehouseResource
    from pipelines.gate import upstream_checks
    from pipelines.publish import publish_assets
    from pipelines.rules import rule_checks

    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(pristine, path)
    tables = sorted({spec.asset_key for check in rule_checks for spec in check.check_specs}, key=str)

    def stand_in(key):
        @dg.asset(key=key)
        def _table() -> None:
            return None
        return _table

    downstream_ran = []

    @dg.asset(key=["publish", "development_records"], deps=[dg.AssetKey(["warehouse", "fact_development_event"])])
    def development_records() -> None:
        downstream_ran.append(True)

    national = next(a for a in publish_assets if a.key == dg.AssetKey(["publish", "zt_dyfzsj"]))
    assets = [*map(stand_in, tables), development_records, national, *rule_checks]
    root = tmp_path / "published"
    resources = {"warehouse": WarehouseResource(path=str(path)), "publisher": PublisherResource(root=str(root)),
                 "run_settings": RunSettingsResource(as_of=as_of.isoformat()),
                 "identity": IdentityResource(person_key_secret="test-person-key-for-the-rule-checks")}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(config.rules)
    con = connect(path, read_only=True)
    try:
        counts = dict(con.execute("SELECT rule, count(*) FROM quality.rule_violation GROUP BY ALL").fetchall())
        recorded = {r[0]: r[1:] for r in con.execute(
            "SELECT check_name, asset, severity, passed, unexpected FROM quality.check_result").fetchall()}
        held = {r[0] for r in con.execute("SELECT DISTINCT record_key FROM quality.rule_violation "
                                          "WHERE severity = 'error'").fetchall()}
    finally:
        con.close()
    for name, e in evaluations.items():
        rule = config.rules[name]
        n = counts.get(name, 0)
        assert e.passed == (n == 0) and e.metadata["violations"].value == n
        assert e.severity == (dg.AssetCheckSeverity.ERROR if rule.severity == "error" else dg.AssetCheckSeverity.WARN)
        assert len(e.metadata["sample"].value) == min(n, 10)
        assert recorded[name] == ("/".join(rule.asset_path), rule.severity, n == 0, n)
    assert not evaluations["applicant_under_18"].passed and evaluations["committee_missing"].passed
    assert downstream_ran and result.success, "a failing rule reports; what is built on its table still builds"

    # The gate: rule checks judge records, never the table, so none of them holds a dataset back; the
    # national development table was published in the same run from the violations the checks wrote.
    graph = dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()
    on_rules = upstream_checks(graph, national.key)
    assert {k.name for k in on_rules} >= ERRORS and not any(blocking for blocking, _ in on_rules.values())
    entry = read_catalog(root)["datasets"]["zt_dyfzsj"]
    manifest = json.loads((root / entry["manifest"]).read_text(encoding="utf-8"))
    assert held and manifest["quality"]["records_held_back"] == len(held)
    assert "warehouse/fact_development_event:applicant_under_18:failed:error" in manifest["quality"]["checks"]
    published = {r[0] for r in duckdb.sql(
        f"SELECT rybh FROM read_parquet('{root / 'zt_dyfzsj' / manifest['version']}/data/*.parquet')").fetchall()}
    assert published and not held & published, "records breaking an error rule are held back"

    # The events table changes and the rules have not looked at it: the table is refused, in one line,
    # and the rules are not run behind the checks' back.
    events = dg.AssetKey(["warehouse", "fact_development_event"])
    assert dg.materialize(assets, selection=dg.AssetSelection.assets(events).without_checks(),
                          resources=resources, instance=instance).success
    refused = dg.materialize(assets, selection=[national.key], resources=resources, instance=instance,
                             raise_on_error=False)
    failure = next(e for e in refused.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("zt_dyfzsj not published: the business rules have not judged the current data")
    assert "warehouse/fact_development_event:applicant_under_18 not evaluated since its data last changed" in message
    assert "\n" not in message
    assert read_catalog(root)["datasets"]["zt_dyfzsj"]["current_version"] == entry["current_version"]
    # the checks run again on the new data: published again (same data, same version)
    checks = dg.AssetSelection.checks(*(dg.AssetCheckKey(events, n) for n in ERRORS))
    assert dg.materialize(assets, selection=checks, resources=resources, instance=instance).success
    assert dg.materialize(assets, selection=[national.key], resources=resources, instance=instance).success
    assert read_catalog(root)["datasets"]["zt_dyfzsj"]["current_version"] == entry["current_version"]

def test_the_as_of_date_of_the_launchpad_reaches_the_rule_checks(pristine, tmp_path, config, as_of, monkeypatch):
    """run_settings.as_of set in run config (as the launchpad sets it) is the date a rule check judges at:
    probation_overdue finds more members overdue the day after the latest one's grace ends than on it,
    and the counts Dagster reports are what the rule finds at each date. HUB_AS_OF, set to something else,
    is only the resource's default: the run config wins."""
    import dagster as dg

    from hub.factory import build_definitions
    from hub.resources import RunSettingsResource, WarehouseResource
    from pipelines.rules import rule_checks

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(pristine, path)
    con = connect(path)
    try:
        overdue = config.rules["probation_overdue"]
        run_rules(con, ["probation_overdue"], config=config, as_of=as_of)
        admitted = max(d for (d,) in con.execute(
            "SELECT probationary_on FROM warehouse.dim_party_member WHERE is_current AND person_no IN "
            "(SELECT record_key FROM quality.rule_violation WHERE rule = 'probation_overdue')").fetchall())
        due = add_months(admitted, 15)
        expected = {day: len(evaluate(con, overdue, day)) for day in (due, due + timedelta(days=1))}
    finally:
        con.close()
    assert expected[due] < expected[due + timedelta(days=1)], "the chosen days must give different results"

    # the launchpad shows run_settings with HUB_AS_OF as its default; its config overrides it
    monkeypatch.setenv("HUB_AS_OF", "2001-01-01")
    assert build_definitions().resources["run_settings"].as_of == "2001-01-01"
    [check] = [c for c in rule_checks if any(s.key.name == "probation_overdue" for s in c.check_specs)]
    member = dg.AssetKey(["warehouse", "dim_party_member"])

    @dg.asset(key=member)
    def _table() -> None:
        return None

    reported = {}
    for day in expected:
        result = dg.materialize(
            [_table, check], resources={"warehouse": WarehouseResource(path=str(path)),
                                        "run_settings": RunSettingsResource(as_of="2001-01-01")},
            run_config={"resources": {"run_settings": {"config": {"as_of": day.isoformat()}}}},
            selection=[member])
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.metadata["as_of"].value == day.isoformat()
        reported[day] = evaluation.metadata["violations"].value
    assert reported == expected

    bad = dg.materialize([_table, check], resources={"warehouse": WarehouseResource(path=str(path)),
                                                     "run_settings": RunSettingsResource()},
                         run_config={"resources": {"run_settings": {"config": {"as_of": "30/06/2026"}}}},
                         selection=[member], raise_on_error=False)
    failures = [e.event_specific_data.error.cause or e.event_specific_data.error for e in bad.all_events
                if e.is_step_failure]
    assert failures and "run_settings.as_of='30/06/2026' is not a date YYYY-MM-DD" in failures[0].message
