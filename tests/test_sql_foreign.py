"""SQL sources unlike the simulated campus, on this machine's real PostgreSQL and MariaDB.

Every test makes its own uniquely named PostgreSQL schema or MariaDB database (never the default one,
so every table is schema-qualified in ``sources.yaml``), configures the hub through a ``sources.yaml``
alone, runs incremental loads with new rows, changed rows and rows that tie with the cursor at the
boundary in between, and then checks that

* every key of the source is in raw, with the source's latest values (numbers to the last digit),
  and no version of a row landed twice;
* ``rows_read = rows_landed + rows_skipped + rows_rejected`` for every load in quality.load_audit.

A server that is not reachable skips its tests with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import SourceError, load_entity, load_sources
from hub.settings import PROJECT_ROOT

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIA = "mysql+pymysql://root@127.0.0.1:3306/test"


def _reachable(url: str) -> None:
    try:
        sa.create_engine(url).connect().close()
    except sa.exc.OperationalError as exc:
        pytest.skip(f"{url.split('+')[0]} not reachable on this machine: {str(exc.orig).splitlines()[0]}")


class Db:
    """A scratch PostgreSQL schema or MariaDB database, and an admin connection to fill it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.url = PG if kind == "postgres" else MARIA
        self.name = f"hub_foreign_{uuid.uuid4().hex[:10]}"
        self.engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")

    def run(self, *statements: str, params: list[dict] | dict | None = None) -> None:
        with self.engine.connect() as c:
            for stmt in statements:
                c.execute(sa.text(stmt), params)

    def rows(self, sql: str) -> list[tuple]:
        with self.engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql))]

    def create(self) -> Db:
        self.run(f"CREATE {'SCHEMA' if self.kind == 'postgres' else 'DATABASE'} {self.name}")
        return self

    def drop(self) -> None:
        self.run(f"DROP {'SCHEMA' if self.kind == 'postgres' else 'DATABASE'} IF EXISTS {self.name}"
                 f"{' CASCADE' if self.kind == 'postgres' else ''}")
        self.engine.dispose()


def _db(kind: str):
    _reachable(PG if kind == "postgres" else MARIA)
    db = Db(kind).create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def pg():
    yield from _db("postgres")


@pytest.fixture
def maria():
    yield from _db("mariadb")


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db(request):
    yield from _db(request.param)


def _sources(tmp_path: Path, url: str, entities: str, name: str = "vendor") -> dict:
    path = tmp_path / f"sources-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(f"sources:\n  {name}:\n    kind: sql\n    url: {url}\n    chunk_rows: 7\n"
                    f"    entities:\n{entities}", encoding="utf-8")
    return load_sources(path)


def _load(con, tmp_path, sources, entity: str, source: str = "vendor"):
    src = sources[source]
    [result] = load_entity(con, tmp_path / "raw", src, src.entities[entity])
    return result


def _check_audit(con, source: str, entity: str, loads: int) -> None:
    audit = con.execute("SELECT status, rows_read, rows_landed, rows_skipped, rows_rejected FROM quality.load_audit "
                        "WHERE source = ? AND entity = ? ORDER BY started_at", [source, entity]).fetchall()
    assert len(audit) == loads and all(a[0] == "ok" for a in audit), audit
    for status, read, landed, skipped, rejected in audit:
        assert read == landed + skipped + rejected, (status, read, landed, skipped, rejected)


def _same(raw: str | None, value) -> bool:
    """A raw text value against the source's typed value, exactly (numbers to the last digit)."""
    if value is None or raw is None:
        return raw is None and value is None
    if isinstance(value, Decimal):
        return raw == format(value, "f")
    if isinstance(value, dt.datetime):
        parsed = dt.datetime.fromisoformat(raw)
        if value.tzinfo is not None:
            return parsed.tzinfo is not None and parsed == value
        return parsed.tzinfo is None and parsed == value
    if isinstance(value, dt.date):
        return raw == value.isoformat()
    return raw == str(value)


def _check_raw(con, table: str, source_rows: list[tuple], columns: list[str], key: list[str]) -> None:
    """Every key of the source in raw exactly as the source has it now (its latest version), and every
    version of a row landed once."""
    cols = ", ".join(f'arg_max("{c}", _extracted_at)' for c in columns)
    keys = ", ".join(f'"{k}"' for k in key)
    raw = {tuple(r[: len(key)]): r[len(key):] for r in con.execute(
        f"SELECT {keys}, {cols} FROM raw.{table} GROUP BY {keys}").fetchall()}
    positions = [columns.index(k) for k in key]
    expected = {tuple(str(row[p]) for p in positions): row for row in source_rows}
    assert set(raw) == set(expected), (sorted(set(expected) - set(raw))[:5], sorted(set(raw) - set(expected))[:5])
    for k, row in expected.items():
        for column, got, want in zip(columns, raw[k], row, strict=True):
            assert _same(got, want), (k, column, got, want)
    dupes = con.execute(f"SELECT count(*) FROM (SELECT {keys}, _row_hash FROM raw.{table} "
                        f"GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert dupes == 0, "a version of a row landed twice"


# -- timestamptz (PostgreSQL) and datetime(3) (MariaDB): ties at the boundary ---------------------

def _ledger_ddl(db: Db) -> str:
    ts = "timestamptz" if db.kind == "postgres" else "datetime(3)"
    return (f"CREATE TABLE {db.name}.ledger (campus_code varchar(12) NOT NULL, seq integer NOT NULL, "
            f"amount numeric(30,10) NOT NULL, note varchar(40), changed_at {ts} NOT NULL, "
            "PRIMARY KEY (campus_code, seq))")


def _stamp(db: Db, minute: int, ms: int) -> dt.datetime:
    base = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    value = base + dt.timedelta(minutes=minute, milliseconds=ms)
    # MariaDB's datetime(3) has no zone: the vendor's wall clock
    return value if db.kind == "postgres" else value.replace(tzinfo=None)


def _insert(db: Db, rows: list[tuple]) -> None:
    db.run(f"INSERT INTO {db.name}.ledger VALUES (:c, :s, :a, :n, :t)",
           params=[{"c": c, "s": s, "a": a, "n": n, "t": t} for c, s, a, n, t in rows])


def test_timestamp_cursor_with_ties_at_the_boundary_lands_every_change_once(tmp_path, con, db):
    """PostgreSQL timestamptz / MariaDB datetime(3): several rows share the boundary value, and rows
    inserted or updated later carry exactly that value. None is lost, none lands twice."""
    db.run(_ledger_ddl(db))
    boundary = _stamp(db, 30, 123)
    first = [(f"C{i % 3}", i, Decimal(f"{i % 10}1234567890123456789.{i:02d}34567891"), f"n{i}",
              _stamp(db, i % 5, 7 * i) if i < 20 else boundary) for i in range(26)]
    _insert(db, first)
    # the table by `schema.table`: a schema that is not the connection's default
    sources = _sources(tmp_path, db.url, f"      ledger:\n        table: {db.name}.ledger\n"
                                         "        primary_key: [campus_code, seq]\n"
                                         "        incremental: {cursor_field: changed_at}\n")
    one = _load(con, tmp_path, sources, "ledger")
    assert (one.rows_read, one.rows_landed) == (26, 26) and one.pages == 4, "read in chunks of 7"
    assert dt.datetime.fromisoformat(one.cursor_after) == boundary

    # Between loads: new rows AT the boundary, a boundary row changed without its time moving, an old
    # row changed to a later time, and new later rows.
    _insert(db, [("C9", 100 + i, Decimal("0.0000000001"), "tie", boundary) for i in range(4)])
    db.run(f"UPDATE {db.name}.ledger SET note = 'changed at the boundary' WHERE campus_code = 'C1' AND seq = 22")
    later = _stamp(db, 45, 999)
    db.run(f"UPDATE {db.name}.ledger SET amount = amount + 0.0000000001, changed_at = :t "
           "WHERE campus_code = 'C0' AND seq = 3", params={"t": later})
    _insert(db, [("C7", 200 + i, Decimal("-99999999999999999999.9999999999"), None, later) for i in range(3)])
    two = _load(con, tmp_path, sources, "ledger")
    # re-read: the 6 boundary rows (5 unchanged: skipped; 1 changed: landed) + 4 new at the boundary
    # + 1 moved later + 3 new later
    assert (two.rows_read, two.rows_landed, two.rows_skipped) == (6 + 4 + 1 + 3, 1 + 4 + 1 + 3, 5)
    assert dt.datetime.fromisoformat(two.cursor_after) == later

    three = _load(con, tmp_path, sources, "ledger")  # nothing changed: the boundary rows are re-read only
    assert (three.rows_read, three.rows_landed, three.rows_skipped) == (4, 0, 4)
    _insert(db, [("C7", 300, Decimal("1.5"), "tie again", later)])
    four = _load(con, tmp_path, sources, "ledger")
    assert (four.rows_read, four.rows_landed, four.rows_skipped) == (5, 1, 4)

    columns = ["campus_code", "seq", "amount", "note", "changed_at"]
    _check_raw(con, "vendor__ledger", db.rows(f"SELECT {', '.join(columns)} FROM {db.name}.ledger"),
               columns, ["campus_code", "seq"])
    _check_audit(con, "vendor", "ledger", 4)


# -- integer, date and numeric cursors; a table named with `schema:` -----------------------------

CURSORS = {  # column type per server, values in load order (ties included)
    "integer": ("integer", "int", [10, 20, 20, 30], 30, 40),
    "bigint": ("bigint", "bigint", [2**40, 2**41, 2**41], 2**41, 2**41 + 1),
    "timestamp": ("timestamp(3)", "datetime(6)",
                  [dt.datetime(2025, 9, 1, 7, 0, 0, 1000), dt.datetime(2025, 9, 1, 7, 0, 0, 2000),
                   dt.datetime(2025, 9, 1, 7, 0, 0, 2000)],
                  dt.datetime(2025, 9, 1, 7, 0, 0, 2000), dt.datetime(2025, 9, 1, 7, 0, 0, 3000)),
    "date": ("date", "date", [dt.date(2025, 9, 1), dt.date(2025, 9, 2), dt.date(2025, 9, 2)],
             dt.date(2025, 9, 2), dt.date(2025, 9, 3)),
    "numeric": ("numeric(12,3)", "decimal(12,3)", [Decimal("1.250"), Decimal("7.125"), Decimal("7.125")],
                Decimal("7.125"), Decimal("8.001")),
}


@pytest.mark.parametrize("cursor_kind", sorted(CURSORS))
def test_integer_date_and_numeric_cursors_bind_as_their_type(tmp_path, con, db, cursor_kind):
    pg_type, maria_type, values, boundary, later = CURSORS[cursor_kind]
    ctype = pg_type if db.kind == "postgres" else maria_type
    db.run(f"CREATE TABLE {db.name}.readings (meter varchar(8) NOT NULL, n integer NOT NULL, "
           f"reading numeric(9,2), mark {ctype} NOT NULL, PRIMARY KEY (meter, n))")
    rows = [{"m": f"M{i % 2}", "n": i, "r": Decimal(f"{i}.05"), "k": v} for i, v in enumerate(values * 3)]
    insert = f"INSERT INTO {db.name}.readings VALUES (:m, :n, :r, :k)"
    db.run(insert, params=rows)
    sources = _sources(tmp_path, db.url, f"      readings:\n        table: readings\n        schema: {db.name}\n"
                                         "        primary_key: [meter, n]\n"
                                         "        incremental: {cursor_field: mark}\n")
    one = _load(con, tmp_path, sources, "readings")
    assert one.rows_landed == len(rows) and one.cursor_after == (
        format(boundary, "f") if isinstance(boundary, Decimal) else
        boundary.isoformat() if isinstance(boundary, dt.date) else str(boundary))
    at_boundary = sum(1 for r in rows if r["k"] == boundary)
    db.run(insert, params=[{"m": "M9", "n": 100, "r": None, "k": boundary},
                           {"m": "M9", "n": 101, "r": Decimal("0.01"), "k": later}])
    first_tie = next(r["n"] for r in rows if r["k"] == boundary)  # changed, its cursor value unmoved
    db.run(f"UPDATE {db.name}.readings SET reading = 0 WHERE n = {first_tie}")
    two = _load(con, tmp_path, sources, "readings")
    assert (two.rows_read, two.rows_landed, two.rows_skipped) == (at_boundary + 2, 3, at_boundary - 1)
    columns = ["meter", "n", "reading", "mark"]
    _check_raw(con, "vendor__readings", db.rows(f"SELECT {', '.join(columns)} FROM {db.name}.readings"),
               columns, ["meter", "n"])
    _check_audit(con, "vendor", "readings", 2)


def test_a_text_column_declared_a_number_is_compared_as_one(tmp_path, con, db):
    """A vendor keeps its change counter in a varchar. As text, '100' < '99': rows after the cursor
    would never be read again. Declared ``type: int``, it is compared as BIGINT (table and query)."""
    db.run(f"CREATE TABLE {db.name}.events (id integer PRIMARY KEY, version varchar(12) NOT NULL)")
    insert = f"INSERT INTO {db.name}.events VALUES (:i, :v)"
    db.run(insert, params=[{"i": i, "v": v} for i, v in enumerate(["8", "9", "10", "99", "99"])])
    sources = _sources(tmp_path, db.url,
                       f"      events:\n        table: events\n        schema: {db.name}\n        primary_key: id\n"
                       "        incremental: {cursor_field: version, type: int}\n"
                       f"      events_q:\n        query: SELECT id, version FROM {db.name}.events\n"
                       "        primary_key: id\n        incremental: {cursor_field: version, type: int}\n")
    for entity in ("events", "events_q"):
        assert _load(con, tmp_path, sources, entity).cursor_after == "99"
    db.run(insert, params=[{"i": 10, "v": "100"}, {"i": 11, "v": "1000"}])
    for entity in ("events", "events_q"):
        again = _load(con, tmp_path, sources, entity)
        assert (again.rows_read, again.rows_landed, again.cursor_after) == (4, 2, "1000"), entity
        _check_raw(con, f"vendor__{entity}", db.rows(f"SELECT id, version FROM {db.name}.events"),
                   ["id", "version"], ["id"])
        _check_audit(con, "vendor", entity, 2)


@pytest.mark.postgres
def test_a_stored_cursor_the_column_cannot_hold_is_one_clear_failure(tmp_path, con, pg):
    """The column's type changed under the hub (a varchar became a date): one line naming the column,
    the stored value and how to reset it; a failed audit row; the stored cursor left as it was."""
    pg.run(f"CREATE TABLE {pg.name}.t (id integer PRIMARY KEY, d date NOT NULL)",
           f"INSERT INTO {pg.name}.t VALUES (1, DATE '2025-01-01')")
    sources = _sources(tmp_path, PG, f"      t:\n        table: {pg.name}.t\n        primary_key: id\n"
                                     "        incremental: {cursor_field: d}\n")
    con.execute("INSERT INTO meta.source_cursor VALUES ('vendor', 't', '第三学期', 'x', current_timestamp)")
    with pytest.raises(SourceError) as err:
        _load(con, tmp_path, sources, "t")
    message = str(err.value)
    assert message.startswith("vendor.t:") and "'第三学期'" in message and "'d'" in message, message
    assert "meta.source_cursor" in message and "\n" not in message
    [(status, before, after)] = con.execute(
        "SELECT status, cursor_before, cursor_after FROM quality.load_audit").fetchall()
    assert (status, before, after) == ("failed", "第三学期", "第三学期")
    assert con.execute("SELECT cursor_value FROM meta.source_cursor").fetchone()[0] == "第三学期"


# -- a query entity with a cursor ------------------------------------------------------------------

def test_query_entity_binds_its_cursor_as_the_result_columns_type(tmp_path, con, db):
    db.run(_ledger_ddl(db),
           f"CREATE TABLE {db.name}.campus (code varchar(12) PRIMARY KEY, title varchar(40))")
    db.run(f"INSERT INTO {db.name}.campus VALUES (:c, :t)", params=[{"c": f"C{i}", "t": f"校区{i}"} for i in range(3)])
    boundary = _stamp(db, 10, 500)
    _insert(db, [(f"C{i % 3}", i, Decimal(i), None, _stamp(db, i, 0) if i < 8 else boundary) for i in range(12)])
    query = (f"SELECT l.campus_code, l.seq, c.title, l.amount, l.changed_at FROM {db.name}.ledger l "
             f"JOIN {db.name}.campus c ON c.code = l.campus_code WHERE l.amount >= 0")
    sources = _sources(tmp_path, db.url, f"      ledger_titled:\n        query: \"{query}\"\n"
                                         "        primary_key: [campus_code, seq]\n"
                                         "        incremental: {cursor_field: changed_at}\n")
    one = _load(con, tmp_path, sources, "ledger_titled")
    assert one.rows_landed == 12
    _insert(db, [("C1", 50, Decimal(5), None, boundary), ("C2", 51, Decimal(-1), None, boundary)])
    two = _load(con, tmp_path, sources, "ledger_titled")
    assert (two.rows_read, two.rows_landed, two.rows_skipped) == (5, 1, 4), "the negative row is not in the query"
    columns = ["campus_code", "seq", "title", "amount", "changed_at"]
    _check_raw(con, "vendor__ledger_titled", db.rows(query), columns, ["campus_code", "seq"])
    _check_audit(con, "vendor", "ledger_titled", 2)


# -- the cursor protected: a value in the future, a cursor column that is not there -----------------

def test_a_future_cursor_value_lands_is_reported_and_does_not_move_the_cursor(tmp_path, con, db):
    db.run(_ledger_ddl(db))
    now = dt.datetime.now(dt.UTC)
    future = now + dt.timedelta(days=400)
    recent = now - dt.timedelta(hours=1)
    if db.kind == "mariadb":
        future, recent = future.replace(tzinfo=None), recent.replace(tzinfo=None)
    recent, future = (v.replace(microsecond=v.microsecond // 1000 * 1000) for v in (recent, future))
    _insert(db, [("C1", 1, Decimal(1), None, recent), ("C1", 2, Decimal(2), None, future)])
    sources = _sources(tmp_path, db.url, f"      ledger:\n        table: ledger\n        schema: {db.name}\n"
                                         "        primary_key: [campus_code, seq]\n"
                                         "        incremental: {cursor_field: changed_at}\n")
    one = _load(con, tmp_path, sources, "ledger")
    assert one.rows_landed == 2, "the row from the future is landed"
    assert dt.datetime.fromisoformat(one.cursor_after) == recent, "and does not move the cursor"
    [(kind, key, field, value)] = con.execute("SELECT kind, record_key, field, value FROM quality.load_finding "
                                              "WHERE load_id = ?", [one.load_id]).fetchall()
    assert (kind, key, field) == ("cursor_in_future", "C1|2", "changed_at")
    assert dt.datetime.fromisoformat(value) == future
    two = _load(con, tmp_path, sources, "ledger")  # the cursor stayed: the future row is re-read, skipped
    assert (two.rows_read, two.rows_landed, two.rows_skipped) == (2, 0, 2)
    _check_audit(con, "vendor", "ledger", 2)


def test_a_cursor_column_the_table_lacks_is_one_clear_failure(tmp_path, con, db):
    db.run(_ledger_ddl(db))
    _insert(db, [("C1", 1, Decimal(1), None, _stamp(db, 1, 0))])
    sources = _sources(tmp_path, db.url,
                       f"      ledger:\n        table: {db.name}.ledger\n        primary_key: [campus_code, seq]\n"
                       "        incremental: {cursor_field: modified_on}\n"
                       f"      ledger_q:\n        query: SELECT campus_code, seq FROM {db.name}.ledger\n"
                       "        primary_key: [campus_code, seq]\n        incremental: {cursor_field: changed_at}\n")
    for entity, column in (("ledger", "modified_on"), ("ledger_q", "changed_at")):
        with pytest.raises(SourceError) as err:
            _load(con, tmp_path, sources, entity)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"vendor.{entity}:") and repr(column) in message, message
        [(status, reason)] = con.execute("SELECT status, message FROM quality.load_audit WHERE entity = ?",
                                         [entity]).fetchall()
        assert status == "failed" and reason == message
    assert not con.execute("SELECT count(*) FROM meta.source_cursor").fetchone()[0]


# -- failures anywhere are audited; hub load goes on ------------------------------------------------

@pytest.mark.postgres
def test_a_driver_error_mid_stream_is_audited_with_the_chunk(tmp_path, con, pg):
    pg.run(f"CREATE TABLE {pg.name}.t (id integer PRIMARY KEY)",
           f"INSERT INTO {pg.name}.t SELECT generate_series(1, 40)")
    sources = _sources(tmp_path, PG, f"      t:\n        query: SELECT id, 100 / (30 - id) AS x FROM {pg.name}.t "
                                     "ORDER BY id\n        primary_key: id\n")
    with pytest.raises(SourceError) as err:
        _load(con, tmp_path, sources, "t")
    message = str(err.value)
    assert message.startswith("vendor.t:") and "chunk" in message and "division by zero" in message, message
    [(status, reason, read)] = con.execute("SELECT status, message, rows_read FROM quality.load_audit").fetchall()
    assert status == "failed" and reason == message and read < 40
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchone()[0]


@pytest.mark.postgres
def test_a_timestamptz_cursor_loads_again_and_again(tmp_path, con, pg):
    """The first load of a timestamptz cursor worked before; every later one failed with
    ``operator does not exist: timestamp with time zone >= character varying`` (the stored cursor
    was bound as VARCHAR). Configured as before this was fixed: the schema on the URL's search_path."""
    pg.run(_ledger_ddl(pg))
    _insert(pg, [("C1", i, Decimal(i), None, _stamp(pg, i, 0)) for i in range(5)])
    sources = _sources(tmp_path, f"{PG}?options=-csearch_path%3D{pg.name}",
                       "      ledger:\n        table: ledger\n        primary_key: [campus_code, seq]\n"
                       "        incremental: {cursor_field: changed_at}\n")
    assert _load(con, tmp_path, sources, "ledger").rows_landed == 5
    _insert(pg, [("C1", 9, Decimal(9), None, _stamp(pg, 9, 0))])
    again = _load(con, tmp_path, sources, "ledger")
    assert (again.rows_read, again.rows_landed, again.rows_skipped) == (2, 1, 1)


def _hub(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={**os.environ, **env}, timeout=180)


def test_hub_load_goes_on_after_failing_sources_and_exits_1(tmp_path):
    import sqlite3

    import duckdb

    db = tmp_path / "vendor.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        c.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(30)])
    missing = f"HUB_TEST_UNSET_{uuid.uuid4().hex[:6].upper()}"
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  broken_url:\n    kind: sql\n    url: 'not a database url'\n"
        "    entities:\n      t: {table: t, primary_key: id}\n"
        f"  no_env:\n    kind: sql\n    url: '${{{missing}}}'\n"
        "    entities:\n      t: {table: t, primary_key: id}\n"
        f"  good:\n    kind: sql\n    url: sqlite:///{db}\n"
        "    entities:\n      missing_table: {table: nowhere, primary_key: id}\n      t: {table: t, primary_key: id}\n",
        encoding="utf-8")
    env = {"HUB_SOURCES_FILE": str(sources), "HUB_VAR_DIR": str(tmp_path / "var")}
    proc = _hub("load", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "landed 30" in proc.stdout and "3 of 4 load(s) failed" in proc.stdout, proc.stdout
    with duckdb.connect(str(tmp_path / "var" / "warehouse.duckdb"), read_only=True) as wh:
        audit = dict(((s, e), (st, m)) for s, e, st, m in wh.execute(
            "SELECT source, entity, status, message FROM quality.load_audit").fetchall())
        landed = wh.execute("SELECT count(*) FROM raw.good__t").fetchone()[0]
    assert landed == 30 and audit[("good", "t")][0] == "ok"
    for key, needle in ((("broken_url", "t"), "not usable"), (("no_env", "t"), missing),
                        (("good", "missing_table"), "'nowhere' not found")):
        status, message = audit[key]
        assert status == "failed" and message.startswith(f"{key[0]}.{key[1]}:") and needle in message, message
        assert "\n" not in message and message in proc.stdout, (message, proc.stdout)


def test_in_dagster_a_failed_entity_fails_its_own_raw_asset_only(tmp_path):
    import sqlite3

    import dagster as dg

    from hub.resources import CampusSourcesResource, WarehouseResource
    from hub.warehouse import open_warehouse
    from pipelines.raw import build_raw

    db = tmp_path / "vendor.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        c.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(12)])
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  vendor:\n    kind: sql\n    url: sqlite:///{db}\n    entities:\n"
                    "      gone: {table: nowhere, primary_key: id}\n      t: {table: t, primary_key: id}\n",
                    encoding="utf-8")
    assets, checks = build_raw(load_sources(path))
    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize([*assets, *checks], raise_on_error=False, resources={
        "warehouse": WarehouseResource(path=str(warehouse)),
        "campus_sources": CampusSourcesResource(config_path=str(path), raw_dir=str(tmp_path / "raw"))})
    assert not result.success
    failures = result.get_step_failure_events()
    assert len(failures) == 1 and "vendor__gone" in failures[0].step_key
    assert "vendor.gone: table 'nowhere' not found" in failures[0].step_failure_data.error.message
    landed = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert landed == {"vendor__t"}
    with open_warehouse(warehouse, read_only=True) as con:
        audit = dict(con.execute("SELECT entity, status FROM quality.load_audit").fetchall())
    assert audit == {"gone": "failed", "t": "ok"}


@pytest.mark.parametrize(("entity", "key", "needle"), [
    ("{query: SELECT 1 AS id, schema: s, primary_key: id}", "entities.t.schema", "applies to 'table' only"),
    ("{table: '', primary_key: id}", "entities.t.table", "non-empty string"),
    ("{table: t, schema: [a], primary_key: id}", "entities.t.schema", "non-empty string"),
])
def test_sql_entity_options_are_checked_in_one_line(tmp_path, entity, key, needle):
    from connectors import ConfigError

    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  vendor:\n    kind: sql\n    url: sqlite://\n    entities:\n      t: {entity}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources(path)
    assert f"sources.vendor.{key}:" in str(err.value) and needle in str(err.value) and "\n" not in str(err.value)


def test_chunk_rows_must_be_a_positive_integer(tmp_path, con, monkeypatch):
    from connectors import ConfigError

    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  vendor:\n    kind: sql\n    url: sqlite://\n    chunk_rows: 0\n"
                    "    entities:\n      t: {table: t, primary_key: id}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.vendor\.chunk_rows: must be a positive integer, got 0"):
        load_sources(path)
    # from the environment: checked when the load runs, a failed audit row naming the setting
    path.write_text(path.read_text().replace("chunk_rows: 0", "chunk_rows: ${HUB_TEST_CHUNK}"), encoding="utf-8")
    monkeypatch.setenv("HUB_TEST_CHUNK", "lots")
    with pytest.raises(SourceError, match=r"^vendor\.t: sources\.vendor\.chunk_rows must be a positive integer, got 'lots'$"):
        _load(con, tmp_path, load_sources(path), "t")
    assert con.execute("SELECT status FROM quality.load_audit").fetchall() == [("failed",)]
