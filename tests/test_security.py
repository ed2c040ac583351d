"""Security probes (issue 14): what `hub sql` cannot do, what analysts can read, keys that cannot be guessed
or left unset, and secrets that never reach disk, logs or the console."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("query, expect", [
    ("ATTACH '{var}/warehouse.duckdb' AS live", "ATTACH is not allowed"),
    ("UPDATE warehouse.dim_person SET name = 'x'", "UPDATE is not allowed"),
    ("CREATE TABLE warehouse.y AS SELECT 1", "CREATE is not allowed"),
    ("COPY (SELECT * FROM warehouse.dim_person) TO '{var}/out.csv'", "COPY is not allowed"),
    ("EXPORT DATABASE '{var}/snapshot/dump'", "EXPORT is not allowed"),
    ("INSTALL httpfs", "is not allowed"),
    ("LOAD httpfs", "is not allowed"),
    ("SET enable_external_access = true", "SET is not allowed"),
    ("SELECT 1; SELECT 2", "one query at a time"),
    ("SELECT * FROM read_csv('/etc/passwd')", "query failed"),
    ("SELECT * FROM read_parquet('{var}/raw/hr/staff/*.parquet')", "query failed"),
    ("SELECT * FROM read_text('{var}/restricted/restricted.duckdb')", "query failed"),
    ("SELECT * FROM glob('/etc/*')", "query failed"),
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
    live = connect(small_hub / "warehouse.duckdb", read_only=True)
    try:
        assert live.execute("SELECT name FROM warehouse.dim_person").fetchone() == ("张三",)
    finally:
        live.close()


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
