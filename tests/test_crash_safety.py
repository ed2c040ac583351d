"""Kill -9 at any moment, run again: exactly the rows of a clean run, none lost, none duplicated."""

import os
import signal
import subprocess
import sys
import time

import pytest

from campus_sim.inbox import drop_party_exports
from campus_sim.servers import SourceServers
from hub.settings import PROJECT_ROOT, Settings
from hub.warehouse import connect

pytestmark = pytest.mark.slow

KILL_AFTER_S = (0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 3.6, 4.3)


def _env(var, servers: SourceServers) -> dict[str, str]:
    settings = Settings.from_env({"HUB_VAR_DIR": str(var)})
    return {**os.environ, "HUB_VAR_DIR": str(var), **settings.source_env(servers.urls),
            "HUB_ACADEMIC_URL": os.environ["_TEST_ACADEMIC_URL"], "HUB_DUCKDB_MEMORY_LIMIT": "1GB"}


def _hub_load(env, *, kill_after: float | None = None) -> int | None:
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "load"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        return 0
    time.sleep(kill_after)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode


def _fingerprint(warehouse) -> dict:
    con = connect(warehouse, read_only=True)
    try:
        out = {}
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
                                    "ORDER BY 1").fetchall():
            cols = [r[0] for r in con.execute(f'DESCRIBE raw."{table}"').fetchall()
                    if r[0] not in ("_load_id", "_extracted_at", "_row_number")]
            out[table] = con.execute(f"SELECT count(*), sum(hash({', '.join(chr(34) + c + chr(34) for c in cols)})"
                                     f"::HUGEINT) FROM raw.\"{table}\"").fetchone()
        out["quarantine"] = con.execute("SELECT source, entity, rule, count(*) FROM quality.quarantine "
                                        "GROUP BY ALL ORDER BY ALL").fetchall()
        out["files"] = con.execute("SELECT count(*) FROM meta.loaded_file").fetchone()
        out["conserved"] = con.execute(
            "SELECT count(*) FROM quality.load_audit WHERE status = 'ok' "
            "AND rows_read <> rows_landed + rows_skipped + rows_rejected").fetchone()
        landed = dict(con.execute("SELECT source || '__' || entity, sum(rows_landed) FROM quality.load_audit "
                                  "WHERE status = 'ok' GROUP BY ALL").fetchall())
        # Every raw row is accounted for by a committed load's audit row: data and bookkeeping together.
        out["audit_accounts_for_raw"] = all(landed.get(t) == out[t][0] for t in out if t in landed) and \
            set(landed) >= {t for t in out if not t.startswith(("quarantine", "files", "conserved"))}
        return out
    finally:
        con.close()


def test_killed_loads_rerun_to_exactly_the_clean_result(tmp_path, campus_dir, monkeypatch):
    monkeypatch.setenv("_TEST_ACADEMIC_URL", f"sqlite:///{campus_dir / 'academic' / 'academic.sqlite'}")
    with SourceServers(campus_dir, faults=0.1, slow_seconds=0.5, seed=11) as servers:
        clean_var, killed_var = tmp_path / "clean", tmp_path / "killed"
        for var in (clean_var, killed_var):
            drop_party_exports(campus_dir, var / "inbox" / "party")
        clean_env, killed_env = _env(clean_var, servers), _env(killed_var, servers)
        clean_env["HUB_HTTP_TIMEOUT"] = killed_env["HUB_HTTP_TIMEOUT"] = "0.3"

        started = time.monotonic()
        _hub_load(clean_env)
        clean_seconds = time.monotonic() - started

        killed_midway = 0
        for delay in KILL_AFTER_S:
            code = _hub_load(killed_env, kill_after=min(delay, clean_seconds * 0.95))
            killed_midway += code == -signal.SIGKILL
        _hub_load(killed_env)  # and once more to completion

    assert killed_midway >= 4, f"the kills must land mid-load (clean run took {clean_seconds:.1f} s)"
    clean, killed = _fingerprint(clean_var / "warehouse.duckdb"), _fingerprint(killed_var / "warehouse.duckdb")
    assert clean["conserved"] == killed["conserved"] == (0,)
    assert clean["audit_accounts_for_raw"] and killed["audit_accounts_for_raw"]
    assert killed == clean
    assert all(v[0] > 0 for k, v in clean.items() if k.count("__"))
