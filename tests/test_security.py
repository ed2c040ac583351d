"""Security probes (issue 14): what `hub sql` cannot do, what analysts can read, keys that cannot be guessed
or left unset, and secrets that never reach disk, logs or the console."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys

import duckdb
import pytest

from connectors.redact import redact, register_secret
from hub.encryption import KeyConfigError
from hub.keys import DEMO_KEYS, check_keys
from hub.resources import WarehouseResource
from hub.settings import PROJECT_ROOT
from hub.warehouse import connect
from models.build import hmac_pads
from pipelines.snapshot import take_snapshot

CLEAR_ID = "450102199901010015"   # valid GB 11643 number
CLEAR_PHONE = "13812345678"


def _hub(*args, env, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **env}, timeout=120)


# ------------------------------------------------------------------------------------------------- redact

def test_redact_takes_out_userinfo_and_known_secrets(monkeypatch):
    monkeypatch.setenv("HUB_XY_TOKEN", "tok-Zq8-canary")
    monkeypatch.setenv("HUB_SOME_URL", "postgresql://u:pw%2Fcanary9@db/x")
    register_secret("registered-canary-1")
    text = ("GET http://alice:s3cr3t-pass@127.0.0.1:9/x -> 401; token tok-Zq8-canary; "
            "pw/canary9 and pw%2Fcanary9; registered-canary-1; Authorization: Basic YWxpY2U6czNjcjN0")
    out = redact(text)
    for secret in ("alice", "s3cr3t-pass", "tok-Zq8-canary", "pw/canary9", "pw%2Fcanary9", "registered-canary-1",
                   "YWxpY2U6czNjcjN0"):
        assert secret not in out, (secret, out)
    assert "http://***@127.0.0.1:9/x -> 401" in out, "the rest of the message stays readable"
    assert redact("plain text, no secrets: 42") == "plain text, no secrets: 42"
    monkeypatch.setenv("PWD", "/srv/hub")  # a path is not a secret: messages keep saying where
    assert redact("cannot read /srv/hub/var/raw/x.parquet") == "cannot read /srv/hub/var/raw/x.parquet"


# --------------------------------------------------------------------------------------------------- keys

def _prod_env(**overrides):
    env = {"HUB_PERSON_KEY_SECRET": "p" * 24 + "-real", "HUB_NATIONAL_KEY_SECRET": "n" * 24 + "-real",
           "HUB_KMS_MASTER_KEYS": "hub_footer:" + base64.b64encode(os.urandom(32)).decode()}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def test_a_production_run_refuses_unset_short_or_shipped_keys_in_one_line():
    check_keys(_prod_env())  # own keys: accepted
    cases = {
        "HUB_PERSON_KEY_SECRET": [None, "", DEMO_KEYS["HUB_PERSON_KEY_SECRET"], "campus-data-hub-simulation-key",
                                  "test-secret", "short-key"],
        "HUB_NATIONAL_KEY_SECRET": [None, DEMO_KEYS["HUB_NATIONAL_KEY_SECRET"]],
        "HUB_KMS_MASTER_KEYS": [None, DEMO_KEYS["HUB_KMS_MASTER_KEYS"],
                                "hub_footer:c2ltdWxhdGlvbi1vbmx5LWtleS0tY2hhbmdlLW1lISE="],
    }
    for var, values in cases.items():
        for value in values:
            with pytest.raises(KeyConfigError) as err:
                check_keys(_prod_env(**{var: value}))
            message = str(err.value)
            assert var in message and "\n" not in message, message
            if value:
                assert value.partition(":")[2] or value not in message, "the message never shows the key"
                assert value not in message


def test_demo_and_test_modes_accept_their_own_keys_only_there():
    demo = {**DEMO_KEYS, "HUB_MODE": "demo"}
    check_keys(demo)
    check_keys({**demo, "HUB_MODE": "test"})
    with pytest.raises(KeyConfigError, match="HUB_PERSON_KEY_SECRET"):
        check_keys({**DEMO_KEYS})  # the same keys without demo mode
    with pytest.raises(KeyConfigError, match="HUB_PERSON_KEY_SECRET is not set"):
        check_keys({"HUB_MODE": "demo", "HUB_KMS_MASTER_KEYS": DEMO_KEYS["HUB_KMS_MASTER_KEYS"]})


def test_a_dagster_run_without_keys_is_refused_before_any_step_writes(tmp_path, monkeypatch):
    import dagster as dg

    for var in ("HUB_MODE", "HUB_PERSON_KEY_SECRET", "HUB_NATIONAL_KEY_SECRET"):
        monkeypatch.delenv(var, raising=False)

    @dg.asset
    def probe(warehouse: WarehouseResource) -> None:
        with warehouse.connect() as con:
            con.execute("CREATE TABLE warehouse.ran AS SELECT 1 AS x")

    result = dg.materialize([probe], resources={"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))},
                            raise_on_error=False)
    assert not result.success
    errors = [e.event_specific_data.error for e in result.all_events
              if getattr(e.event_specific_data, "error", None) is not None]
    assert errors and not any(e.is_step_success for e in result.all_events)
    roots = []
    for failure in errors:
        while failure.cause is not None:
            failure = failure.cause
        roots.append(failure.message.strip())
    assert "HUB_PERSON_KEY_SECRET is not set: a run needs its own secret (see docs/security.md)" in \
        [r.split(": ", 1)[-1] if r.startswith("hub.encryption") else r for r in roots], roots
    assert not (tmp_path / "w.duckdb").exists(), "nothing ran"


def test_person_key_sql_is_hmac_sha256_of_the_normalised_id():
    secret = "a-key-of-the-operator-" + "x" * 50  # longer than a SHA-256 block too
    for key in (secret, "short"):
        ipad, opad = hmac_pads(key)
        got = duckdb.connect().execute("SELECT upper(substr(sha256($o || unhex(sha256($i || encode($m)))), 1, 32))",
                             {"i": ipad, "o": opad, "m": CLEAR_ID}).fetchone()[0]
        assert got == hmac.new(key.encode(), CLEAR_ID.encode(), hashlib.sha256).hexdigest()[:32].upper()
    sql = (PROJECT_ROOT / "models" / "sql" / "warehouse" / "dim_person.sql").read_text(encoding="utf-8")
    assert "$hmac_opad" in sql and "$secret ||" not in sql


# ----------------------------------------------------------------------------------------------- hub sql

@pytest.fixture
def small_hub(tmp_path):
    """A warehouse with clear personal numbers in every layer, its snapshots, and a raw Parquet file."""
    var = tmp_path / "var"
    con = connect(var / "warehouse.duckdb")
    con.execute(f"""CREATE TABLE warehouse.dim_person AS SELECT 'K1' AS person_key, '{CLEAR_ID}' AS id_number,
                    '张三' AS name, DATE '1999-01-01' AS birth_date, '{CLEAR_PHONE}' AS phone, '450102' AS birth_area_code""")
    con.execute("CREATE TABLE marts.mart_x AS SELECT 'K1' AS person_key, 3 AS n")
    con.execute(f"CREATE TABLE raw.hr__staff AS SELECT '{CLEAR_ID}' AS sfzjh")
    con.execute(f"CREATE TABLE staging.stg_x AS SELECT '{CLEAR_ID}' AS id_number")
    raw = var / "raw" / "hr" / "staff"
    raw.mkdir(parents=True)
    con.execute(f"COPY (SELECT '{CLEAR_ID}' AS sfzjh) TO '{raw / 'part.parquet'}' (FORMAT parquet)")
    take_snapshot(con, var / "snapshot" / "analyst.duckdb", role="analyst")
    take_snapshot(con, var / "restricted" / "restricted.duckdb", role="restricted")
    con.close()
    return var


def test_analyst_snapshot_holds_warehouse_and_marts_masked_and_opens_directly(small_hub):
    path = small_hub / "snapshot" / "analyst.duckdb"
    assert path.stat().st_mode & 0o777 == 0o640
    assert (small_hub / "restricted" / "restricted.duckdb").stat().st_mode & 0o777 == 0o600
    con = duckdb.connect(str(path), read_only=True)  # the obvious way: no ATTACH … AS, no USE
    try:
        schemas = {r[0] for r in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
        assert schemas == {"warehouse", "marts"}, "no raw, staging or quality for analysts"
        row = con.execute("SELECT * FROM warehouse.dim_person").fetchone()
        cols = [d[0] for d in con.description]
        assert "birth_date" not in cols, "a restricted column with no mask is left out"
        values = dict(zip(cols, row, strict=True))
        assert values["id_number"] == "450102************" and values["phone"] == "138****5678"
        assert con.execute("SELECT n FROM marts.mart_x").fetchone() == (3,)
    finally:
        con.close()
    data = path.read_bytes()
    assert CLEAR_ID.encode() not in data and CLEAR_PHONE.encode() not in data
    clear = duckdb.connect(str(small_hub / "restricted" / "restricted.duckdb"), read_only=True)
    try:
        assert clear.execute("SELECT id_number, phone FROM warehouse.dim_person").fetchone() == (CLEAR_ID, CLEAR_PHONE)
    finally:
        clear.close()


def test_the_snapshot_asset_writes_both_roles_and_removes_an_earlier_unmasked_copy(tmp_path):
    import dagster as dg

    from hub.resources import RunSettingsResource
    from pipelines.snapshot import analyst_snapshot_asset

    con = connect(tmp_path / "warehouse.duckdb")
    con.execute(f"CREATE TABLE warehouse.dim_person AS SELECT 'K1' AS person_key, '{CLEAR_ID}' AS id_number")
    con.close()
    legacy = tmp_path / "snapshot" / "warehouse.duckdb"  # what earlier versions wrote: everything, in clear
    legacy.parent.mkdir()
    legacy.write_bytes(CLEAR_ID.encode())
    resource = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"),
                                 snapshot_path=str(tmp_path / "snapshot" / "analyst.duckdb"),
                                 restricted_snapshot_path=str(tmp_path / "restricted" / "restricted.duckdb"))
    assert dg.materialize([analyst_snapshot_asset([])],
                          resources={"warehouse": resource, "run_settings": RunSettingsResource()}).success
    assert not legacy.exists()
    assert sorted(p.name for p in (tmp_path / "snapshot").iterdir()) == ["analyst.duckdb"]
    assert (tmp_path / "restricted" / "restricted.duckdb").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "restricted").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("query, expect", [
    ("ATTACH '{var}/warehouse.duckdb' AS live", "ATTACH is not allowed"),
    ("UPDATE warehouse.dim_person SET name = 'x'", "UPDATE is not allowed"),
    ("CREATE TABLE warehouse.y AS SELECT 1", "CREATE is not allowed"),
    ("COPY (SELECT * FROM warehouse.dim_person) TO '{var}/out.csv'", "COPY is not allowed"),
    ("EXPORT DATABASE '{var}/snapshot/dump'", "EXPORT is not allowed"),
    ("EXPLAIN ANALYZE COPY (SELECT * FROM warehouse.dim_person) TO '{var}/snapshot/out.csv'", "EXPLAIN is not allowed"),
    ("INSTALL httpfs", "is not allowed"),
    ("LOAD httpfs", "is not allowed"),
    ("SET enable_external_access = true", "SET is not allowed"),
    ("SELECT 1; SELECT 2", "one query at a time"),
    ("SELECT * FROM read_csv('/etc/passwd')", "query failed"),
    ("SELECT * FROM read_parquet('{var}/raw/hr/staff/*.parquet')", "query failed"),
    ("SELECT * FROM read_text('{var}/restricted/restricted.duckdb')", "query failed"),
    ("SELECT * FROM glob('/etc/*')", "query failed"),
    ("SELECT * FROM read_text('/proc/self/environ')", "query failed"),  # where the keys are
    ("CALL pragma_database_list()", "is not allowed"),
    ("SELECT * FROM query('ATTACH ''{var}/warehouse.duckdb'' AS w')", "query failed"),
    ("SELECT current_setting('enable_external_access') AS x FROM raw.hr__staff", "query failed"),
])
def test_hub_sql_refuses_everything_but_reading_the_snapshot(small_hub, query, expect):
    query = query.format(var=small_hub)
    proc = _hub("sql", query, env={"HUB_VAR_DIR": str(small_hub)})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and expect in lines[0], (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert not (small_hub / "out.csv").exists() and not (small_hub / "snapshot" / "dump").exists()
    assert not (small_hub / "snapshot" / "out.csv").exists()
    live = connect(small_hub / "warehouse.duckdb", read_only=True)
    try:
        assert live.execute("SELECT name FROM warehouse.dim_person").fetchone() == ("张三",)
    finally:
        live.close()


def test_hub_sql_on_a_damaged_snapshot_says_so_in_one_line(tmp_path):
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "analyst.duckdb").write_bytes(b"not a database" * 100)
    proc = _hub("sql", "SELECT 1", env={"HUB_VAR_DIR": str(tmp_path)})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "cannot open the snapshot" in lines[0], proc.stderr


def test_hub_sql_reads_and_exports_with_the_snapshots_masking(small_hub, tmp_path):
    env = {"HUB_VAR_DIR": str(small_hub)}
    proc = _hub("sql", "SELECT id_number, phone FROM warehouse.dim_person", "--csv", env=env)
    assert proc.returncode == 0 and proc.stdout.splitlines() == ["id_number,phone", "450102************,138****5678"]
    on = _hub("sql", "SELECT current_setting('enable_external_access') AS ext, "
                     "current_setting('lock_configuration') AS locked", "--csv", env=env)
    assert on.stdout.splitlines()[1] == "False,True"
    for name in ("people.csv", "people.parquet"):
        target = tmp_path / name
        out = _hub("sql", "SELECT * FROM warehouse.dim_person", "--export", str(target), env=env)
        assert out.returncode == 0 and "Wrote 1 row" in out.stdout, out.stderr
        rows = duckdb.connect().execute(f"SELECT id_number, phone FROM '{target}'").fetchall()
        assert rows == [("450102************", "138****5678")]
        assert CLEAR_ID.encode() not in target.read_bytes()
    bad = _hub("sql", "SELECT 1", "--export", str(tmp_path / "x.xlsx"), env=env)
    assert bad.returncode == 2 and "must end in .csv or .parquet" in bad.stderr


# ------------------------------------------------------------------ end to end: a run with recognisable secrets

def _leaky_server():
    """A real HTTP server on loopback that answers every request 404, echoing the request line."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = f"no such thing: {self.path}".encode()
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _guide_queries() -> list[str]:
    import re

    text = (PROJECT_ROOT / "docs" / "analyst-guide.md").read_text(encoding="utf-8")
    return [b.strip() for b in re.findall(r"```sql\n(.*?)```", text, flags=re.S)]


@pytest.mark.slow
def test_a_run_with_secrets_leaves_none_on_disk_and_analysts_no_clear_numbers(tmp_path, campus_dir, monkeypatch):
    import io
    import json
    import secrets
    import shutil
    import time

    from rich.console import Console

    from hub.demo import demo
    from hub.keys import SHIPPED_SECRETS
    from hub.settings import Settings
    from tests.conftest import SEED, SMALL_SCALE
    from tests.test_demo_e2e import _clear_personal_numbers

    tag = secrets.token_hex(6)
    canary = {
        "HUB_PERSON_KEY_SECRET": f"canary-person-key-{tag}",
        "HUB_NATIONAL_KEY_SECRET": f"canary-national-key-{tag}",
        "HUB_HR_TOKEN": f"canary-hr-token-{tag}",
        "HUB_XG_API_KEY": f"canary-xg-key-{tag}",
        "HUB_ACTIVITY_PASSWORD": f"canary-activity-pw-{tag}",
        "HUB_LEARNING_TOKEN": f"canary-learning-token-{tag}",
        "LEAKY_URL_PASSWORD": f"canary-url-pw-{tag}",
        "LEAKY_DB_PASSWORD": f"canary-db-pw-{tag}",
    }
    kms_key = base64.b64encode(os.urandom(32)).decode()
    home, var = tmp_path / "dagster_home", tmp_path / "var"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    var.mkdir()
    shutil.copytree(campus_dir, var / "campus")
    server = _leaky_server()
    sources = (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8") + f"""
  leaky_rest:
    kind: rest
    description: a source whose URL carries a password, and which fails
    owner: team:data-platform
    base_url: http://leakuser:{canary['LEAKY_URL_PASSWORD']}@127.0.0.1:{server.server_address[1]}
    entities:
      things:
        path: /api/things
        records_path: items
        paginator: {{type: page_number, page_param: page, size_param: size, page_size: 10}}
        primary_key: id

  leaky_sql:
    kind: sql
    description: a database whose URL carries a password, and which fails
    owner: team:data-platform
    url: postgresql+psycopg://leakuser:{canary['LEAKY_DB_PASSWORD']}@127.0.0.1:5432/test
    entities:
      rows: {{table: no_such_table, primary_key: id}}
"""
    (tmp_path / "sources.yaml").write_text(sources, encoding="utf-8")
    for k, v in {**canary, "HUB_KMS_MASTER_KEYS": f"hub_footer:{kms_key}", "HUB_VAR_DIR": str(var),
                 "DAGSTER_HOME": str(home), "HUB_SOURCES_FILE": str(tmp_path / "sources.yaml")}.items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env()
    out = io.StringIO()
    try:
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            result = demo(settings, scale=SMALL_SCALE, seed=SEED, console=Console(file=out, width=160),
                          instance=instance)
    finally:
        server.shutdown()
    console_text = out.getvalue()
    assert sorted(result.failed_steps) == ["raw__leaky_rest__things", "raw__leaky_sql__rows"], console_text[-4000:]

    # The failures were recorded (so the search below is not vacuous), with the password taken out.
    con = connect(settings.warehouse_path, read_only=True)
    try:
        failed = dict(con.execute("SELECT source, message FROM quality.load_audit WHERE status = 'failed' "
                                  "AND source LIKE 'leaky%'").fetchall())
        assert set(failed) == {"leaky_rest", "leaky_sql"}, failed
        assert "http://***@127.0.0.1" in failed["leaky_rest"] and "404" in failed["leaky_rest"]
        # Every text column of every table of the warehouse.
        hits = []
        for schema, table, column in con.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE database_name = 'hub' "
                "AND data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]' OR data_type LIKE 'STRUCT%' "
                "OR data_type LIKE 'MAP%'").fetchall():
            cond = " OR ".join(f"contains(CAST(\"{column}\" AS VARCHAR), ?)" for _ in canary)
            n = con.execute(f'SELECT count(*) FROM {schema}."{table}" WHERE {cond}', list(canary.values())).fetchone()[0]
            if n:
                hits.append(f"{schema}.{table}.{column}")
        assert not hits, f"secrets in the warehouse: {hits}"
    finally:
        con.close()

    # Every file under dagster_home/ and var/, byte for byte, and the console.
    needles = [v.encode() for v in canary.values()] + [kms_key.encode()]
    files = [p for root in (home, var) for p in root.rglob("*") if p.is_file()]
    assert len(files) > 50
    leaks = [(str(p), n.decode()) for p in files for n in needles if n in p.read_bytes()]
    assert not leaks, f"secrets on disk: {leaks[:10]}"
    assert not [v for v in canary.values() if v in console_text]

    # Analysts: the snapshot opened the obvious way, the guide's queries unchanged, no clear numbers.
    analyst, restricted = settings.snapshot_path, settings.restricted_snapshot_path
    assert analyst.name == "analyst.duckdb" and analyst.stat().st_mode & 0o777 == 0o640
    assert restricted.stat().st_mode & 0o777 == 0o600 and restricted.parent != analyst.parent
    snap = duckdb.connect(str(analyst), read_only=True)
    try:
        queries = _guide_queries()
        assert len(queries) >= 10
        for query in queries:
            snap.execute(query).fetchall()  # raises if the guide is wrong about the snapshot
        assert {r[0] for r in snap.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()} == \
            {"warehouse", "marts"}
        scanned = 0
        for schema, table, column in snap.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE data_type = 'VARCHAR'"
                ).fetchall():
            for (value,) in snap.execute(f'SELECT DISTINCT "{column}" FROM {schema}."{table}" '
                                         f'WHERE "{column}" IS NOT NULL').fetchall():
                assert not _clear_personal_numbers(value), f"clear number in {schema}.{table}.{column}"
                scanned += 1
        assert scanned > 1000
    finally:
        snap.close()

    # person_key: HMAC-SHA256 under the operator's key; the keys shipped here do not reverse it.
    clear = duckdb.connect(str(restricted), read_only=True)
    try:
        people = clear.execute("SELECT person_key, id_number, gender FROM warehouse.dim_person "
                               "WHERE has_valid_id ORDER BY person_key").fetchall()
    finally:
        clear.close()
    key = canary["HUB_PERSON_KEY_SECRET"].encode()
    assert people and all(pk == hmac.new(key, i.encode(), hashlib.sha256).hexdigest()[:32].upper()
                          for pk, i, _ in people)
    for shipped in SHIPPED_SECRETS:  # even guessing every ID right, a shipped key gives no published key
        k = shipped.encode()
        assert not [pk for pk, i, _ in people if pk == hmac.new(k, i.encode(), hashlib.sha256).hexdigest()[:32].upper()]

    # The reversal the review did, on what person_directory publishes now: the mask (area code only), the
    # birth cohort and the gender. Brute force every birth date in the cohort, every sequence number of that
    # gender and the check character: ~900,000 candidates for one person. With a shipped key: no match.
    catalog = json.loads((settings.published_root / "catalog.json").read_text(encoding="utf-8"))
    manifest = json.loads((settings.published_root / catalog["datasets"]["person_directory"]["manifest"])
                          .read_text(encoding="utf-8"))
    assert "birth_year" not in {c["name"] for c in manifest["schema"]["columns"]}
    directory = settings.published_root / "person_directory" / manifest["version"] / "data" / "*.parquet"
    w = connect(tmp_path / "attack.duckdb")
    try:
        pk, masked, cohort, gender = w.execute(
            f"SELECT person_key, id_number_masked, birth_cohort, gender FROM read_parquet('{directory}') "
            "WHERE id_number_masked IS NOT NULL ORDER BY person_key LIMIT 1").fetchone()
        assert masked[6:] == "*" * 12, "the mask keeps the area code only"
        first = int(cohort[:4])
        w.execute(f"""CREATE TABLE candidates AS
            WITH body AS (
                SELECT '{masked[:6]}' || strftime(d, '%Y%m%d') || lpad(CAST(s AS VARCHAR), 3, '0') AS b
                FROM range(DATE '{first}-01-01', DATE '{first + 5}-01-01', INTERVAL 1 DAY) t(d),
                     range(0, 1000) r(s)
                WHERE s % 2 = {1 if gender == '1' else 0})
            SELECT b || id_check_char(b) AS id FROM body""")
        n = w.execute("SELECT count(*) FROM candidates").fetchone()[0]
        true_id = dict((p, i) for p, i, _ in people)[pk]
        assert n > 800_000 and w.execute("SELECT count(*) FROM candidates WHERE id = ?", [true_id]).fetchone()[0] == 1

        def reverse(secret: str) -> list[str]:
            ipad, opad = hmac_pads(secret)
            return [r[0] for r in w.execute(
                "SELECT id FROM candidates WHERE upper(substr(sha256($o || unhex(sha256($i || encode(id)))), 1, 32)) = $pk",
                {"i": ipad, "o": opad, "pk": pk}).fetchall()]

        started = time.monotonic()
        assert reverse(DEMO_KEYS["HUB_PERSON_KEY_SECRET"]) == [], "the demo key does not reverse a production key"
        assert reverse("campus-data-hub-simulation-key") == []
        per_key = (time.monotonic() - started) / 2
        # The attack itself is real: whoever holds the operator's key does find the number. That is why the
        # key must be the operator's own, never one shipped here (hub.keys), and why docs/security.md says so.
        assert reverse(canary["HUB_PERSON_KEY_SECRET"]) == [true_id]
        print(f"reversal: {n:,} candidates for one person, {per_key:.1f} s per guessed key")
    finally:
        w.close()
