"""Incremental staging: rebuild only the keys that the raw loads new since the last build touched.

A staging model listed in :data:`INCREMENTAL_STAGING` is *key-local*: every output row of a key (staging,
quarantine, superseded versions, plausibility findings, row-rule findings) depends only on the raw rows of
that key (its SQL partitions its windows by the key, its joins are to code sets, and the row rules and
plausibility checks work per key or per row). Such a model can be brought up to date by recomputing the keys
that new raw loads contain, from every raw version of those keys, and replacing just those keys' rows:

1. *New loads*: the raw table's ``_load_id`` values not yet recorded for the model in
   ``meta.staging_watermark`` under the same fingerprint (the model's SQL with its header, the code sets it
   reads, its checks in quality/plausibility.yaml and, when a past_date check reads it, the as-of date).
2. *Touched keys*: the keys of the rows in those loads, normalised as :func:`models.row_rules.create_current`
   normalises them (surrounding spaces of every kind off), so that raw keys differing only by spaces, which
   are one key, are recomputed together. When a touched key has a NULL part, every key with one is touched
   too (their row-rule findings have a NULL record_key).
3. The touched keys' rows are deleted, set-based, by how each table is keyed: staging by its key columns,
   ``quality.quarantine`` and ``quality.superseded`` by the raw row (load_id and the ``_row_number`` of the
   original row), ``quality.value_finding`` by (load_id, row_number), ``quality.reconciliation_issue`` by
   the model and record_key.
4. Every raw row of a touched key (any load) goes through the steps of :func:`models.build.build_staging`
   (:func:`models.build.stage_model`: ``current``, the model's SQL, row rules, plausibility; then
   :func:`models.build.insert_quarantine`), and the result is inserted, in one transaction with the new
   watermark rows.

The result is the same tables a full build gives (tests/test_incremental_staging.py compares them, table
by table, after a sequence of loads). A full build runs instead when asked (``full=True``: the launchpad's
``full_rebuild``, or the ``run_settings`` resource's, which ``HUB_FULL_REBUILD=1`` sets), when the fingerprint changed, when the staging table or its
watermark is missing, or for a model not listed here. With no new load nothing is rebuilt, and the result
says so. The statistics' ``rows_superseded`` (like ``rows_in``) counts the rebuilt keys' rows.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

import duckdb

from connectors.raw_zone import q
from models import delta, row_rules
from models.build import (
    STAGING_MODELS,
    _raw_with_optional,
    build_staging,
    insert_quarantine,
    model_outcome,
    raw_exists,
    stage_model,
)
from models.plausibility import Check, load_checks, staging_as_of

# model -> {raw key column: the staging column holding it, normalised}, every key column. Only key-local
# models belong here.
INCREMENTAL_STAGING: dict[str, dict[str, str]] = {
    "stg_academic_grades": {"xh": "student_no", "kch": "course_code", "xnxq": "term", "ksxz": "exam_type_name"},
}
FINGERPRINT_VERSION = "2"  # 2: row rules and plausibility in the incremental path


def _ensure_watermark(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.staging_watermark (
        model VARCHAR NOT NULL, load_id VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
        built_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")


def fingerprint(con: duckdb.DuckDBPyConnection, name: str, *, checks: dict[str, list[Check]] | None = None,
                as_of: date | None = None) -> str:
    """The model's SQL (its header's row rules included), the content of the code sets it reads and its
    plausibility checks (with the as-of date when a past_date check reads it): when any changes, every key
    may change."""
    m = STAGING_MODELS[name]
    digest = hashlib.sha256((FINGERPRINT_VERSION + "\n" + m.sql).encode())
    mine = (load_checks() if checks is None else checks).get(name, [])
    digest.update(f"plausibility:{mine!r}\n".encode())
    if any(c.kind == "past_date" for c in mine):
        digest.update(f"as_of:{staging_as_of(con, as_of)}\n".encode())
    digest.update(code_set_digest(con, m.sql).encode())
    return digest.hexdigest()[:32]


def code_set_digest(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The content of the code sets (staging.cs_* and staging.code_map) a model's SQL reads."""
    out = []
    for table in sorted(set(re.findall(r"\bstaging\.(cs_[a-z0-9_]+|code_map)\b", sql))):
        (content,) = con.execute(f"SELECT md5(coalesce(string_agg(CAST(t AS VARCHAR), '\n' ORDER BY CAST(t AS VARCHAR)), '')) "
                                 f"FROM staging.{table} t").fetchone()
        out.append(f"{table}:{content}\n")
    return "".join(out)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ? AND NOT temporary", [schema, table]).fetchone()[0] > 0


def data_version(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """A version of the model's output: the loads it has taken in and the fingerprint (same: nothing changed)."""
    _ensure_watermark(con)
    (v,) = con.execute("SELECT md5(string_agg(fingerprint || ':' || load_id, ',' ORDER BY load_id)) "
                       "FROM meta.staging_watermark WHERE model = ?", [name]).fetchone()
    return v


def build_staging_incremental(con: duckdb.DuckDBPyConnection, name: str, *, full: bool = False,
                              checks: dict[str, list[Check]] | None = None, as_of: date | None = None) -> dict:
    """Bring ``staging.<name>`` up to date (see the module docstring). Returns build_staging's statistics
    plus ``mode`` (full, incremental or skipped), ``reason``, ``loads_processed`` and ``keys_touched``.
    ``checks`` and ``as_of``: the run's plausibility checks and as-of date (as for build_staging)."""
    m = STAGING_MODELS[name]
    keymap = INCREMENTAL_STAGING.get(name)
    if not raw_exists(con, m.raw_table):
        return build_staging(con, name, checks=checks, as_of=as_of)  # its one-line error
    _ensure_watermark(con)
    fp = fingerprint(con, name, checks=checks, as_of=as_of)
    raw = f"raw.{q(m.raw_table)}"
    reason = None
    if full:
        reason = "full rebuild requested"
    elif keymap is None or set(keymap) != set(m.primary_key) or m.snapshot or m.history:
        reason = "model is not incremental"
    elif not _table_exists(con, "staging", name):
        reason = "first build"
    elif not con.execute("SELECT count(*) FROM meta.staging_watermark WHERE model = ? AND fingerprint = ?",
                         [name, fp]).fetchone()[0]:
        reason = "model SQL, code sets or plausibility checks changed (or no watermark yet)"
    if reason:
        stats = build_staging(con, name, checks=checks, as_of=as_of)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM meta.staging_watermark WHERE model = ?", [name])
            con.execute(f"INSERT INTO meta.staging_watermark (model, load_id, fingerprint) "
                        f"SELECT DISTINCT ?, _load_id, ? FROM {raw}", [name, fp])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        loads = con.execute(f"SELECT count(DISTINCT _load_id) FROM {raw}").fetchone()[0]
        return {**stats, "mode": "full", "reason": reason, "loads_processed": loads, "keys_touched": None}

    new_loads = [r[0] for r in con.execute(
        f"SELECT DISTINCT _load_id FROM {raw} WHERE _load_id NOT IN "
        f"(SELECT load_id FROM meta.staging_watermark WHERE model = ? AND fingerprint = ?) ORDER BY 1",
        [name, fp]).fetchall()]
    total = con.execute(f"SELECT count(*) FROM staging.{q(name)}").fetchone()[0]
    if not new_loads:
        return {"rows_in": 0, "rows_accepted": 0, "rows_rejected": 0, "rejected_by_rule": {}, "rows_superseded": 0,
                "mode": "skipped",
                "reason": "no raw load since the last build", "loads_processed": 0, "keys_touched": 0,
                "table_rows": total}

    source = _raw_with_optional(con, m)
    rules = row_rules.rules_of(con, m, source)  # the key normalisation create_current applies
    keys = m.primary_key
    normalised = ", ".join(f"{rules.norm(k, 'r.')} AS {q(k)}" for k in keys)
    any_null = " OR ".join(f"r.{q(k)} IS NULL" for k in keys)
    match_raw = " AND ".join(f"{rules.norm(k, 'r.')} IS NOT DISTINCT FROM t.{q(k)}" for k in keys)
    match_stg = " AND ".join(f"s.{q(col)} IS NOT DISTINCT FROM t.{q(raw_col)}" for raw_col, col in keymap.items())
    on_raw_row = ("EXISTS (SELECT 1 FROM _raw_touched t WHERE t._load_id = x.load_id "
                  "AND t._row_number = {row})")
    from_json = "TRY_CAST(x.original_row ->> '_row_number' AS BIGINT)"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _new_loads (load_id VARCHAR)")
        con.executemany("INSERT INTO _new_loads VALUES (?)", [[x] for x in new_loads])
        # the new loads' keys, normalised as create_current does; when one has a NULL part, every key with
        # one (their findings have a NULL record_key, so they are replaced together)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _touched AS
            WITH k AS (SELECT {normalised}, r._load_id IN (SELECT load_id FROM _new_loads) AS _new,
                              ({any_null}) AS _null FROM {source} r)
            SELECT DISTINCT * EXCLUDE (_new, _null) FROM k
            WHERE _new OR (_null AND EXISTS (SELECT 1 FROM k WHERE _new AND _null))""")
        touched = con.execute("SELECT count(*) FROM _touched").fetchone()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE _raw_touched AS SELECT r.* FROM {source} r "
                    f"SEMI JOIN _touched t ON {match_raw}")
        # what the touched keys had: their staging, quarantine, superseded rows and findings
        con.execute(f"DELETE FROM staging.{q(name)} s USING _touched t WHERE {match_stg}")
        con.execute(f"DELETE FROM quality.quarantine x WHERE x.stage = 'staging' AND x.source = ? AND x.entity = ? "
                    f"AND {on_raw_row.format(row=from_json)}", [m.source, m.entity])
        con.execute(f"DELETE FROM quality.superseded x WHERE x.stage = 'staging' AND x.model = ? "
                    f"AND {on_raw_row.format(row=from_json)}", [name])
        con.execute(f"DELETE FROM quality.value_finding x WHERE x.model = ? "
                    f"AND {on_raw_row.format(row='x.row_number')}", [name])
        con.execute(f"""DELETE FROM quality.reconciliation_issue WHERE model = ?
            AND (record_key IN (SELECT {rules.record_key('t')} FROM _touched t)
                 OR (record_key IS NULL AND EXISTS (SELECT 1 FROM _touched t WHERE {rules.record_key('t')} IS NULL)))""",
                    [name])
        # the same steps as models.build.build_staging, over the touched keys' raw rows in every load
        superseded = stage_model(con, m, "_raw_touched", replace_all=False, checks=checks, as_of=as_of)
        insert_quarantine(con, m)
        con.execute(f"""INSERT INTO staging.{q(name)} BY NAME
            SELECT * EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number)
            FROM _model WHERE _reject_rule IS NULL""")
        stats = model_outcome(con)
        con.execute("INSERT INTO meta.staging_watermark (model, load_id, fingerprint) "
                    "SELECT ?, load_id, ? FROM _new_loads", [name, fp])
        # the touched keys, by the staging columns, for the models built on it (models/delta.py)
        con.execute("CREATE OR REPLACE TEMP VIEW _delta_keys AS SELECT "
                    + ", ".join(f"{q(raw_col)} AS {q(col)}" for raw_col, col in keymap.items()) + " FROM _touched")
        delta.record(con, name, f"staging.{q(name)}", keys="_delta_keys", key_columns=tuple(keymap.values()))
        con.execute("DROP VIEW _delta_keys")
        for obj in ("VIEW current", "VIEW _raw_normalised", "TABLE _latest", "TABLE _model", "TABLE _raw_touched",
                    "TABLE _touched", "TABLE _new_loads"):
            con.execute(f"DROP {obj}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    accepted = stats.pop("accepted", 0)
    total = con.execute(f"SELECT count(*) FROM staging.{q(name)}").fetchone()[0]
    return {"rows_in": accepted + sum(stats.values()), "rows_accepted": accepted,
            "rows_rejected": sum(stats.values()), "rejected_by_rule": stats, "mode": "incremental",
            "rows_superseded": superseded, "reason": f"{len(new_loads)} new raw load(s)",
            "loads_processed": len(new_loads), "keys_touched": touched, "table_rows": total}
