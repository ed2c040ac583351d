"""Expectation suites as Dagster asset checks: one check ``expectations`` per asset that has a suite.

The check is blocking when one of its expectations is systemic (uniqueness or row count) with severity
``error`` (``quality/blocking.py``): such a failure (severity ERROR) stops what is built on the table in the
run, and, as the latest evaluation in Dagster's check storage, holds back publishing of what depends on it
until a later evaluation of the current data passes (``pipelines/gate.py``). Each expectation's outcome is
also appended to ``quality.check_result``, as history for analysts. Row-level expectations
(missing, out of set, range or shape) report with severity WARN, their counts and the keys of sample
rows in the metadata, and never stop anything. Suites are read when the definitions load (YAML only); Great
Expectations is imported only when a check runs (``quality.expectations``).
"""

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from hub.resources import WAREHOUSE_POOL, QualityResource, WarehouseResource
from pipelines.content import (
    copy_history,
    file_digest,
    inputs_fingerprint,
    last_evaluation,
    remember,
    reused_result,
)
from quality.blocking import look_at, sample_keys
from quality.datadocs import docs_url
from quality.expectations import SUITES_DIR, Suite, SuiteResult, suites_by_asset

# The code that evaluates a suite: a change to it is a change of every suite's definition (check reuse).
EVALUATOR = tuple(Path(__file__).resolve().parent.parent / f for f in (
    "quality/expectations.py", "quality/blocking.py", "quality/datadocs.py", "pipelines/expectations.py",
    "models/sql/macros.sql"))

CHECK_NAME = "expectations"


def _description(suites: list[Suite]) -> str:
    parts = []
    for s in suites:
        blocking = sum(e.blocking for e in s.expectations)
        parts.append(f"`{s.name}`: {len(s.expectations)} expectations ({blocking} blocking, "
                     f"{len(s.expectations) - blocking} reported)")
    return ("Great Expectations suite(s) from quality/expectations — " + "; ".join(parts)
            + ". Results are kept as history in quality.check_result and rendered as Data Docs.")


def _metadata(results: list[SuiteResult], index: str, keys: dict[tuple[str, str], list]) -> dict:
    failing = [{"suite": r.suite.name, "expectation": o.expectation.id,
                "severity": o.expectation.effective_severity, "blocking": o.expectation.blocking,
                "unexpected": o.unexpected, "observed": o.result.get("observed_value"),
                "samples": (o.result.get("partial_unexpected_list") or [])[:5],
                "sample_keys": keys.get((r.suite.name, o.expectation.id), []),
                "look_at": look_at(r.suite, o.expectation), "error": o.error}
               for r in results for o in r.failed]
    # The asset's own suite first (dim_person also carries the suites of the tables its model writes).
    ranked = sorted((r for r in results if r.docs_page), key=lambda r: r.suite.table != ".".join(r.suite.asset))
    meta = {
        "evaluated": sum(r.rows or 0 for r in results),
        "unexpected": sum(o.unexpected or 0 for r in results for o in r.failed),
        "expectations": sum(len(r.outcomes) for r in results),
        "failed_expectations": len(failing),
        "failed_errors": sum(f["blocking"] for f in failing),
        "failed_row_level": sum(not f["blocking"] for f in failing),
        "failing": dg.MetadataValue.json(failing),
        "engine": ", ".join(sorted({r.engine for r in results})),
        "seconds": round(sum(r.seconds for r in results), 3),
        "suites": ", ".join(r.suite.name for r in results),
        "data_docs_index": dg.MetadataValue.path(index),
    }
    for i, r in enumerate(ranked):  # http links (hub serve-docs): a browser opens no file:// link from the UI
        name = "data_docs" if i == 0 else f"data_docs {r.suite.name}"
        meta[name] = dg.MetadataValue.url(docs_url(r.docs_page, Path(index).parent))
    return meta


def _definition(suites: list[Suite], gx_max_rows: int, docs_index: str) -> dict:
    """What an evaluation of the suites depends on besides their tables' content: each suite, the code
    set files its value sets are read from, the evaluating code, the engine threshold and the Data Docs
    folder (pipelines/content.py). The row-count-vs-previous expectation also reads quality.check_result;
    on unchanged content its verdict is the same (the count is the one it was compared with last time)."""
    from models import codesets_dir

    codesets = sorted({src["codeset"] for s in suites for e in s.expectations for src in e.value_set_from})
    # the suites as loaded (what this check evaluates), not their files now
    return {"suites": {s.name: repr((s.table, s.asset, s.expectations)) for s in suites},
            "codesets": file_digest(*(codesets_dir / f"{c}.csv" for c in codesets)) if codesets else None,
            "code": file_digest(*EVALUATOR), "gx_max_rows": gx_max_rows, "docs": docs_index}


def _expectation_check(asset: tuple[str, ...], suites: list[Suite]) -> dg.AssetChecksDefinition:
    blocking = any(s.blocking for s in suites)

    @dg.asset_check(asset=dg.AssetKey(list(asset)), name=CHECK_NAME, blocking=blocking, pool=WAREHOUSE_POOL,
                    description=_description(suites),
                    metadata={"suites": ", ".join(s.name for s in suites), "blocking": blocking})
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
               quality: QualityResource) -> dg.AssetCheckResult:
        from quality.expectations import docs_index, quality_dir, run_gate

        check_key = f"{'/'.join(asset)}:{CHECK_NAME}"
        run_id = context.run.run_id
        with warehouse.connect() as con:  # GX up to the quality resource's gx_max_rows rows, SQL above
            # Data Docs under the run's college's folder (hub/colleges.py), else HUB_VAR_DIR's
            var_dir = Path(warehouse.var_dir) if warehouse.var_dir else None
            index = str(docs_index(quality_dir(var_dir)))
            # the same tables, suites, code and settings as the last real evaluation: its verdict stands
            inputs = inputs_fingerprint(con, [tuple(s.table.split(".", 1)) for s in suites],
                                        _definition(suites, quality.gx_max_rows, index), run_id)
            last = last_evaluation(con, check_key, inputs)
            if last is not None and all(Path(p).exists() for p in last.guard.get("docs_pages", [])):
                copy_history(con, last, run_id, assets=sorted({s.asset_str for s in suites}),
                             prefixes=[f"{s.name}:" for s in suites])
                context.log.info(f"{check_key}: inputs unchanged since run {last.run_id}; its verdict is reused")
                return reused_result(last)
            # the suite's pages; the site's index is rendered once after the run (pipelines/data_docs.py)
            results = run_gate(con, suites, run_id=run_id, gx_max_rows=quality.gx_max_rows, var_dir=var_dir,
                               render_index=False)
            # the rows behind a row-level failure, by their key (a blocking one names its query instead)
            keys = {(r.suite.name, o.expectation.id): sample_keys(con, r.suite, o.expectation)
                    for r in results for o in r.failed if not o.expectation.blocking}
            failed = [o for r in results for o in r.failed]
            errors = [o for o in failed if o.expectation.blocking]
            for o in failed:
                context.log.warning(f"{o.expectation.effective_severity}: {o.expectation.id} "
                                    f"unexpected={o.unexpected} {o.error or ''}".rstrip())
            result = dg.AssetCheckResult(
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
                metadata=_metadata(results, index, keys),
                description=(f"{len(failed)} of {sum(len(r.outcomes) for r in results)} expectations failed "
                             f"({len(errors)} blocking: "
                             + (", ".join(f"{o.expectation.id} on {r.suite.table}" for r in results
                                          for o in r.failed if o.expectation.blocking) or "none")
                             + ")") if failed else None)
            remember(con, check_key, inputs, result, run_id,
                     guard={"docs_pages": [str(r.docs_page) for r in results if r.docs_page]})
        return result

    return _check


def expectation_checks(asset_keys: Iterable[dg.AssetKey] | None = None, *,
                       directory=SUITES_DIR) -> list[dg.AssetChecksDefinition]:
    """One asset check per asset that has a suite; with ``asset_keys``, only for those assets (so a raw
    entity not declared in sources.yaml gets no check)."""
    wanted = None if asset_keys is None else {tuple(k.path) for k in asset_keys}
    return [_expectation_check(asset, suites) for asset, suites in sorted(suites_by_asset(directory).items())
            if wanted is None or asset in wanted]
