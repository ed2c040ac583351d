"""REST and SQL connectors against the real things: the campus servers on loopback (with faults),
SQLite, and this machine's PostgreSQL and MariaDB."""

import json
import time
import uuid

import pytest
import sqlalchemy as sa

from campus_sim.servers import SourceServers
from campus_sim.sqlload import load_academic
from connectors import SourceError, load_entity, load_sources
from hub.settings import PROJECT_ROOT, Settings
from tests.test_servers import ENDPOINTS, _write_campus

REST_TABLES = {  # raw table -> the contract's endpoint it reads
    "hr__staff": ENDPOINTS[0], "student__students": ENDPOINTS[1], "activity__meetings": ENDPOINTS[2],
    "activity__attendance": ENDPOINTS[3], "learning__courses": ENDPOINTS[4],
    "learning__study_records": ENDPOINTS[5],
}


@pytest.fixture
def data_dir(tmp_path):
    return _write_campus(tmp_path / "campus")


def _point_sources_at(monkeypatch, servers: SourceServers, data_dir, timeout: float = 2.0):
    env = Settings.from_env().source_env(servers.urls)
    env["HUB_ACADEMIC_URL"] = f"sqlite:///{data_dir / 'academic' / 'academic.sqlite'}"
    env["HUB_HTTP_TIMEOUT"] = str(timeout)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_sources(PROJECT_ROOT / "sources.yaml")


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _load_all_rest(con, raw_dir, sources):
    results = {}
    for name in ("hr", "student", "activity", "learning"):
        for entity in sources[name].entities.values():
            [results[entity.table]] = load_entity(con, raw_dir, sources[name], entity)
    return results


def test_every_row_arrives_exactly_once_through_faults(tmp_path, data_dir, con, monkeypatch):
    with SourceServers(data_dir, faults=0.3, slow_seconds=0.6, seed=3) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir, timeout=0.3)
        results = _load_all_rest(con, tmp_path / "raw", sources)
        faults = sum(sum(s["faults"].values()) for s in servers.stats.values())
    assert faults > 0 and sum(r.retries for r in results.values()) >= faults
    for table, endpoint in REST_TABLES.items():
        expected = sorted(tuple(str(r[k]) for k in endpoint.key) for r in _lines(data_dir / endpoint.file))
        cols = ", ".join(f'"{k}"' for k in endpoint.key)
        got = sorted(con.execute(f"SELECT {cols} FROM raw.{table}").fetchall())
        assert got == expected, table
        assert results[table].rows_read == results[table].rows_landed == len(expected)


def test_values_land_as_text_exactly_as_sent(tmp_path, data_dir, con, monkeypatch):
    with SourceServers(data_dir) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir)
        load_entity(con, tmp_path / "raw", sources["learning"], sources["learning"].entities["study_records"])
    sent = {r["record_id"]: r for r in _lines(data_dir / "learning" / "study_records.jsonl")}
    for rid, minutes, completed, updated in con.execute(
            "SELECT record_id, minutes, completed, updated_at FROM raw.learning__study_records").fetchall():
        src = sent[rid]
        assert minutes == (None if src["minutes"] is None else str(src["minutes"]))
        assert completed == {True: "true", False: "false", None: None}[src["completed"]]
        assert updated == str(src["updated_at"])


def test_incremental_rerun_lands_nothing_then_only_the_change(tmp_path, data_dir, con, monkeypatch):
    raw = tmp_path / "raw"
    with SourceServers(data_dir) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir)
        hr = sources["hr"]
        [first] = load_entity(con, raw, hr, hr.entities["staff"])
        [second] = load_entity(con, raw, hr, hr.entities["staff"])
    assert first.cursor_after and second.cursor_before == first.cursor_after
    assert second.rows_landed == 0 and second.rows_read == second.rows_skipped > 0, "boundary rows re-read, skipped"

    staff = _lines(data_dir / "hr" / "staff.jsonl")
    changed = dict(staff[0], xm="覃改名", updated_at="2030-01-01T00:00:00+08:00")
    (data_dir / "hr" / "staff.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [changed, *staff[1:]]), encoding="utf-8")
    with SourceServers(data_dir) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir)
        [third] = load_entity(con, raw, sources["hr"], sources["hr"].entities["staff"])
    # the inclusive bound re-reads the boundary rows (skipped) and brings the one change (landed)
    assert (third.rows_read, third.rows_landed, third.rows_skipped) == (second.rows_read + 1, 1, second.rows_read)
    versions = con.execute("SELECT xm FROM raw.hr__staff WHERE gh = ? ORDER BY _extracted_at",
                           [changed["gh"]]).fetchall()
    assert versions[-1] == ("覃改名",) and len(versions) == 2, "raw keeps both versions"
    assert con.execute("SELECT count(*) FROM quality.load_audit WHERE status = 'ok'").fetchone()[0] == 3


def test_wrong_token_fails_at_once_with_the_servers_message(tmp_path, data_dir, con, monkeypatch):
    with SourceServers(data_dir) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir)
        monkeypatch.setenv("HUB_HR_TOKEN", "not-the-token")
        started = time.monotonic()
        with pytest.raises(SourceError) as err:
            load_entity(con, tmp_path / "raw", sources["hr"], sources["hr"].entities["staff"])
        assert time.monotonic() - started < 2, "a 401 is not retried"
        assert servers.stats["hr"]["requests"] == 1
    message = str(err.value)
    assert "HTTP 401" in message and "hr.staff" in message and "not-the-token" not in message
    status, msg = con.execute("SELECT status, message FROM quality.load_audit").fetchone()
    assert status == "failed" and "401" in msg


def test_a_source_that_never_answers_in_time_fails_with_one_line(tmp_path, data_dir, con, monkeypatch):
    with SourceServers(data_dir, faults=1.0, slow_seconds=5, seed=1) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir, timeout=0.2)
        src = sources["student"]
        src = type(src)(src.name, src.kind, src.description, src.owner, {**src.options, "max_retries": 2},
                        src.entities)
        with pytest.raises(SourceError, match=r"student\.students: GET .* failed after 3 attempts"):
            load_entity(con, tmp_path / "raw", src, src.entities["students"])
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'student__students'"
                       ).fetchone()[0] == 0, "nothing half-loaded"


# ---------------------------------------------------------------------------- SQL
def _sql_source(url: str):
    sources = load_sources(PROJECT_ROOT / "sources.yaml")
    src = sources["academic"]
    return type(src)(src.name, src.kind, src.description, src.owner, {**src.options, "url": url,
                                                                      "chunk_rows": 40}, src.entities)


def _check_sql_load(con, raw_dir, url: str, n_grades: int):
    src = _sql_source(url)
    [courses] = load_entity(con, raw_dir, src, src.entities["courses"])
    [grades] = load_entity(con, raw_dir, src, src.entities["grades"])
    assert grades.rows_landed == n_grades and grades.pages >= n_grades // 40, "read in chunks"
    assert courses.rows_landed == 6
    [again] = load_entity(con, raw_dir, src, src.entities["grades"])
    assert again.rows_landed == 0 and again.cursor_before == grades.cursor_after
    cj = dict(con.execute("SELECT id, cj FROM raw.academic__grades").fetchall())
    assert {cj["1000"], cj["1002"]} == {"78", "优秀"}  # text grades and numbers as the database holds them


def test_sqlite_source(tmp_path, data_dir, con):
    _check_sql_load(con, tmp_path / "raw", f"sqlite:///{data_dir / 'academic' / 'academic.sqlite'}", 130)


def _server_url(kind: str) -> str:
    return {"postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test"}[kind]


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_server_database_source(tmp_path, data_dir, con, kind):
    base = _server_url(kind)
    try:
        sa.create_engine(base).connect().close()
    except sa.exc.OperationalError as exc:
        pytest.skip(f"{kind} not reachable on this machine: {exc.orig}")
    scratch = f"hub_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE {'SCHEMA' if kind == 'postgres' else 'DATABASE'} {scratch}"))
    url = (f"{base}?options=-csearch_path%3D{scratch}" if kind == "postgres"
           else base.rsplit("/", 1)[0] + f"/{scratch}?charset=utf8mb4")
    try:
        load_academic(data_dir, url)
        _check_sql_load(con, tmp_path / "raw", url, 130)
        src, entity = _query_source(url)
        [failed] = load_entity(con, tmp_path / "raw", src, entity)
        assert failed.rows_landed == 26  # every fifth of the 130 grades is 不及格
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP {'SCHEMA' if kind == 'postgres' else 'DATABASE'} {scratch}"
                              f"{' CASCADE' if kind == 'postgres' else ''}"))


def test_unreachable_database_fails_with_one_line_and_no_password(tmp_path, con):
    src = _sql_source("postgresql+psycopg://hub:s3cret@127.0.0.1:1/nowhere")
    with pytest.raises(SourceError) as err:
        load_entity(con, tmp_path / "raw", src, src.entities["grades"])
    assert "s3cret" not in str(err.value) and "127.0.0.1:1" in str(err.value) and "\n" not in str(err.value)


def _query_source(url: str):
    from connectors.config import Entity

    src = _sql_source(url)
    entity = Entity("academic", "failed_grades", ("id",),
                    {"query": "SELECT id, xh, kch, cj, updated_at FROM jw_cj WHERE cj = '不及格'"},
                    cursor_field="updated_at")
    return type(src)(src.name, src.kind, src.description, src.owner, src.options, {"failed_grades": entity}), entity


def test_query_entity_is_incremental_on_its_cursor_column(tmp_path, data_dir, con):
    import sqlite3

    db = data_dir / "academic" / "academic.sqlite"
    src, entity = _query_source(f"sqlite:///{db}")
    [first] = load_entity(con, tmp_path / "raw", src, entity)
    expected = sqlite3.connect(db).execute("SELECT count(*) FROM jw_cj WHERE cj = '不及格'").fetchone()[0]
    assert first.rows_landed == expected > 0
    with sqlite3.connect(db) as c:
        c.execute("UPDATE jw_cj SET updated_at = '2031-01-01 00:00:00' WHERE id = 1003")  # a 不及格 row
    [second] = load_entity(con, tmp_path / "raw", src, entity)
    assert second.cursor_before == first.cursor_after and second.rows_landed == 1
    assert second.rows_read < first.rows_read, "only rows from the cursor on are read"


def test_offset_limit_paging_without_a_next_link(tmp_path, data_dir, con, monkeypatch):
    with SourceServers(data_dir) as servers:
        sources = _point_sources_at(monkeypatch, servers, data_dir)
        src = sources["activity"]
        meetings = src.entities["meetings"]
        paging = {"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": 7}
        counted = type(meetings)(meetings.source, meetings.name, meetings.primary_key,
                                 {**meetings.options, "paginator": {**paging, "total_path": "count"}})
        [result] = load_entity(con, tmp_path / "raw", src, counted)
        # With no total and no next link, a short page is no end (servers cap page sizes): an empty one is.
        plain = type(meetings)(meetings.source, meetings.name, meetings.primary_key,
                               {**meetings.options, "paginator": paging})
        [again] = load_entity(con, tmp_path / "raw2", src, plain)
    expected = len(_lines(data_dir / "activity" / "meetings.jsonl"))
    assert expected % 7, "the last page must be a short one for this test to mean anything"
    assert result.rows_landed == expected and result.pages == expected // 7 + 1
    assert again.rows_read == expected and again.pages == expected // 7 + 2


def test_retry_waits_honour_retry_after_and_back_off_capped():
    import requests
    from tenacity import RetryCallState, Retrying

    from connectors.rest import MAX_BACKOFF_S, RetryableHTTPError, _wait

    def state(attempt: int, retry_after: str | None) -> RetryCallState:
        resp = requests.Response()
        resp.status_code = 429 if retry_after else 503
        if retry_after:
            resp.headers["Retry-After"] = retry_after
        s = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
        s.attempt_number = attempt
        s.set_exception((RetryableHTTPError, RetryableHTTPError(resp), None))
        return s

    wait = _wait(0.5)
    assert wait(state(1, "7")) == 7.0, "the server's Retry-After wins"
    assert wait(state(1, "3600")) == MAX_BACKOFF_S, "but is capped"
    assert [wait(state(n, None)) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert wait(state(20, None)) == MAX_BACKOFF_S


def test_chunks_whose_column_types_change_land_every_value_as_text(tmp_path, con):
    """Chunks convert with the previous chunk's column types; a chunk that does not fit them (a column
    NULL until now, an integer column turning text or float in SQLite's loose typing) is inferred on
    its own, and every value still lands as the text the database holds."""
    import sqlite3

    from connectors.config import Entity

    db = tmp_path / "loose.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, late TEXT, score, flag)")
        rows = [(i, None if i <= 100 else f"v{i}", i if i <= 60 else (f"s{i}" if i <= 120 else i + 0.5),
                 None if i % 7 else 1) for i in range(1, 201)]
        c.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    src = _sql_source(f"sqlite:///{db}")
    entity = Entity("academic", "loose", ("id",), {"table": "t"})
    src = type(src)(src.name, src.kind, src.description, src.owner, src.options, {"loose": entity})
    [load] = load_entity(con, tmp_path / "raw", src, entity)
    assert load.rows_landed == 200 and load.pages == 5
    got = {r[0]: r[1:] for r in con.execute("SELECT id, late, score, flag FROM raw.academic__loose").fetchall()}
    want = {str(i): (late, None if score is None else (str(score) if not isinstance(score, float) else f"{score}"),
                     None if flag is None else "1") for i, late, score, flag in rows}
    assert got == want
    types = dict(con.execute("SELECT column_name, source_type FROM meta.source_schema WHERE entity = 'loose'"
                             ).fetchall())
    assert types == {"id": "number", "late": "string", "score": "mixed", "flag": "number"}


def test_a_load_lands_under_the_landing_memory_limit_and_puts_the_warehouse_limit_back(tmp_path, con):
    from connectors.raw_zone import RawZone

    def limit() -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]

    def ordered() -> bool:
        return con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]

    configured = limit()  # the warehouse's own (HUB_DUCKDB_MEMORY_LIMIT, 1.7GB unless set)
    zone = RawZone(con, tmp_path / "raw", "64MB")
    with zone._landing_settings():
        assert limit() == "61.0 MiB" and not ordered()
    assert limit() == configured and ordered()
    # Repeated loads do not drift: the configured value is restored, not DuckDB's rounded report of it.
    con.execute("SET VARIABLE hub_memory_limit = '1.9GB'")
    con.execute("SET memory_limit = '1.9GB'")
    for _ in range(3):
        with zone._landing_settings():
            pass
    assert limit() == "1.7 GiB" and con.execute("SELECT getvariable('hub_memory_limit')").fetchall()[0][0] == "1.9GB"
    # Never raised: a warehouse already below the landing limit keeps its own.
    con.execute("SET VARIABLE hub_memory_limit = '32MB'")
    con.execute("SET memory_limit = '32MB'")
    with zone._landing_settings():
        assert limit() == "30.5 MiB"
    with pytest.raises(ValueError, match="'lots' is not a memory size"):
        RawZone(con, tmp_path / "raw", "lots")


def test_a_bad_landing_memory_setting_is_one_line_naming_the_variable():
    with pytest.raises(ValueError) as err:
        Settings.from_env({"HUB_RAW_MEMORY_LIMIT": "half of it"})
    assert str(err.value) == ("HUB_RAW_MEMORY_LIMIT: 'half of it' is not a memory size (e.g. 128MB, 1GB, 2GiB)")
    assert Settings.from_env({"HUB_RAW_MEMORY_LIMIT": "1 GiB"}).raw_memory_limit == "1 GiB"


def test_a_table_too_wide_for_the_landing_limit_lands_under_the_warehouse_limit(tmp_path, con):
    """DuckDB needs buffers per column while it lands: past what the landing limit allows it runs out
    of memory; the load rolls back whole and lands again under the warehouse's own limit, audited."""
    import sqlite3

    from connectors.config import Entity

    db = tmp_path / "wide.sqlite"
    width = 120
    with sqlite3.connect(db) as c:
        c.execute(f"CREATE TABLE w (id INTEGER PRIMARY KEY, {', '.join(f'c{i} TEXT' for i in range(width))})")
        c.executemany(f"INSERT INTO w VALUES ({', '.join('?' * (width + 1))})",
                      [(r, *(f"r{r}c{i}-{'x' * (r % 17)}" for i in range(width))) for r in range(20_000)])
    src = _sql_source(f"sqlite:///{db}")
    entity = Entity("academic", "wide", ("id",), {"table": "w"})
    src = type(src)(src.name, src.kind, src.description, src.owner, {**src.options, "chunk_rows": 5000},
                    {"wide": entity})
    [load] = load_entity(con, tmp_path / "raw", src, entity, landing_memory="4MB")
    assert load.rows_landed == 20_000 and load.rows_read == 20_000 and load.rows_skipped == 0
    assert "memory limit" in load.message
    assert con.execute("SELECT count(*), count(DISTINCT id), any_value(c119) FILTER (id = '19999') "
                       "FROM raw.academic__wide").fetchall() == [(20_000, 20_000, "r19999c119-" + "x" * (19999 % 17))]
    audit = con.execute("SELECT rows_landed, message FROM quality.load_audit WHERE entity = 'wide'").fetchall()
    assert len(audit) == 1 and audit[0][0] == 20_000 and "HUB_RAW_MEMORY_LIMIT" in audit[0][1]
    assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] != "3.8 MiB"
