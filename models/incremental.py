"""Incremental staging: rebuild only the keys that the raw loads new since the last build touched.

A staging model listed in :data:`INCREMENTAL_STAGING` is *key-local*: every output row of a key (staging,
quarantine, superseded versions, plausibility findings, row-rule findings) depends only on the raw rows of
that key (its SQL partitions its windows by the key, its joins are to code sets, and the row rules and
plausibility checks work per key or per row). Such a model can be brought up to date by recomputing the keys
that new raw loads contain, from every raw version of those keys, and replacing just those keys' rows:

1. *New loads*: the raw table's ``_load_id`` values not yet recorded for the model in
   ``meta.staging_watermark`` under the same fingerprint (the model's SQL with its header and the macros it
   calls, the code sets it reads, its checks in quality/plausibility.yaml and, when a past_date check reads
   it, whether an as-of date is set).
2. *Touched keys*: the keys of the rows in those loads, normalised as :func:`models.row_rules.create_current`
   normalises them (surrounding spaces of every kind off), so that raw keys differing only by spaces, which
   are one key, are recomputed together. When a touched key has a NULL part, every key with one is touched
   too (their row-rule findings have a NULL record_key). Where a staging key column is computed from the
   raw key (:data:`KEY_IMAGES`: 党费 ``缴费月份`` '2024-3' and '2024-03' are both month 2024-03-01), every
   raw key with the same staging key is touched too: they share staging rows. When the as-of date of the
   model's past_date checks moved since the last build (``meta.staging_as_of``; it follows the data unless
   configured), the keys of staged rows dated after the earlier of the two dates and of every quarantined
   row are touched too, with or without a new load: only those can be judged otherwise.
3. The touched keys' rows are deleted, set-based, by how each table is keyed: staging by its key columns,
   ``quality.quarantine`` and ``quality.superseded`` by the raw row (load_id and the ``_row_number`` of the
   original row), ``quality.value_finding`` by (load_id, row_number), ``quality.reconciliation_issue`` by
   the model and record_key.
4. Every raw row of a touched key (any load) goes through the steps of :func:`models.build.build_staging`
   (:func:`models.build.stage_model`: ``current``, the model's SQL, row rules, plausibility; then
   :func:`models.build.insert_quarantine`), and the result is inserted, in one transaction with the new
   watermark rows.

The result is the same tables a full build gives (tests/test_incremental_staging.py for grades and
tests/test_incremental_staging_models.py for every other model compare them, table by table, after a
sequence of loads; benchmarks/staging_incremental.py at scale). A full build runs instead when asked
(``full=True``: the launchpad's ``full_rebuild``, or the ``run_settings`` resource's, which
``HUB_FULL_REBUILD=1`` sets), when the fingerprint changed, when the staging table, its watermark or its
recorded as-of date is missing, or for a model not listed here (the snapshot models: see
:data:`INCREMENTAL_STAGING`). With no new load and no move of the as-of date nothing is rebuilt, and the
result says so. The statistics' ``rows_superseded`` (like ``rows_in``) counts the rebuilt keys' rows.
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
# models belong here: each one's SQL reads ``current`` alone, its windows are partitioned by the key, and it
# joins only code sets (staging.code_map, staging.cs_*); its row rules and plausibility checks judge a row or
# a key. Not here, rebuilt whole on every run that has a new load:
# - stg_party_members, stg_party_orgs, stg_party_development: snapshot entities (``snapshot: true``): each
#   load is the whole register, ``current`` is the latest load only, and a key absent from it is gone (the
#   source's only way of saying "deleted"), so a new load changes every key, touched or not; they also
#   rebuild their ``_history`` tables (``history: true``) from every load.
# No source marks deletions in its rows (no deleted flag, 删除标志 or is_deleted column in any export or API,
# campus_sim/ and ../shared/domain.md): the incremental path has no deletes to honour beyond replacing a
# touched key's rows.
INCREMENTAL_STAGING: dict[str, dict[str, str]] = {
    "stg_academic_grades": {"xh": "student_no", "kch": "course_code", "xnxq": "term", "ksxz": "exam_type_name"},
    "stg_activity_attendance": {"meeting_id": "meeting_id", "person_no": "person_no"},
    "stg_learning_study_records": {"record_id": "record_id"},
    "stg_party_dues": {"人员编号": "person_no", "缴费月份": "month"},
    "stg_students": {"studentNo": "student_no"},
    "stg_hr_staff": {"gh": "staff_no"},
    "stg_academic_courses": {"kch": "course_code"},
    "stg_activity_meetings": {"meeting_id": "meeting_id"},
    "stg_learning_courses": {"course_id": "course_id"},
    "stg_party_assessments": {"人员编号": "person_no", "评议年度": "year"},
    "stg_party_transfers": {"介绍信编号": "letter_no"},
}
# model -> {raw key column: the staging column's value computed from the normalised raw key ``{k}``, as the
# model's SQL computes it}, for key columns whose staging column is not the key itself. Raw keys with one
# image ('2024-3' and '2024-03' are both month 2024-03-01) share staging rows, so they are rebuilt together.
KEY_IMAGES: dict[str, dict[str, str]] = {
    "stg_party_dues": {"缴费月份": "CAST(try_strptime(trim({k}), '%Y-%m') AS DATE)"},
    "stg_party_assessments": {"评议年度": "try_cast(trim({k}) AS INTEGER)"},
}
FINGERPRINT_VERSION = "3"  # 2: row rules and plausibility in the incremental path; 3: macros, as-of moves


def _ensure_watermark(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.staging_watermark (
        model VARCHAR NOT NULL, load_id VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
        built_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")


def fingerprint(con: duckdb.DuckDBPyConnection, name: str, *, checks: dict[str, list[Check]] | None = None,
                as_of: date | None = None) -> str:
    """The model's SQL (its header's row rules included) and the macros it uses, the content of the code
    sets it reads and its plausibility checks (and, when a past_date check reads it, whether an as-of date
    is set): when any changes, every key may change."""
    m = STAGING_MODELS[name]
    digest = hashlib.sha256((FINGERPRINT_VERSION + "\n" + m.code_version).encode())  # its SQL and macros
    mine = (load_checks() if checks is None else checks).get(name, [])
    digest.update(f"plausibility:{mine!r}\n".encode())
    if any(c.kind == "past_date" for c in mine):  # a date or none: from one date to another, only the rows
        # it may judge otherwise are rebuilt (_touch_as_of_moved); to or from none, every row
        digest.update(f"as_of:{'date' if staging_as_of(con, as_of) else 'none'}\n".encode())
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
    """A version of the model's output: the loads it has taken in, the fingerprint and the as-of date its
    past_date checks judged at (same: nothing changed)."""
    _ensure_watermark(con)
    (v,) = con.execute("SELECT md5(string_agg(fingerprint || ':' || load_id, ',' ORDER BY load_id) "
                       "|| coalesce((SELECT ':' || CAST(as_of AS VARCHAR) FROM meta.staging_as_of a WHERE a.model = ?), '')) "
                       "FROM meta.staging_watermark WHERE model = ?", [name, name]).fetchone()
    return v


def _judged_at(con: duckdb.DuckDBPyConnection, name: str, checks: dict[str, list[Check]] | None,
               as_of: date | None) -> tuple[list[str], date | None]:
    """The model's past_date columns and the as-of date they are judged at (None: no such check, or each
    row's extraction day)."""
    columns = [c.column for c in (load_checks() if checks is None else checks).get(name, []) if c.kind == "past_date"]
    con.execute("CREATE TABLE IF NOT EXISTS meta.staging_as_of (model VARCHAR NOT NULL, as_of DATE NOT NULL)")
    return columns, (staging_as_of(con, as_of) if columns else None)


def _record_as_of(con: duckdb.DuckDBPyConnection, name: str, judged_at: date | None) -> None:
    con.execute("DELETE FROM meta.staging_as_of WHERE model = ?", [name])
    if judged_at is not None:
        con.execute("INSERT INTO meta.staging_as_of VALUES (?, ?)", [name, judged_at])


def _touch_as_of_moved(con: duckdb.DuckDBPyConnection, m, source: str, normalised: str, image,
                       keymap: dict[str, str], columns: list[str], since: date) -> None:
    """Add to ``_touched`` the keys a past_date check may judge otherwise now that the as-of date moved
    (``since``: the earlier of the two dates): staged rows with a past_date value after it, and every
    quarantined row of the model whose key has no NULL part (a future_date row, or one a later check
    caught); the rows their other rules reject stay as they are."""
    later = " OR ".join(f"s.{q(c)} > ?" for c in columns)
    same = " AND ".join(f"{image(raw_col, 'x')} = s.{q(col)}" for raw_col, col in keymap.items())
    complete = " AND ".join(f"x.{q(k)} IS NOT NULL" for k in m.primary_key)
    con.execute(f"""INSERT INTO _touched
        SELECT DISTINCT * EXCLUDE (_load_id, _row_number) FROM (
            SELECT {normalised}, r._load_id, r._row_number FROM {source} r) x
        WHERE EXISTS (SELECT 1 FROM staging.{q(m.name)} s WHERE ({later}) AND {same})
           OR ({complete} AND EXISTS (SELECT 1 FROM quality.quarantine z WHERE z.stage = 'staging'
                AND z.source = ? AND z.entity = ? AND z.load_id = x._load_id
                AND TRY_CAST(z.original_row ->> '_row_number' AS BIGINT) = x._row_number))
        EXCEPT SELECT * FROM _touched""", [since] * len(columns) + [m.source, m.entity])


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
    past_date, judged_at = _judged_at(con, name, checks, as_of)
    previous = con.execute("SELECT max(as_of) FROM meta.staging_as_of WHERE model = ?", [name]).fetchone()[0]
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
    elif judged_at is not None and previous is None:
        reason = "no as-of date recorded for its past_date checks"
    if reason:
        stats = build_staging(con, name, checks=checks, as_of=judged_at or as_of)
        con.execute("BEGIN TRANSACTION")
        try:
            _record_as_of(con, name, judged_at)
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
    moved = judged_at is not None and previous != judged_at  # past_date checks judge at another date now
    if not new_loads and not moved:
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
    images = KEY_IMAGES.get(name, {})

    def image(raw_col: str, alias: str) -> str:  # the staging key column's value from a normalised raw key
        return images[raw_col].format(k=f"{alias}.{q(raw_col)}") if raw_col in images else f"{alias}.{q(raw_col)}"

    match_stg = " AND ".join(f"s.{q(col)} IS NOT DISTINCT FROM {image(raw_col, 't')}" for raw_col, col in keymap.items())
    on_raw_row = ("EXISTS (SELECT 1 FROM _raw_touched t WHERE t._load_id = x.load_id "
                  "AND t._row_number = {row})")
    from_json = "TRY_CAST(x.original_row ->> '_row_number' AS BIGINT)"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _new_loads (load_id VARCHAR)")
        if new_loads:
            con.executemany("INSERT INTO _new_loads VALUES (?)", [[x] for x in new_loads])
        # the new loads' keys, normalised as create_current does; when one has a NULL part, every key with
        # one (their findings have a NULL record_key, so they are replaced together)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _touched AS
            WITH k AS (SELECT {normalised}, r._load_id IN (SELECT load_id FROM _new_loads) AS _new,
                              ({any_null}) AS _null FROM {source} r)
            SELECT DISTINCT * EXCLUDE (_new, _null) FROM k
            WHERE _new OR (_null AND EXISTS (SELECT 1 FROM k WHERE _new AND _null))""")
        if moved:
            _touch_as_of_moved(con, m, source, normalised, image, keymap, past_date, min(previous, judged_at))
        if images:  # and every other raw key with the same staging key (a NULL image has no staging row)
            same = " AND ".join(f"{image(k, 'x')} = {image(k, 'i')}" for k in keys)
            con.execute(f"""INSERT INTO _touched
                SELECT DISTINCT x.* FROM (SELECT {normalised} FROM {source} r) x SEMI JOIN _touched i ON {same}
                EXCEPT SELECT * FROM _touched""")
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
        superseded = stage_model(con, m, "_raw_touched", replace_all=False, checks=checks, as_of=judged_at or as_of)
        insert_quarantine(con, m)
        con.execute(f"""INSERT INTO staging.{q(name)} BY NAME
            SELECT * EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number)
            FROM _model WHERE _reject_rule IS NULL""")
        stats = model_outcome(con)
        con.execute("INSERT INTO meta.staging_watermark (model, load_id, fingerprint) "
                    "SELECT ?, load_id, ? FROM _new_loads", [name, fp])
        _record_as_of(con, name, judged_at)
        # the touched keys, by the staging columns, for the models built on it (models/delta.py)
        # (a computed key column by its image: 党费 '2024-3' is logged as month 2024-03-01, as the table holds it)
        con.execute("CREATE OR REPLACE TEMP VIEW _delta_keys AS SELECT "
                    + ", ".join(f"{image(raw_col, 't')} AS {q(col)}" for raw_col, col in keymap.items())
                    + " FROM _touched t")
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
            "rows_superseded": superseded,
            "reason": ", ".join(filter(None, (new_loads and f"{len(new_loads)} new raw load(s)",
                                              moved and f"as-of date of its past_date checks moved from {previous} "
                                                        f"to {judged_at}"))),
            "loads_processed": len(new_loads), "keys_touched": touched, "table_rows": total}
