"""Content versions of the tables the models write, and checks that reuse their verdict on unchanged data.

**Content version.** After a staging, warehouse or mart model is built, its asset computes a fingerprint of
each table it wrote (:func:`table_fingerprint`: the column names and types, the row count, and the sum and
the XOR of a hash of every row — one set-based aggregate, independent of row order) and reports it as the
materialization's data version (``dg.DataVersion``), with the metadata ``content_changed`` (the fingerprint
differs from the table's previous one) and ``content_fingerprint``. A model rebuilt with the same content
therefore shows the same data version in the UI, and says so.

The fingerprints live in the warehouse, ``meta.content_version`` (one row per table, with the run that
computed it; the warehouse, hence this table, is per college). A build first clears its tables'
fingerprints (:func:`forget_content`) and records them when it is done (:func:`record_content`). A check
takes a table's fingerprint as recorded only when it was computed in the check's own run (the model built
the table in this run, or an earlier check of the run fingerprinted it); otherwise it fingerprints the
table itself, once per run (:func:`current_fingerprints`). So a table changed between runs by anything
but its model (a test, a repair by hand) is never taken for unchanged.

**Reuse.** An expectation check (pipelines/expectations.py) or a business-rule check (pipelines/rules.py)
computes the fingerprint of its inputs (:func:`inputs_fingerprint`): the content fingerprints of every table
it reads (staging, warehouse and marts tables; a check reading a raw table always runs), the definition
(the suite as loaded, or the rule's SQL, severity and thresholds), the code that evaluates it, and the
settings it depends on (as-of date, engine threshold, Data Docs folder). When that
equals the inputs of the check's last real evaluation (``meta.check_reuse``), the check returns that
evaluation's verdict (passed, severity, description, metadata) without running Great Expectations or SQL,
with ``reused: inputs unchanged since run <id>``. It is still an evaluation made after the asset's current
materialization, so the publish gate (pipelines/gate.py) takes it as current. Its side effects stay
consistent: the history in ``quality.check_result`` gets copies of the original evaluation's rows under the
new run id (``detail.reused_from_run``), so that ``hub status`` and the history show one row per check and
run as before; a rule's rows in ``quality.rule_violation`` are left as they are, and are verified (their
own fingerprint) before a verdict is reused; the Data Docs pages of the original evaluation are kept and
must still exist. Anything different — a table's content, a definition, the rule's rows, a page gone —
means a real evaluation.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from connectors.raw_zone import q

ROW_ALIAS = "_content_row_"
# The schemas the models write: the tables whose checks may reuse a verdict. A raw table changes whenever
# its check runs (a raw check runs only after a new load), so fingerprinting it would be wasted.
MODEL_SCHEMAS = {"staging", "warehouse", "marts"}


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.content_version (
        schema_name      VARCHAR NOT NULL,
        table_name       VARCHAR NOT NULL,
        fingerprint      VARCHAR,          -- NULL while a build of the table is under way (or died)
        run_id           VARCHAR,          -- the run that computed it: only that run takes it as it is
        last_fingerprint VARCHAR,          -- the last materialization's: content_changed compares with it
        row_count        BIGINT,
        recorded_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (schema_name, table_name))""")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.model_inputs (
        model       VARCHAR PRIMARY KEY,    -- layer.name
        inputs      VARCHAR NOT NULL,       -- inputs_fingerprint of its last build
        outputs     VARCHAR NOT NULL,       -- JSON: the content fingerprint of each table it wrote
        run_id      VARCHAR,
        built_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.check_reuse (
        check_key   VARCHAR PRIMARY KEY,    -- asset/key:check_name
        inputs      VARCHAR NOT NULL,       -- inputs_fingerprint of the last real evaluation
        run_id      VARCHAR,                -- the run of that evaluation
        passed      BOOLEAN NOT NULL,
        severity    VARCHAR NOT NULL,       -- ERROR | WARN
        description VARCHAR,
        metadata    VARCHAR,                -- its metadata, serialised by Dagster's serdes
        guard       VARCHAR,                -- what must still hold for a reuse (JSON)
        evaluated_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")


def current_run_id() -> str | None:
    """The run of the step executing now (None outside a step)."""
    try:
        return dg.OpExecutionContext.get().run_id
    except Exception:
        return None


# ------------------------------------------------------------------------------------------- content


def table_fingerprint(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[str, int]:
    """(fingerprint, rows) of a table's content: its columns (name and type, in order), its row count and
    the sum and XOR of a 64-bit hash of each row. Set-based and independent of row order; a duplicated row
    changes the sum. Same content, same fingerprint."""
    (columns,) = con.execute(
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = ? AND table_name = ?", [schema, table]).fetchone()
    rows, total, xor = con.execute(
        f"SELECT count(*), coalesce(sum(hash({ROW_ALIAS})::HUGEINT), 0), coalesce(bit_xor(hash({ROW_ALIAS})), 0) "
        f"FROM {q(schema)}.{q(table)} AS {ROW_ALIAS}").fetchone()
    text = f"{columns}|{rows}|{total}|{xor}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], rows


def forget_content(con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]]) -> None:
    """Before a build: the tables' fingerprints no longer stand (the previous one is kept to compare)."""
    _ensure(con)
    for schema, table in tables:
        con.execute("UPDATE meta.content_version SET fingerprint = NULL WHERE schema_name = ? AND table_name = ?",
                    [schema, table])


def record_content(con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]],
                   run_id: str | None = None, *, rebuilt: bool = True) -> dict[tuple[str, str], dict]:
    """After a build: fingerprint each table, store it (for the checks of ``run_id``, default the current
    step's run) and return its materialization metadata (``content_fingerprint``, ``content_changed`` against
    the previous materialization's, ``content_fingerprint_seconds``); :func:`data_version_of` takes the data
    version from it. ``rebuilt=False`` (an incremental model that skipped: it wrote nothing): the previous
    fingerprint is reported again without reading the table, and the checks fingerprint it themselves."""
    _ensure(con)
    run_id = run_id or current_run_id()
    out = {}
    for schema, table in tables:
        if not rebuilt:
            kept = con.execute("SELECT last_fingerprint FROM meta.content_version WHERE schema_name = ? "
                               "AND table_name = ? AND last_fingerprint IS NOT NULL", [schema, table]).fetchone()
            if kept is not None:
                out[(schema, table)] = {"content_fingerprint": kept[0], "content_changed": False,
                                        "content_fingerprint_seconds": 0.0}
                continue
        started = time.perf_counter()
        fingerprint, rows = table_fingerprint(con, schema, table)
        seconds = time.perf_counter() - started
        previous = con.execute("SELECT last_fingerprint FROM meta.content_version WHERE schema_name = ? "
                               "AND table_name = ?", [schema, table]).fetchone()
        con.execute("INSERT OR REPLACE INTO meta.content_version VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
                    [schema, table, fingerprint, run_id, fingerprint, rows])
        changed = previous is None or previous[0] != fingerprint
        out[(schema, table)] = {
            "content_fingerprint": fingerprint,
            "content_changed": changed,
            "content_fingerprint_seconds": round(seconds, 4),
            **({} if changed else {"content_note": dg.MetadataValue.md(
                "Rebuilt with the same content as the previous materialization (same data version): "
                "checks on unchanged inputs reuse their verdicts.")}),
        }
    return out


def restore_content(con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]]) -> None:
    """A build that wrote nothing after all (an incremental fact with no change): its tables' last versions
    stand again, for the snapshot; not as computed in this run (run_id NULL), so the checks fingerprint
    them themselves."""
    _ensure(con)
    for schema, table in tables:
        con.execute("UPDATE meta.content_version SET fingerprint = last_fingerprint, run_id = NULL "
                    "WHERE schema_name = ? AND table_name = ? AND fingerprint IS NULL", [schema, table])


def data_version_of(metadata: Mapping) -> dg.DataVersion | None:
    """The data version of a materialization whose metadata :func:`record_content` filled."""
    fingerprint = metadata.get("content_fingerprint")
    return dg.DataVersion(str(fingerprint)) if fingerprint else None


def current_fingerprints(con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]],
                         run_id: str | None) -> dict | None:
    """The fingerprint of each table's content now: the one recorded in this run (by the model that built
    it, or by an earlier check of the run), else computed here and recorded for the rest of the run — a
    table is fingerprinted at most once per run, and never trusted across runs (the file may have been
    changed by other means in between). None when a table does not exist or no run is given."""
    _ensure(con)
    wanted = sorted(set(tables))
    if run_id is None or any(schema not in MODEL_SCHEMAS for schema, _ in wanted):
        return None
    known = {(s, t): f for s, t, f in con.execute(
        "SELECT schema_name, table_name, fingerprint FROM meta.content_version "
        "WHERE fingerprint IS NOT NULL AND run_id = ?", [run_id]).fetchall()}
    out = {}
    for schema, table in wanted:
        fingerprint = known.get((schema, table))
        if fingerprint is None:
            exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                                 "AND table_name = ?", [schema, table]).fetchone()[0]
            if not exists:
                return None
            fingerprint, rows = table_fingerprint(con, schema, table)
            updated = con.execute("UPDATE meta.content_version SET fingerprint = ?, run_id = ?, row_count = ? "
                                  "WHERE schema_name = ? AND table_name = ? RETURNING 1",
                                  [fingerprint, run_id, rows, schema, table]).fetchall()
            if not updated:  # never built by a model asset: no last_fingerprint
                con.execute("INSERT INTO meta.content_version VALUES (?, ?, ?, ?, NULL, ?, current_timestamp)",
                            [schema, table, fingerprint, run_id, rows])
        out[f"{schema}.{table}"] = fingerprint
    return out


# ------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Evaluation:
    """The last real evaluation of a check, as meta.check_reuse keeps it."""

    run_id: str
    passed: bool
    severity: str
    description: str | None
    metadata: dict
    guard: dict


def file_digest(*paths: str | Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode("utf-8") + b"\0")
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def inputs_fingerprint(con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]],
                       definition: object, run_id: str | None) -> str | None:
    """One fingerprint of everything a check's verdict depends on: the content fingerprints of ``tables``
    (as of ``run_id``) and ``definition`` (JSON-serialisable: the suite or rule, the code evaluating it, the
    settings). None when a table does not exist: the check then runs for real."""
    tables_fp = current_fingerprints(con, tables, run_id)
    if tables_fp is None:
        return None
    text = json.dumps({"tables": tables_fp, "definition": definition}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def last_evaluation(con: duckdb.DuckDBPyConnection, check_key: str, inputs: str | None) -> Evaluation | None:
    """The check's last real evaluation when it was made on exactly ``inputs``; else None."""
    if inputs is None:
        return None
    _ensure(con)
    row = con.execute("SELECT run_id, passed, severity, description, metadata, guard FROM meta.check_reuse "
                      "WHERE check_key = ? AND inputs = ?", [check_key, inputs]).fetchone()
    if row is None:
        return None
    from dagster._serdes import deserialize_value

    try:
        metadata = deserialize_value(row[4]) if row[4] else {}
    except Exception:  # written by another Dagster version: evaluate again
        return None
    return Evaluation(row[0], row[1], row[2], row[3], metadata, json.loads(row[5]) if row[5] else {})


def remember(con: duckdb.DuckDBPyConnection, check_key: str, inputs: str | None, result: dg.AssetCheckResult,
             run_id: str, guard: Mapping | None = None) -> None:
    """Keep a real evaluation's inputs and verdict for the next evaluation to reuse (None inputs: a table
    had no fingerprint; any earlier record is dropped)."""
    _ensure(con)
    if inputs is None:
        con.execute("DELETE FROM meta.check_reuse WHERE check_key = ?", [check_key])
        return
    from dagster._core.definitions.metadata import normalize_metadata
    from dagster._serdes import serialize_value

    metadata = serialize_value(normalize_metadata(dict(result.metadata or {})))
    con.execute("INSERT OR REPLACE INTO meta.check_reuse VALUES (?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                [check_key, inputs, run_id, result.passed, result.severity.value, result.description, metadata,
                 json.dumps(dict(guard or {}), sort_keys=True, default=str)])


def reused_result(evaluation: Evaluation) -> dg.AssetCheckResult:
    """The earlier evaluation's verdict, said to be reused, as this run's evaluation."""
    return dg.AssetCheckResult(
        passed=evaluation.passed, severity=dg.AssetCheckSeverity(evaluation.severity),
        description=evaluation.description,
        metadata={**evaluation.metadata, "reused": f"inputs unchanged since run {evaluation.run_id}",
                  "reused_from_run": evaluation.run_id})


def copy_history(con: duckdb.DuckDBPyConnection, evaluation: Evaluation, run_id: str, *,
                 assets: Sequence[str], check_names: Sequence[str] = (), prefixes: Sequence[str] = ()) -> int:
    """Append to quality.check_result a copy of the original evaluation's rows of this check (by asset and
    check name or name prefix) under ``run_id``, marked ``reused_from_run`` in their detail. Returns how many."""
    names = " OR ".join(["check_name = ?"] * len(check_names) + ["starts_with(check_name, ?)"] * len(prefixes))
    params = [evaluation.run_id, *assets, *check_names, *prefixes]
    before = con.execute("SELECT count(*) FROM quality.check_result").fetchone()[0]
    con.execute(f"""INSERT INTO quality.check_result (check_name, asset, engine, severity, passed, evaluated,
                        unexpected, detail, run_id)
                    SELECT check_name, asset, engine, severity, passed, evaluated, unexpected,
                           json_merge_patch(coalesce(detail, '{{}}'::JSON), ?::JSON), ?
                    FROM quality.check_result
                    WHERE run_id = ? AND asset IN ({', '.join('?' * len(assets))}) AND ({names})""",
                [json.dumps({"reused_from_run": evaluation.run_id}), run_id, *params])
    return con.execute("SELECT count(*) FROM quality.check_result").fetchone()[0] - before


# ------------------------------------------------------------------------------------------- models


def unchanged_model(con: duckdb.DuckDBPyConnection, model: str, inputs: str | None,
                    outputs: Sequence[tuple[str, str]], run_id: str | None) -> str | None:
    """The run of the model's last build when that build read exactly ``inputs`` (see
    :func:`inputs_fingerprint`) and its tables still hold what it wrote (their content now, fingerprinted
    once per run); else None, and the model must be built."""
    if inputs is None:
        return None
    _ensure(con)
    row = con.execute("SELECT run_id, outputs FROM meta.model_inputs WHERE model = ? AND inputs = ?",
                      [model, inputs]).fetchone()
    if row is None:
        return None
    now = current_fingerprints(con, outputs, run_id)
    return row[0] if now is not None and now == json.loads(row[1]) else None


def remember_model(con: duckdb.DuckDBPyConnection, model: str, inputs: str | None,
                   content: Mapping[tuple[str, str], Mapping], run_id: str | None) -> None:
    """After a build: what it read (``inputs``; None forgets) and the content fingerprints it wrote
    (:func:`record_content`'s metadata)."""
    _ensure(con)
    if inputs is None:
        con.execute("DELETE FROM meta.model_inputs WHERE model = ?", [model])
        return
    outputs = {f"{s}.{t}": m["content_fingerprint"] for (s, t), m in content.items()}
    con.execute("INSERT OR REPLACE INTO meta.model_inputs VALUES (?, ?, ?, ?, current_timestamp)",
                [model, inputs, json.dumps(outputs, sort_keys=True), run_id])
