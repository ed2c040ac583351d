"""Incremental staging: rebuild only the keys that the raw loads new since the last build touched.

A staging model listed in :data:`INCREMENTAL_STAGING` is *key-local*: every output row and every quarantine
row of a key depends only on the raw rows of that key (its SQL partitions its windows by the key, and its
joins are to code sets). Such a model can be brought up to date by recomputing the keys that new raw loads
contain, from every raw version of those keys, and replacing just those keys' staging and quarantine rows:

1. *New loads*: the raw table's ``_load_id`` values not yet recorded for the model in
   ``meta.staging_watermark`` under the same fingerprint (the model's SQL and the code sets it reads).
2. *Touched keys*: the keys of the rows in those loads, as the staging table holds them (trimmed), so that
   two raw keys differing only by spaces, which land on one staging key, are recomputed together.
3. Every raw row of a touched key (any load) goes through the model's SQL exactly as in
   :func:`models.build.build_staging`; the touched keys' staging rows and the quarantine rows that came from
   those raw rows are replaced, in one transaction with the new watermark rows.

The result is the same table a full build gives (tests/test_incremental_staging.py compares the two, table
by table, after a sequence of loads). A full build runs instead when asked (``full=True``: the launchpad's
``full_rebuild`` or ``HUB_FULL_REBUILD=1``), when the fingerprint changed (new SQL or code sets), when the
staging table or its watermark is missing, or for a model not listed here. With no new load nothing is
rebuilt, and the result says so.
"""

from __future__ import annotations

import hashlib
import os
import re

import duckdb

from connectors.raw_zone import q
from models.build import STAGING_MODELS, _raw_with_optional, build_staging, raw_exists

# model -> {raw key column: the staging column holding trim(raw column)}. Only key-local models belong here.
INCREMENTAL_STAGING: dict[str, dict[str, str]] = {
    "stg_academic_grades": {"xh": "student_no", "kch": "course_code", "xnxq": "term", "ksxz": "exam_type_name"},
}
FULL_REBUILD_VAR = "HUB_FULL_REBUILD"
FINGERPRINT_VERSION = "1"


def full_rebuild_requested() -> bool:
    return os.environ.get(FULL_REBUILD_VAR, "").strip().lower() in ("1", "true", "yes")


def _ensure_watermark(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.staging_watermark (
        model VARCHAR NOT NULL, load_id VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
        built_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")


def fingerprint(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The model's SQL and the content of the code sets it reads: when either changes, every key may change."""
    m = STAGING_MODELS[name]
    digest = hashlib.sha256((FINGERPRINT_VERSION + "\n" + m.sql).encode())
    for table in sorted(set(re.findall(r"\bstaging\.(cs_[a-z0-9_]+|code_map)\b", m.sql))):
        (content,) = con.execute(f"SELECT md5(coalesce(string_agg(CAST(t AS VARCHAR), '\n' ORDER BY CAST(t AS VARCHAR)), '')) "
                                 f"FROM staging.{table} t").fetchone()
        digest.update(f"{table}:{content}\n".encode())
    return digest.hexdigest()[:32]


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ? AND NOT temporary", [schema, table]).fetchone()[0] > 0


def data_version(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """A version of the model's output: the loads it has taken in and the fingerprint (same: nothing changed)."""
    _ensure_watermark(con)
    (v,) = con.execute("SELECT md5(string_agg(fingerprint || ':' || load_id, ',' ORDER BY load_id)) "
                       "FROM meta.staging_watermark WHERE model = ?", [name]).fetchone()
    return v


def build_staging_incremental(con: duckdb.DuckDBPyConnection, name: str, *, full: bool = False) -> dict:
    """Bring ``staging.<name>`` up to date (see the module docstring). Returns build_staging's statistics
    plus ``mode`` (full, incremental or skipped), ``reason``, ``loads_processed`` and ``keys_touched``."""
    m = STAGING_MODELS[name]
    keymap = INCREMENTAL_STAGING.get(name)
    if not raw_exists(con, m.raw_table):
        return build_staging(con, name)  # its one-line error
    _ensure_watermark(con)
    fp = fingerprint(con, name)
    raw = f"raw.{q(m.raw_table)}"
    reason = None
    if full:
        reason = "full rebuild requested"
    elif keymap is None or m.snapshot or m.history:
        reason = "model is not incremental"
    elif not _table_exists(con, "staging", name):
        reason = "first build"
    elif not con.execute("SELECT count(*) FROM meta.staging_watermark WHERE model = ? AND fingerprint = ?",
                         [name, fp]).fetchone()[0]:
        reason = "model SQL or code sets changed (or no watermark yet)"
    if reason:
        stats = build_staging(con, name)
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
        return {"rows_in": 0, "rows_accepted": 0, "rows_rejected": 0, "rejected_by_rule": {}, "mode": "skipped",
                "reason": "no raw load since the last build", "loads_processed": 0, "keys_touched": 0,
                "table_rows": total}

    pk = ", ".join(q(k) for k in m.primary_key)
    source = _raw_with_optional(con, m)
    trimmed = ", ".join(f"trim({q(raw_col)}) AS {q(col)}" for raw_col, col in keymap.items())
    match_raw = " AND ".join(f"trim(r.{q(raw_col)}) IS NOT DISTINCT FROM t.{q(col)}" for raw_col, col in keymap.items())
    match_stg = " AND ".join(f"s.{q(col)} IS NOT DISTINCT FROM t.{q(col)}" for col in keymap.values())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _new_loads (load_id VARCHAR)")
        con.executemany("INSERT INTO _new_loads VALUES (?)", [[x] for x in new_loads])
        con.execute(f"CREATE OR REPLACE TEMP TABLE _touched AS SELECT DISTINCT {trimmed} FROM {source} "
                    f"WHERE _load_id IN (SELECT load_id FROM _new_loads)")
        keys = con.execute("SELECT count(*) FROM _touched").fetchone()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE _raw_touched AS SELECT r.* FROM {source} r "
                    f"SEMI JOIN _touched t ON {match_raw}")
        # the same `current` as models.build.build_staging, over the touched keys' raw rows only
        con.execute(f"""CREATE OR REPLACE TEMP VIEW current AS
            SELECT * EXCLUDE (_rank), _rank > 1 AS _duplicate FROM (
                SELECT r.*, row_number() OVER (PARTITION BY {pk}, _load_id ORDER BY _row_number) AS _rank
                FROM _raw_touched r
                QUALIFY _extracted_at = max(_extracted_at) OVER (PARTITION BY {pk}))""")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _model AS {m.sql}")
        con.execute("""DELETE FROM quality.quarantine qq
            WHERE qq.stage = 'staging' AND qq.source = ? AND qq.entity = ?
              AND EXISTS (SELECT 1 FROM _raw_touched r WHERE r._load_id = qq.load_id
                          AND r._row_number = TRY_CAST(qq.original_row ->> '_row_number' AS BIGINT))""",
                    [m.source, m.entity])
        con.execute(f"""INSERT INTO quality.quarantine
                (stage, source, entity, load_id, rule, record_key, detail, original_row)
            SELECT 'staging', ?, ?, m.load_id, m._reject_rule, m._record_key, m._reject_detail, to_json(r)
            FROM _model m JOIN {raw} r ON r._load_id = m.load_id AND r._row_number = m._row_number
            WHERE m._reject_rule IS NOT NULL""", [m.source, m.entity])
        con.execute(f"DELETE FROM staging.{q(name)} s USING _touched t WHERE {match_stg}")
        con.execute(f"""INSERT INTO staging.{q(name)} BY NAME
            SELECT * EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number)
            FROM _model WHERE _reject_rule IS NULL""")
        stats = dict(con.execute("SELECT coalesce(_reject_rule, 'accepted'), count(*) FROM _model GROUP BY ALL")
                     .fetchall())
        con.execute("INSERT INTO meta.staging_watermark (model, load_id, fingerprint) "
                    "SELECT ?, load_id, ? FROM _new_loads", [name, fp])
        for obj in ("VIEW current", "TABLE _model", "TABLE _raw_touched", "TABLE _touched", "TABLE _new_loads"):
            con.execute(f"DROP {obj}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    accepted = stats.pop("accepted", 0)
    total = con.execute(f"SELECT count(*) FROM staging.{q(name)}").fetchone()[0]
    return {"rows_in": accepted + sum(stats.values()), "rows_accepted": accepted,
            "rows_rejected": sum(stats.values()), "rejected_by_rule": stats, "mode": "incremental",
            "reason": f"{len(new_loads)} new raw load(s)", "loads_processed": len(new_loads),
            "keys_touched": keys, "table_rows": total}
