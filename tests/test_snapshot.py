"""Analysts query while a run writes: `hub sql` reads the snapshot, never the locked warehouse."""

import os
import subprocess
import sys

from hub.settings import PROJECT_ROOT
from hub.warehouse import connect
from pipelines.snapshot import take_snapshot


def _hub(*args, env):
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={**os.environ, **env}, timeout=120)


def test_hub_sql_answers_from_the_snapshot_while_a_run_holds_the_warehouse(tmp_path):
    env = {"HUB_VAR_DIR": str(tmp_path)}
    writer = connect(tmp_path / "warehouse.duckdb")
    writer.execute("CREATE TABLE warehouse.dim_party_org AS SELECT 'B' || i AS org_code, i AS n FROM range(12) t(i)")
    take_snapshot(writer, tmp_path / "snapshot" / "analyst.duckdb")
    writer.execute("INSERT INTO warehouse.dim_party_org VALUES ('NEW', 99)")  # the run goes on writing
    try:
        locked = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)",
                                 str(tmp_path / "warehouse.duckdb")], capture_output=True, text=True)
        assert locked.returncode != 0 and "lock" in locked.stderr.lower(), \
            "the warehouse stays locked by its writer, also after the snapshot was taken"
        proc = _hub("sql", "SELECT count(*) AS branches FROM warehouse.dim_party_org", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "branches" in proc.stdout and "12" in proc.stdout, proc.stdout
        csv_out = _hub("sql", "SELECT org_code FROM warehouse.dim_party_org ORDER BY n LIMIT 2", "--csv", env=env)
        assert csv_out.stdout.splitlines() == ["org_code", "B0", "B1"]
    finally:
        writer.close()


def test_hub_sql_mistakes_are_one_line(tmp_path):
    env = {"HUB_VAR_DIR": str(tmp_path)}
    missing = _hub("sql", "SELECT 1", env=env)
    assert missing.returncode == 2 and "no snapshot yet" in missing.stderr and "Traceback" not in missing.stderr
    c = connect(tmp_path / "warehouse.duckdb")
    take_snapshot(c, tmp_path / "snapshot" / "analyst.duckdb")
    c.close()
    bad = _hub("sql", "SELEC nonsense", env=env)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "query failed" in lines[0]
    write = _hub("sql", "CREATE TABLE warehouse.x AS SELECT 1", env=env)
    assert write.returncode == 2 and "read-only" in write.stderr.lower(), "the snapshot cannot be written"
