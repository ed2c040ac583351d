"""Blocking is reserved for what is systemic: one bad row stops nothing, a systemic problem stops only what
is built on its table, and every other dataset is published (quality/blocking.py)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from hub.settings import PROJECT_ROOT, Settings
from quality.blocking import QuarantineRate, parse_rate, parse_rates
from tests.conftest import SEED, SMALL_SCALE

# ---------------------------------------------------------------------------------------------- settings


def test_thresholds_come_from_the_settings_with_one_line_for_a_bad_value():
    assert Settings.from_env({}).quarantine_max_rate == 0.02
    s = Settings.from_env({"HUB_QUARANTINE_MAX_RATE": "5%",
                           "HUB_QUARANTINE_MAX_RATE_BY_ENTITY": "hr.staff=10%, learning.courses=0.5"})
    assert s.quarantine_max_rate == 0.05
    assert s.quarantine_max_rate_by_entity == {"hr.staff": 0.1, "learning.courses": 0.5}
    assert parse_rate("0.02", "x") == 0.02 and parse_rates("") == {}
    with pytest.raises(ValueError, match=r"^HUB_QUARANTINE_MAX_RATE: 'lots' is not a rate"):
        Settings.from_env({"HUB_QUARANTINE_MAX_RATE": "lots"})
    with pytest.raises(ValueError, match=r"^HUB_QUARANTINE_MAX_RATE_BY_ENTITY: 'staff=5%' is not source.entity"):
        Settings.from_env({"HUB_QUARANTINE_MAX_RATE_BY_ENTITY": "staff=5%"})
    with pytest.raises(ValueError, match=r"HUB_QUARANTINE_MAX_RATE_BY_ENTITY hr.staff: '150%' is not a rate between"):
        Settings.from_env({"HUB_QUARANTINE_MAX_RATE_BY_ENTITY": "hr.staff=150%"})


def test_a_rate_is_systemic_above_its_threshold_and_an_empty_entity_is_missing():
    def rate(staged, quarantined):
        return QuarantineRate("hr", "staff", staged, quarantined, {}, [], 0.02)

    assert rate(98, 2).passed and not rate(97, 3).passed  # 2% is allowed, 3% is not
    assert rate(0, 0).missing and not rate(0, 0).passed
    # one bad row never blocks, even where it is most of a small entity (1 of 9 is 11%); two do
    assert rate(8, 1).passed and "a single row never blocks" in rate(8, 1).describe()
    assert not rate(7, 2).passed
    assert "whole entity is missing" in rate(0, 0).describe()
    assert "quality.quarantine" in rate(97, 3).look_at()


# ---------------------------------------------------------------------------------------------- the job


def _campus(tmp_path: Path, campus_dir: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    var = tmp_path / "var"
    var.mkdir()
    shutil.copytree(campus_dir, var / "campus")
    # The small campus has about 50 staff, so one HR row is 2% of HR: this per-entity setting keeps a single
    # bad HR row quarantined in staging below HR's threshold, as it is at the campus's real size (~1,000).
    return {"HUB_VAR_DIR": str(var), "DAGSTER_HOME": str(home),
            "HUB_QUARANTINE_MAX_RATE_BY_ENTITY": "hr.staff=10%"}


def _rewrite_jsonl(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = change(rows)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _a_secretary(campus: Path) -> str:
    import openpyxl

    path = sorted((campus / "party" / "exports").glob("党组织信息*.xlsx"))[-1]
    rows = openpyxl.load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True)
    header = list(next(rows))
    col = header.index("书记人员编号")
    return next(str(r[col]) for r in rows if r[col])


def _another_valid_id(id_number: str) -> str:
    from stdnum.iso7064 import mod_11_2

    body = id_number[:14] + ("1" if id_number[14] != "1" else "2") + id_number[15:17]
    return body + mod_11_2.calc_check_digit(body)


def _seed_previous_versions(root: str, names: set[str]) -> dict[str, str]:
    """A previous version of each dataset, as an earlier run would have published it."""
    from hub.publisher import DatasetSpec, Publisher
    from pipelines.publish import DATASETS

    con = duckdb.connect()
    pub = Publisher(root)
    versions = {}
    for spec in (s for s in DATASETS if s.name in names):
        cols = ", ".join(f"'earlier'::VARCHAR AS \"{c.name}\"" for c in spec.columns)
        con.execute(f'CREATE OR REPLACE TABLE "{spec.name}" AS SELECT {cols}')
        earlier = DatasetSpec(spec.name, spec.description, f'SELECT * FROM "{spec.name}"', spec.columns[0].name,
                              spec.columns, spec.audience)
        versions[spec.name] = pub.publish(con, earlier, lineage=[], quality={"status": "an earlier run"})["version"]
    con.close()
    return versions


@pytest.mark.slow
def test_a_systemic_problem_stops_only_its_branch_and_a_bad_row_stops_nothing(tmp_path, campus_dir, monkeypatch):
    import dagster as dg
    from dagster import DagsterInstance

    from hub.demo import demo
    from hub.factory import build_definitions
    from hub.publisher import read_catalog
    from hub.warehouse import connect

    for k, v in _campus(tmp_path, campus_dir).items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env()
    campus = settings.campus_dir

    # Systemic: a third of the 学习平台 courses come with a kind nobody maps — far above 2% of the entity.
    unmapped: list[str] = []

    def bad_kinds(rows):
        for r in rows[::3]:
            r["kind"] = "未知类别"
            unmapped.append(r["course_id"])
        return rows
    _rewrite_jsonl(campus / "learning" / "courses.jsonl", bad_kinds)

    # One bad row: an HR record without a name. Two person records sharing a 工号: a branch secretary's HR
    # record carries a different (valid) ID number than the party register's, so two persons have the number.
    secretary = _a_secretary(campus)
    nameless: list[str] = []

    def bad_rows(rows):
        for r in rows:
            if r["gh"] == secretary:
                r["sfzjh"] = _another_valid_id(r["sfzjh"])
        victim = next(r for r in rows if r["gh"] != secretary)
        victim["xm"] = None
        nameless.append(victim["gh"])
        return rows
    _rewrite_jsonl(campus / "hr" / "staff.jsonl", bad_rows)

    job = build_definitions(settings).resolve_job_def("campus_main_job")
    graph = job.asset_layer.asset_graph
    bad_table = dg.AssetKey(["staging", "stg_learning_courses"])
    downstream = {k.path[1] for k in dg.AssetSelection.assets(bad_table).downstream().resolve(graph)
                  if k.path[0] == "publish"}
    every = {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "publish"}
    independent = every - downstream
    assert {"person_directory", "party_organisations", "zt_dzzqkjcsj"} <= independent
    assert {"mart_learning_course", "zt_dygbxxsj"} <= downstream
    from pipelines.publish import DATASETS
    earlier = _seed_previous_versions(settings.published_root_url, downstream & {s.name for s in DATASETS})

    out = io.StringIO()
    with DagsterInstance.get() as instance:
        result = demo(settings, scale=SMALL_SCALE, seed=SEED, console=Console(file=out, width=400),
                      instance=instance)
    text = out.getvalue()

    # exactly one blocking check failed: the quarantine rate of the courses, named with its table and rows
    assert not result.success, "a blocking check failed: the demo exits non-zero"
    assert [(b["check"], b["asset"], b["table"]) for b in result.blocking_checks] == [
        ("quarantine_rate", "staging/stg_learning_courses", "staging.stg_learning_courses")], text[-4000:]
    assert "quality.quarantine" in result.blocking_checks[0]["look_at"]
    assert len(result.failed_steps) == 1 and "quarantine_rate" in result.failed_steps[0], text[-4000:]
    assert "Blocking checks failed: 1" in text and "quarantine_rate" in text
    assert "staging.stg_learning_courses" in text and "FROM quality.quarantine WHERE stage = 'staging'" in text

    # every dataset not built on the bad table was published in this run; the others were held back
    assert set(result.held_back) == downstream, text[-4000:]
    catalog = read_catalog(settings.published_root_url)["datasets"]
    assert independent - {"analyst_snapshot", "party_report"} <= set(catalog)
    for name, version in earlier.items():  # the held-back datasets keep their previous version, whole
        assert catalog[name]["current_version"] == version, name
        folder = settings.published_root / name / version
        assert (folder / "manifest.json").is_file() and list((folder / "data").glob("*.parquet")), name

    con = connect(settings.warehouse_path, read_only=True)
    try:
        # the systemic problem is where the summary says: in quality.quarantine, with its rule
        quarantined = con.execute(result.blocking_checks[0]["look_at"]).fetchall()
        assert sorted((r[0], r[1]) for r in quarantined) == [("unmapped_code", c) for c in sorted(unmapped)]
        # a duplicate person number does not duplicate an organisation version
        versions, distinct = con.execute("SELECT count(*), count(DISTINCT (org_code, valid_from)) "
                                         "FROM warehouse.dim_party_org").fetchone()
        assert versions == distinct
        assert con.execute("SELECT count(*) FROM warehouse.dim_person WHERE staff_no = ?",
                           [secretary]).fetchone()[0] == 2, "the setup: two persons share the 工号"
        assert con.execute("SELECT bool_and(secretary_person_key IS NULL) FROM warehouse.dim_party_org "
                           "WHERE secretary_no = ?", [secretary]).fetchone()[0], "an ambiguous number names nobody"
        # the bad HR row is reported, not blocking: quarantined in staging, or a warning on dim_person
        in_quarantine = con.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'hr' AND entity = "
                                    "'staff' AND record_key = ?", nameless).fetchone()[0]
        warned = con.execute("""SELECT severity, passed FROM quality.check_result
                                WHERE check_name = 'warehouse.dim_person:expect_column_values_to_not_be_null(name)'
                                ORDER BY checked_at DESC LIMIT 1""").fetchone()
        assert in_quarantine or warned == ("warning", False)
    finally:
        con.close()
    assert catalog["person_directory"]["row_count"] > 0 and "party_organisations" in catalog


def test_the_quarantine_rate_check_blocks_only_what_is_built_on_its_table(tmp_path):
    """The check through Dagster on a real warehouse: within the threshold it passes; above it, or with the
    entity missing, it fails with ERROR and only the asset built on the table is skipped."""
    import dagster as dg

    from hub.resources import QualityResource, WarehouseResource
    from hub.warehouse import connect
    from pipelines.quarantine import _quarantine_rate_check

    path = tmp_path / "w.duckdb"
    con = connect(path)
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE TABLE staging.stg_learning_courses AS SELECT 'LC' || i AS course_id FROM range(97) t(i)")
    con.execute("INSERT INTO quality.quarantine (stage, source, entity, rule, record_key, detail) "
                "SELECT 'staging', 'learning', 'courses', 'unmapped_code', 'X' || i, 'kind has no mapping' "
                "FROM range(2) t(i) UNION ALL SELECT 'staging', 'learning', 'courses', 'duplicate_row', 'LC1', 'copy'")
    con.close()
    table = dg.AssetKey(["staging", "stg_learning_courses"])

    @dg.asset(key=table)
    def courses() -> None:  # the table is there already
        return None

    @dg.asset(key=["marts", "on_courses"], deps=[table])
    def on_courses() -> None:
        return None

    @dg.asset(key=["marts", "elsewhere"])
    def elsewhere() -> None:
        return None

    def run(rate: float):
        return dg.materialize([courses, on_courses, elsewhere, _quarantine_rate_check("stg_learning_courses")],
                              raise_on_error=False,
                              resources={"warehouse": WarehouseResource(path=str(path)),
                                         "quality": QualityResource(quarantine_max_rate_by_entity={
                                             "learning.courses": rate})})

    def outcome(result):
        [e] = result.get_asset_check_evaluations()
        built = {k.path[-1] for k in (m.asset_key for m in result.get_asset_materialization_events())}
        return e.passed, e.severity, e.metadata["quarantined"].value, built

    # 2 of 99 rows (the copy of a row is not a fault): 2.02% is above 2%, within 5%
    assert outcome(run(0.05)) == (True, dg.AssetCheckSeverity.ERROR, 2, {"stg_learning_courses", "on_courses",
                                                                         "elsewhere"})
    assert outcome(run(0.02)) == (False, dg.AssetCheckSeverity.ERROR, 2, {"stg_learning_courses", "elsewhere"})
    con = connect(path)
    con.execute("DELETE FROM staging.stg_learning_courses")
    con.execute("DELETE FROM quality.quarantine")
    con.close()
    failed = run(0.05)
    assert outcome(failed)[:1] == (False,) and outcome(failed)[3] == {"stg_learning_courses", "elsewhere"}
    [e] = failed.get_asset_check_evaluations()
    assert e.metadata["missing"].value and "whole entity is missing" in e.description
