"""Content versions and checks that reuse their verdict on unchanged data (pipelines/content.py, issue #17).

On a copy of the campus warehouse (tests/conftest.py ``copy_campus_warehouse``), through Dagster with one
instance for the whole test: the real model asset of ``warehouse/dim_party_org`` (a multi-asset with
``warehouse/member_group``), its expectation check, the business-rule checks attached to it, and the
published dataset ``party_organisations`` that reads it — so the publish gate (pipelines/gate.py) judges
the evaluations the checks make.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from hub.warehouse import connect

ORGS = dg.AssetKey(["warehouse", "dim_party_org"])
PUBLISH = dg.AssetKey(["publish", "party_organisations"])
SIZE_RULE = "committee_size_invalid"


@pytest.fixture
def graph(tmp_path, copy_campus_warehouse):
    """(run, warehouse path): ``run(**overrides)`` materialises the table, its checks and the published
    dataset in one run on one instance; ``overrides``: ``suites_dir`` (expectation suites from another
    folder) or ``as_of`` (the run_settings resource's)."""
    from hub.factory import build_definitions
    from hub.settings import Settings
    from pipelines.expectations import expectation_checks
    from pipelines.publish import publish_assets
    from pipelines.rules import build_rule_checks
    from pipelines.warehouse import warehouse_assets
    from tests.campus_graph import environment

    path = copy_campus_warehouse(tmp_path / "warehouse.duckdb")
    with connect(path) as con:  # the fixture's build evaluated the rules: start with no memory
        con.execute("DELETE FROM meta.check_reuse")
    env = {"HUB_WAREHOUSE": str(path), "HUB_VAR_DIR": str(tmp_path), "HUB_PUBLISHED_ROOT": str(tmp_path / "pub"),
           "HUB_AS_OF": None}
    instance = dg.DagsterInstance.ephemeral()
    model = next(a for a in warehouse_assets if ORGS in a.keys)
    publish = next(a for a in publish_assets if a.key == PUBLISH)
    rules = [c for c in build_rule_checks() if next(iter(c.check_keys)).asset_key == ORGS]

    def run(suites_dir: Path | None = None, as_of: str = "") -> dg.ExecuteInProcessResult:
        with environment(env):
            resources = dict(build_definitions(Settings.from_env()).resources)
            settings = resources["run_settings"]  # a new resource: Dagster configures it from its arguments
            resources["run_settings"] = type(settings)(**{**{f: getattr(settings, f) for f in type(settings).model_fields},
                                                          "as_of": as_of})
            checks = expectation_checks([ORGS], **({"directory": suites_dir} if suites_dir else {}))
            return dg.materialize([model, publish, *checks, *rules], resources=resources, instance=instance,
                                  raise_on_error=False)

    yield run, path, instance
    instance.dispose()


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _reused(evaluation) -> bool:
    return "reused" in evaluation.metadata


def _gate(instance, result) -> dict[str, str]:
    """The publish gate's judgement of each check of the table (pipelines/gate.check_states)."""
    from pipelines.gate import check_states

    keys = {dg.AssetCheckKey(ORGS, name): (name == "expectations", ()) for name in _evaluations(result)}
    return {s.key.name: s.state for s in check_states(instance, keys)}


def _materialization(result, key=ORGS):
    return next(e for e in result.get_asset_materialization_events() if e.asset_key == key).materialization


def test_a_table_rebuilt_with_the_same_content_reuses_its_checks_and_is_published(graph):
    run, path, instance = graph
    first = run()
    assert first.success
    before = _evaluations(first)
    assert before and not any(_reused(e) for e in before.values()), "the first evaluation runs for real"
    built = _materialization(first)
    with connect(path, read_only=True) as con:
        violations = con.execute("SELECT * FROM quality.rule_violation WHERE rule = ? ORDER BY ALL",
                                 [SIZE_RULE]).fetchall()

    second = run()
    assert second.success
    again = _materialization(second)
    # the model ran again, with the same content: the same data version, and it says so
    assert again.metadata["content_changed"].value is False
    assert again.tags["dagster/data_version"] == built.tags["dagster/data_version"]
    after = _evaluations(second)
    assert set(after) == set(before)
    for name, e in after.items():
        assert _reused(e), name
        assert e.metadata["reused"].value == f"inputs unchanged since run {first.run_id}"
        assert (e.passed, e.severity, e.description) == (before[name].passed, before[name].severity,
                                                         before[name].description)
        assert {k: v for k, v in e.metadata.items() if not k.startswith("reused")} == dict(before[name].metadata)
    # an evaluation of the current materialization: the gate takes it, and the dataset was published
    assert set(_gate(instance, second).values()) <= {"passed", "failed"}
    assert PUBLISH in {e.asset_key for e in second.get_asset_materialization_events()}
    with connect(path, read_only=True) as con:
        # the rule's findings are still there, as the real evaluation wrote them
        assert con.execute("SELECT * FROM quality.rule_violation WHERE rule = ? ORDER BY ALL",
                           [SIZE_RULE]).fetchall() == violations
        # the history has this run's rows too, copied from the evaluation reused
        rows = dict(con.execute("SELECT run_id, count(*) FROM quality.check_result WHERE asset = ? "
                                "GROUP BY ALL", ["warehouse/dim_party_org"]).fetchall())
        assert rows[second.run_id] == rows[first.run_id] > len(before)
        marked = con.execute("SELECT count(*) FROM quality.check_result WHERE run_id = ? "
                             "AND detail->>'reused_from_run' = ?", [second.run_id, first.run_id]).fetchone()[0]
        assert marked == rows[second.run_id]


def test_one_changed_row_runs_the_checks_for_real_and_they_find_the_defect(graph):
    run, path, instance = graph
    first = run()
    assert first.success and _evaluations(first)["expectations"].passed
    with connect(path) as con:  # a 党支部's committee of 99 (3-7, at most 31): a defect in one organisation
        org = con.execute("SELECT org_code FROM warehouse.dim_party_org WHERE is_current AND status = 'active' "
                          "AND org_type = '党支部' AND committee_size IN (3, 5, 7) AND org_code NOT IN "
                          "(SELECT org_code FROM quality.rule_violation WHERE rule = ?) ORDER BY org_code LIMIT 1",
                          [SIZE_RULE]).fetchone()[0]
        # the staging the model reads the organisations' versions from
        con.execute("UPDATE staging.stg_party_orgs_history SET committee_size = 99 WHERE org_code = ?", [org])

    result = run()
    assert _materialization(result).metadata["content_changed"].value is True
    evaluations = _evaluations(result)
    assert not any(_reused(e) for e in evaluations.values())
    suite = evaluations["expectations"]
    assert not suite.passed and suite.severity == dg.AssetCheckSeverity.WARN
    failing = {f["expectation"]: f for f in suite.metadata["failing"].value}
    assert failing["expect_column_values_to_be_between(committee_size)"]["unexpected"] >= 1
    rule = evaluations[SIZE_RULE]
    assert not rule.passed
    with connect(path, read_only=True) as con:
        found = {r[0] for r in con.execute("SELECT org_code FROM quality.rule_violation WHERE rule = ?",
                                           [SIZE_RULE]).fetchall()}
    assert org in found
    assert set(_gate(instance, result).values()) <= {"passed", "failed"}


def test_the_same_data_under_another_suite_or_as_of_date_is_evaluated_again(graph, tmp_path):
    from quality.expectations import SUITES_DIR

    run, path, _ = graph
    assert run(as_of="2026-10-31").success
    reused = _evaluations(run(as_of="2026-10-31"))
    assert all(_reused(e) for e in reused.values())

    # another as-of date: the rules judge again; the suite (no date in it) keeps its verdict
    moved = _evaluations(run(as_of="2026-06-30"))
    assert not any(_reused(e) for n, e in moved.items() if n != "expectations") and _reused(moved["expectations"])
    assert moved["org_term_expired"].metadata["as_of"].value == date(2026, 6, 30).isoformat()

    # the suite's definition changed (a wider committee range): evaluated again, by the new definition
    suites = tmp_path / "suites"
    shutil.copytree(SUITES_DIR, suites)
    file = suites / "warehouse.dim_party_org.yaml"
    file.write_text(file.read_text(encoding="utf-8").replace("max_value: 31", "max_value: 33"), encoding="utf-8")
    changed = _evaluations(run(suites_dir=suites, as_of="2026-06-30"))
    assert not _reused(changed["expectations"])
    assert all(_reused(e) for n, e in changed.items() if n != "expectations")
