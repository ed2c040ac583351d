"""Expectation suites with real Great Expectations on the small simulated campus: clean data passes and
GX agrees with the DuckDB translation; injected bad values fail with the right expectation named;
quality.check_result grows as history; Data Docs are rendered; a table that shrank is caught; the
Dagster checks report, block and link to the docs."""

import json
from pathlib import Path

import dagster as dg
import pytest

from connectors import load_sources
from hub.resources import QualityResource, WarehouseResource
from hub.settings import PROJECT_ROOT
from hub.warehouse import connect
from models.build import WAREHOUSE_MODELS
from pipelines.expectations import CHECK_NAME, expectation_checks
from quality.expectations import load_suite, load_suites, run_gate, run_suite, value_set


@pytest.fixture(scope="module")
def wh_path(tmp_path_factory, copy_campus_warehouse) -> Path:
    """A copy of the small campus's warehouse, built through the asset graph (tests/conftest.py: every source
    loaded through the real connectors and servers, then every staging and warehouse model); closed, so each
    test opens its own connection. A copy: the tests here add check history to it."""
    return copy_campus_warehouse(tmp_path_factory.mktemp("expectations") / "warehouse.duckdb")


@pytest.fixture
def wh(wh_path):
    con = connect(wh_path)
    yield con
    con.close()


def _outcome(result, expectation_id):
    return next(o for o in result.outcomes if o.expectation.id == expectation_id)


# ---------------------------------------------------------------------------- the suites themselves


def test_every_raw_entity_and_warehouse_model_has_a_suite_naming_real_columns(wh):
    suites = load_suites()
    entities = [e.table for s in load_sources(PROJECT_ROOT / "sources.yaml").values() for e in s.entities.values()]
    assert {f"raw.{t}" for t in entities} <= set(suites)
    assert {f"warehouse.{m}" for m in WAREHOUSE_MODELS} <= set(suites)
    for suite in suites.values():
        schema, table = suite.table.split(".")
        columns = {r[0] for r in wh.execute("SELECT column_name FROM information_schema.columns WHERE "
                                            "table_schema = ? AND table_name = ?", [schema, table]).fetchall()}
        assert columns, f"{suite.name}: no table {suite.table}"
        for exp in suite.expectations:
            assert set(exp.columns) <= columns, f"{suite.name}: {exp.id} names a column {suite.table} lacks"
        kinds = {e.type for e in suite.expectations}
        assert "expect_table_row_count_to_be_within_ratio_of_previous" in kinds
        if schema == "raw":  # raw keeps every version: source keys are not expected unique there
            assert all(e.columns == ("_load_id", "_row_number") for e in suite.expectations
                       if e.type == "expect_compound_columns_to_be_unique")
        else:
            assert kinds & {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


def test_value_sets_are_read_from_the_code_set_files():
    dim_person = load_suites()["warehouse.dim_person"]
    gender = next(e for e in dim_person.expectations if e.id == "expect_column_values_to_be_in_set(gender)")
    assert value_set(gender) == ["0", "1", "2", "9"]
    nation = next(e for e in load_suites()["raw.student__students"].expectations
                  if e.id == "expect_column_values_to_be_in_set(nation)")
    assert {"汉", "汉族", "壮", "壮族"} <= set(value_set(nation))


# ---------------------------------------------------------------------------- GX on clean data


def test_clean_campus_passes_and_gx_agrees_with_duckdb(wh):
    suites = list(load_suites().values())
    by_gx = run_gate(wh, suites, engine="gx", record=False, docs=False)
    by_sql = run_gate(wh, suites, engine="sql", record=False, docs=False)
    failed = [(r.suite.name, o.expectation.id, o.unexpected, o.error) for r in by_gx for o in r.failed]
    assert not failed
    assert all(r.engine == "gx" for r in by_gx)
    assert {o.engine for r in by_gx for o in r.outcomes} == {"great_expectations", "sql"}  # checksum, row count
    for g, s in zip(by_gx, by_sql, strict=True):
        for og, os_ in zip(g.outcomes, s.outcomes, strict=True):
            assert (og.success, og.unexpected) == (os_.success, os_.unexpected), og.expectation.id
            assert og.result.get("missing_count") == os_.result.get("missing_count"), og.expectation.id


def test_chunked_gx_matches_on_a_table_split_in_many_chunks(wh):
    suite = load_suites()["warehouse.fact_course_grade"]
    wh.execute("BEGIN TRANSACTION")
    try:  # copies of a key in different chunks must still be found
        wh.execute("INSERT INTO warehouse.fact_course_grade SELECT * FROM warehouse.fact_course_grade "
                   "ORDER BY grade_id DESC LIMIT 3")
        whole = run_suite(wh, suite, engine="gx")
        chunked = run_suite(wh, suite, engine="gx_chunked", chunk_rows=5000)
        in_sql = run_suite(wh, suite, engine="sql")
    finally:
        wh.execute("ROLLBACK")
    for a, b, c in zip(whole.outcomes, chunked.outcomes, in_sql.outcomes, strict=True):
        assert (a.success, a.unexpected) == (b.success, b.unexpected) == (c.success, c.unexpected), a.expectation.id
    assert _outcome(chunked, "expect_column_values_to_be_unique(grade_id)").unexpected == 6
    assert _outcome(chunked, "expect_compound_columns_to_be_unique(student_no,course_code,term,exam_type)"
                    ).unexpected == 6


# ---------------------------------------------------------------------------- bad values


def test_injected_bad_values_fail_with_the_right_expectation(wh):
    suites = load_suites()
    wh.execute("BEGIN TRANSACTION")
    try:
        key, id_number = wh.execute("SELECT person_key, id_number FROM warehouse.dim_person "
                                    "WHERE has_valid_id ORDER BY person_key LIMIT 1").fetchone()
        bad_id = id_number[:17] + ("0" if id_number[17] != "0" else "1")  # wrong check character
        wh.execute("UPDATE warehouse.dim_person SET gender = '7', id_number = ? WHERE person_key = ?", [bad_id, key])
        wh.execute("UPDATE warehouse.fact_dues_payment SET paid = -5 WHERE rowid IN "
                   "(SELECT rowid FROM warehouse.fact_dues_payment LIMIT 2)")
        person = run_suite(wh, suites["warehouse.dim_person"], engine="gx")
        dues = run_suite(wh, suites["warehouse.fact_dues_payment"], engine="gx")
    finally:
        wh.execute("ROLLBACK")
    assert {o.expectation.id for o in person.failed} == {
        "expect_column_values_to_be_in_set(gender)", "expect_column_values_to_pass_gb11643_checksum(id_number)"}
    gender = _outcome(person, "expect_column_values_to_be_in_set(gender)")
    assert gender.engine == "great_expectations" and gender.unexpected == 1
    assert gender.result["partial_unexpected_list"] == ["7"] and gender.expectation.severity == "error"
    checksum = _outcome(person, "expect_column_values_to_pass_gb11643_checksum(id_number)")
    assert checksum.engine == "sql" and checksum.unexpected == 1
    assert checksum.result["partial_unexpected_list"] == [bad_id[:6] + "*" * 12]  # masked to the area code
    assert [o.expectation.id for o in dues.failed] == ["expect_column_values_to_be_between(paid)"]
    assert dues.failed[0].unexpected == 2
    # bad values in single rows are reported, never blocking (quality/blocking.py), whatever the suite says
    assert not gender.expectation.blocking and not person.failed_errors and not dues.failed_errors


def test_check_result_history_grows_and_data_docs_name_the_suites(wh, tmp_path):
    suite = load_suites()["warehouse.dim_person"]

    def rows():
        return wh.execute("SELECT count(*) FROM quality.check_result WHERE asset = 'warehouse/dim_person'").fetchone()[0]

    before = rows()
    first = run_gate(wh, [suite], run_id="run-clean", var_dir=tmp_path)
    assert first[0].success and rows() == before + len(suite.expectations)
    key, gender = wh.execute("SELECT person_key, gender FROM warehouse.dim_person LIMIT 1").fetchone()
    wh.execute("UPDATE warehouse.dim_person SET gender = '7' WHERE person_key = ?", [key])
    try:
        second = run_gate(wh, [suite], run_id="run-bad", var_dir=tmp_path)
    finally:
        wh.execute("UPDATE warehouse.dim_person SET gender = ? WHERE person_key = ?", [gender, key])
    assert not second[0].success and rows() == before + 2 * len(suite.expectations)
    history = wh.execute("""SELECT run_id, passed, severity, engine, unexpected, detail FROM quality.check_result
                            WHERE check_name = 'warehouse.dim_person:expect_column_values_to_be_in_set(gender)'
                            ORDER BY checked_at""").fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in history[-2:]] == [
        ("run-clean", True, "warning", "great_expectations", 0),
        ("run-bad", False, "warning", "great_expectations", 1)]  # a row-level expectation: recorded as a warning
    detail = json.loads(history[-1][5])
    assert detail["partial_unexpected_list"] == ["7"] and detail["kwargs"]["column"] == "gender"
    assert detail["kwargs"]["value_set_from"] == [{"codeset": "gender"}]
    # Data Docs: an index naming the suite, a page per validation
    index = tmp_path / "quality" / "docs" / "index.html"
    assert index.is_file() and "warehouse.dim_person" in index.read_text(encoding="utf-8")
    page = second[0].docs_page
    assert page and page.is_file() and page.is_relative_to(tmp_path / "quality" / "docs")
    assert Path(detail["data_docs"]) == page
    html = page.read_text(encoding="utf-8")
    assert "gender is a GB/T 2261.1 code" in html and "Failed" in html


def test_row_count_against_the_previous_load_catches_a_table_that_shrank(wh, tmp_path):
    wh.execute("CREATE OR REPLACE TABLE warehouse.shrink_probe AS SELECT * FROM warehouse.fact_course_grade")
    (tmp_path / "warehouse.shrink_probe.yaml").write_text("""
description: a copy of fact_course_grade that will shrink
expectations:
  - expect: expect_column_values_to_not_be_null
    column: grade_id
  - expect: expect_table_row_count_to_be_within_ratio_of_previous
    min_ratio: 0.5
    max_ratio: 2.0
""", encoding="utf-8")
    suite = load_suite(tmp_path / "warehouse.shrink_probe.yaml")
    full = wh.execute("SELECT count(*) FROM warehouse.shrink_probe").fetchone()[0]
    first = run_gate(wh, [suite], docs=False)
    count = _outcome(first[0], "expect_table_row_count_to_be_within_ratio_of_previous()")
    assert count.success and count.result["details"]["previous"] is None  # nothing to compare with yet
    wh.execute("DELETE FROM warehouse.shrink_probe WHERE grade_id % 10 <> 0")  # down to 10 %
    shrunk = run_gate(wh, [suite], docs=False)
    count = _outcome(shrunk[0], "expect_table_row_count_to_be_within_ratio_of_previous()")
    assert not count.success and count.expectation.severity == "error" and count.expectation.blocking
    assert count.result["details"]["previous"] == full and count.result["details"]["ratio"] < 0.11
    # the failed count is not a baseline: the next run still compares with the last count that passed
    again = run_gate(wh, [suite], docs=False)
    assert _outcome(again[0], "expect_table_row_count_to_be_within_ratio_of_previous()"
                    ).result["details"]["previous"] == full
    wh.execute("DROP TABLE warehouse.shrink_probe")


# ---------------------------------------------------------------------------- Dagster


def test_dagster_checks_pass_block_and_link_to_data_docs(wh_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path))
    keys = [dg.AssetKey(["warehouse", "dim_person"]), dg.AssetKey(["raw", "party__orgs"])]
    checks = expectation_checks(keys)
    assert len(checks) == 2 and all(spec.blocking for c in checks for spec in c.check_specs)
    assert {next(iter(c.check_keys)).name for c in checks} == {CHECK_NAME}

    @dg.multi_asset(specs=[dg.AssetSpec(k) for k in keys], can_subset=True)
    def stubs(context: dg.AssetExecutionContext):
        for key in context.selected_asset_keys:  # the tables are there already: nothing to build
            yield dg.MaterializeResult(asset_key=key)

    @dg.asset(key=["publish", "probe"], deps=[keys[0]])
    def downstream() -> None:
        return None

    resources = {"warehouse": WarehouseResource(path=str(wh_path)), "quality": QualityResource()}
    ok = dg.materialize([stubs, downstream, *checks], resources=resources, raise_on_error=False)
    evaluations = {e.asset_key.to_user_string(): e for e in ok.get_asset_check_evaluations()}
    assert all(e.passed for e in evaluations.values()), evaluations
    meta = evaluations["warehouse/dim_person"].metadata
    assert meta["failed_expectations"].value == 0 and meta["evaluated"].value > 1000
    assert meta["suites"].value == "warehouse.bridge_person_record, warehouse.dim_person, warehouse.person_number"
    # an http link (hub serve-docs) to dim_person's own page, not the first suite's (bridge_person_record)
    assert meta["data_docs"].value.startswith("http://127.0.0.1:3001/validations/warehouse/dim_person/")
    # the index is rendered once after the run (pipelines/data_docs.py), not by the check
    from quality.expectations import build_docs_index

    assert build_docs_index(tmp_path / "quality") == Path(meta["data_docs_index"].value)
    assert Path(meta["data_docs_index"].value).is_file()
    probe = dg.AssetKey(["publish", "probe"])
    assert probe in {e.asset_key for e in ok.get_asset_materialization_events()}

    # One bad value in one row: reported (WARN) with its count and the key of the row; nothing held back.
    con = connect(wh_path)
    key, gender = con.execute("SELECT person_key, gender FROM warehouse.dim_person ORDER BY person_key LIMIT 1"
                              ).fetchone()
    con.execute("UPDATE warehouse.dim_person SET gender = '7' WHERE person_key = ?", [key])
    con.close()
    try:
        row = dg.materialize([stubs, downstream, *checks], resources=resources, raise_on_error=False)
    finally:
        con = connect(wh_path)
        con.execute("UPDATE warehouse.dim_person SET gender = ? WHERE person_key = ?", [gender, key])
        con.close()
    evaluation = next(e for e in row.get_asset_check_evaluations() if e.asset_key == keys[0])
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    failing = evaluation.metadata["failing"].value
    assert [(f["expectation"], f["unexpected"], f["blocking"], f["sample_keys"]) for f in failing] == [
        ("expect_column_values_to_be_in_set(gender)", 1, False, [key])]
    assert probe in {e.asset_key for e in row.get_asset_materialization_events()}, "a bad row stops nothing"

    # A person twice (a key that repeats): systemic, blocking; what is built on the table is held back.
    con = connect(wh_path)
    con.execute("INSERT INTO warehouse.dim_person SELECT * FROM warehouse.dim_person WHERE person_key = ?", [key])
    con.close()
    try:
        bad = dg.materialize([stubs, downstream, *checks], resources=resources, raise_on_error=False)
    finally:
        con = connect(wh_path)
        con.execute("DELETE FROM warehouse.dim_person WHERE rowid = (SELECT max(rowid) FROM warehouse.dim_person "
                    "WHERE person_key = ?)", [key])
        con.close()
    evaluation = next(e for e in bad.get_asset_check_evaluations() if e.asset_key == keys[0])
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    blocking = [f for f in evaluation.metadata["failing"].value if f["blocking"]]
    assert "expect_column_values_to_be_unique(person_key)" in [f["expectation"] for f in blocking]
    assert all(f["expectation"].startswith("expect_column_values_to_be_unique(") for f in blocking)  # and id_number
    assert "HAVING count(*) > 1" in blocking[0]["look_at"]
    assert probe not in {e.asset_key for e in bad.get_asset_materialization_events()}  # held back: blocking
