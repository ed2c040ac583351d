"""The change log of model builds: what each build of a model changed, so that a model built on it can
rebuild only what changed since its own last build (models/incremental_facts.py).

Every build of a staging, warehouse or mart model records, in the transaction that writes the model, one
row in ``meta.delta_build``: the model, a build sequence number (1, 2, ... per model), whether the build was
whole (``full``: everything may have changed) and the model's row count after it. An incremental build also
writes its touched keys to ``meta.delta_key`` (one ``VARCHAR[]`` per key, in the order of
``delta_build.key_columns``): models/incremental.py for staging, models/incremental_facts.py for the facts.

A consumer (a model that reads the producer incrementally) keeps its position in ``meta.delta_consumer``:
the producer's build it has taken in. :func:`changes_since` gives it the keys of the producer's builds after
that position, or the reason it must rebuild whole: no position yet (first build), a whole build of the
producer in between, a gap in the log, keys pruned, keys of other columns, or a producer whose row count
is not the one its last logged build left (it was written outside the log).

Bounded: keys nobody will read are deleted when a build is logged and when a consumer moves on (up to the
slowest consumer's position, and everything before a whole build); beyond :data:`KEY_CAP` keys of one
producer the oldest builds' keys are dropped and marked so, and a consumer that still needed them rebuilds
whole.
"""

from __future__ import annotations

import duckdb

from connectors.raw_zone import q

KEY_CAP = 2_000_000  # keys kept per producer; beyond it the oldest builds' keys are dropped (consumers: full)


def ensure_log(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("""CREATE TABLE IF NOT EXISTS meta.delta_build (
        model VARCHAR NOT NULL, seq BIGINT NOT NULL, "full" BOOLEAN NOT NULL, keys_kept BOOLEAN NOT NULL,
        key_columns VARCHAR[], keys BIGINT, table_rows BIGINT,
        built_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)""")
    con.execute("CREATE TABLE IF NOT EXISTS meta.delta_key (model VARCHAR NOT NULL, seq BIGINT NOT NULL, "
                "key VARCHAR[] NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS meta.delta_consumer (consumer VARCHAR NOT NULL, "
                "producer VARCHAR NOT NULL, seq BIGINT NOT NULL)")


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def latest(con: duckdb.DuckDBPyConnection, model: str) -> tuple[int, str | None]:
    """The model's last logged build: (sequence number, when), (0, None) when none is."""
    ensure_log(con)
    row = con.execute("SELECT seq, CAST(built_at AS VARCHAR) FROM meta.delta_build WHERE model = ? "
                      "ORDER BY seq DESC LIMIT 1", [model]).fetchone()
    return (row[0], row[1]) if row else (0, None)


def record(con: duckdb.DuckDBPyConnection, model: str, table: str, *, keys: str | None = None,
           key_columns: tuple[str, ...] = ()) -> int:
    """Log a build of ``model`` (whose table is ``table``, schema-qualified), inside the caller's
    transaction: whole when ``keys`` is None, else the rows of the relation ``keys`` (its ``key_columns``)
    are the keys it touched. Returns the build's sequence number."""
    ensure_log(con)
    seq = latest(con, model)[0] + 1
    count = 0
    if keys is not None:
        cols = ", ".join(f"CAST({q(c)} AS VARCHAR)" for c in key_columns)
        con.execute(f"INSERT INTO meta.delta_key SELECT DISTINCT ?, ?, [{cols}] FROM {keys}", [model, seq])
        count = con.execute("SELECT count(*) FROM meta.delta_key WHERE model = ? AND seq = ?", [model, seq]).fetchone()[0]
    con.execute('INSERT INTO meta.delta_build (model, seq, "full", keys_kept, key_columns, keys, table_rows) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [model, seq, keys is None, keys is not None, list(key_columns), count, _rows(con, table)])
    prune(con, model)
    return seq


def prune(con: duckdb.DuckDBPyConnection, model: str, *, cap: int | None = None) -> None:
    """Drop what no consumer will read: keys up to the slowest consumer's position (with no consumer, all
    but the latest build's) and before the latest whole build; then, beyond ``cap`` keys, the oldest
    builds' keys (marked ``keys_kept = false``)."""
    cap = KEY_CAP if cap is None else cap
    (slowest, consumers) = con.execute("SELECT min(seq), count(*) FROM meta.delta_consumer WHERE producer = ?",
                                       [model]).fetchone()
    (newest, last_full) = con.execute('SELECT max(seq), max(seq) FILTER (WHERE "full") FROM meta.delta_build '
                                      "WHERE model = ?", [model]).fetchone()
    if newest is None:
        return
    cut = max(slowest if consumers else newest - 1, last_full or 0)
    con.execute("DELETE FROM meta.delta_key WHERE model = ? AND seq <= ?", [model, cut])
    con.execute("DELETE FROM meta.delta_build WHERE model = ? AND seq < ?", [model, cut])
    (over,) = con.execute("""WITH c AS (SELECT seq, count(*) AS n FROM meta.delta_key WHERE model = ? GROUP BY seq),
        w AS (SELECT seq, sum(n) OVER (ORDER BY seq DESC) AS upto FROM c)
        SELECT max(seq) FROM w WHERE upto > ?""", [model, cap]).fetchone()
    if over is not None:
        con.execute("DELETE FROM meta.delta_key WHERE model = ? AND seq <= ?", [model, over])
        con.execute("UPDATE meta.delta_build SET keys_kept = false WHERE model = ? AND seq <= ?", [model, over])


def changes_since(con: duckdb.DuckDBPyConnection, consumer: str, producer: str, table: str,
                  key_columns: tuple[str, ...], into: str) -> tuple[str | None, int]:
    """What ``producer`` (table ``table``) changed since ``consumer`` last took it in. Returns (the reason
    the consumer must rebuild whole, or None; the producer's latest build). With no reason, the temporary
    table ``into`` holds the touched keys (columns ``key_columns``), empty when nothing changed."""
    ensure_log(con)
    newest, _ = latest(con, producer)
    row = con.execute("SELECT seq FROM meta.delta_consumer WHERE consumer = ? AND producer = ?",
                      [consumer, producer]).fetchone()
    if row is None:
        return f"no position in {producer}'s change log yet", newest
    position = row[0]
    if newest == 0:
        return f"{producer} has no change log", newest
    (logged_rows,) = con.execute("SELECT table_rows FROM meta.delta_build WHERE model = ? AND seq = ?",
                                 [producer, newest]).fetchone()
    if logged_rows != _rows(con, table):
        return f"{table} has {_rows(con, table):,} rows, its last logged build left {logged_rows:,}: " \
               f"written outside the change log", newest
    builds = con.execute('SELECT seq, "full", keys_kept, key_columns FROM meta.delta_build '
                         "WHERE model = ? AND seq > ? ORDER BY seq", [producer, position]).fetchall()
    for seq, full, kept, columns in builds:
        if full:
            return f"{producer} was rebuilt whole (its build {seq})", newest
        if not kept:
            return f"the keys of {producer}'s build {seq} were pruned from the change log", newest
        if tuple(columns) != tuple(key_columns):
            return f"{producer}'s build {seq} logged keys ({', '.join(columns)}), not ({', '.join(key_columns)})", newest
    if len(builds) != newest - position:
        return f"{producer}'s change log misses builds after {position}", newest
    cols = ", ".join(f"key[{i}] AS {q(c)}" for i, c in enumerate(key_columns, 1))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT DISTINCT {cols} FROM meta.delta_key "
                "WHERE model = ? AND seq > ?", [producer, position])
    return None, newest


def set_position(con: duckdb.DuckDBPyConnection, consumer: str, producer: str, seq: int) -> None:
    """The consumer has taken in ``producer`` up to its build ``seq`` (in the consumer's transaction)."""
    ensure_log(con)
    con.execute("DELETE FROM meta.delta_consumer WHERE consumer = ? AND producer = ?", [consumer, producer])
    con.execute("INSERT INTO meta.delta_consumer VALUES (?, ?, ?)", [consumer, producer, seq])
    prune(con, producer)
