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


def _tables(path) -> dict[str, set]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as c:
        names = [f"{s}.{t}" for s, t in c.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()]
        return {n: set(c.execute(f"SELECT * FROM {n}").fetchall()) for n in names}


def _record(con, schema: str, table: str) -> None:
    """What a model does after building a table: record its content version (pipelines/content.py)."""
    from pipelines.content import record_content

    record_content(con, [(schema, table)], run_id="test")


def test_a_snapshot_rewrites_only_the_tables_whose_content_changed_and_equals_a_full_copy(tmp_path):
    """Unchanged tables are kept from the last snapshot, changed and new ones written, dropped ones gone; the
    result equals a full copy table by table, masked columns masked, and the analysts' folder holds the
    snapshot alone. A snapshot file other than the one recorded, or a table without a recorded version, is
    copied again in full."""
    c = connect(tmp_path / "warehouse.duckdb")
    c.execute("CREATE TABLE warehouse.dim_person AS SELECT 'P' || i AS person_key, "
              "'11010519900101' || lpad(CAST(i AS VARCHAR), 4, '0') AS id_number FROM range(50) t(i)")
    c.execute("CREATE TABLE warehouse.fact_a AS SELECT i AS n FROM range(100) t(i)")
    c.execute("CREATE TABLE warehouse.fact_b AS SELECT i AS n FROM range(10) t(i)")
    c.execute("CREATE TABLE marts.mart_x AS SELECT 1 AS one")
    for s, t in (("warehouse", "dim_person"), ("warehouse", "fact_a"), ("warehouse", "fact_b"), ("marts", "mart_x")):
        _record(c, s, t)
    target, full = tmp_path / "snapshot" / "analyst.duckdb", tmp_path / "full" / "analyst.duckdb"
    counts: dict = {}
    take_snapshot(c, target, counts=counts)
    assert counts == {"tables_copied": 4, "tables_kept": 0, "tables_patched": 0}  # the first: everything

    c.execute("INSERT INTO warehouse.fact_a VALUES (100)")  # rebuilt with new content
    _record(c, "warehouse", "fact_a")
    c.execute("DROP TABLE warehouse.fact_b")                 # gone from the warehouse
    c.execute("CREATE TABLE marts.mart_y AS SELECT 2 AS two")  # new, no recorded version
    take_snapshot(c, target, counts=counts)
    assert counts == {"tables_copied": 2, "tables_kept": 2, "tables_patched": 0}, counts
    take_snapshot(c, full, incremental=False)
    got, want = _tables(target), _tables(full)
    assert got == want and "warehouse.fact_b" not in got and (100,) in got["warehouse.fact_a"]
    assert all(not v[1].startswith("11010519900101") for v in got["warehouse.dim_person"])  # still masked
    assert [p.name for p in target.parent.iterdir()] == ["analyst.duckdb"]

    # a table whose version did not change is taken from the old file: a file that is not the one the
    # warehouse recorded (replaced behind the hub's back) is not trusted
    os.utime(target, ns=(1, 1))
    take_snapshot(c, target, counts=counts)
    assert counts["tables_kept"] == 0 and _tables(target) == want
    c.close()


def test_a_table_whose_model_logs_its_keys_is_patched_and_equals_a_full_copy(tmp_path):
    """A table whose model logs the keys each build touched (models/delta.py, as the incremental grade facts
    do) is patched in the snapshot: those keys' rows replaced, masked columns masked, equal to a full copy.
    A whole build, or new content with no build logged since the copy, is copied whole."""
    from models import delta

    c = connect(tmp_path / "warehouse.duckdb")
    c.execute("CREATE TABLE warehouse.fact_g AS SELECT 'S' || (i % 20) AS student_no, 'T' || (i % 3) AS term, "
              "i AS score, '11010519900101' || lpad(CAST(i % 20 AS VARCHAR), 4, '0') AS id_number FROM range(120) t(i)")
    delta.record(c, "fact_g", "warehouse.fact_g")  # its first build: whole
    _record(c, "warehouse", "fact_g")
    target, full = tmp_path / "snapshot" / "analyst.duckdb", tmp_path / "full" / "analyst.duckdb"
    counts: dict = {}
    take_snapshot(c, target, counts=counts)
    assert counts["tables_copied"] == 1

    def build(*statements: str, keys: str | None) -> None:  # an incremental build and its log
        for statement in statements:
            c.execute(statement)
        delta.record(c, "fact_g", "warehouse.fact_g", keys=keys, key_columns=("student_no", "term") if keys else ())
        _record(c, "warehouse", "fact_g")

    build("DELETE FROM warehouse.fact_g WHERE student_no = 'S1' AND term = 'T1'",
          "UPDATE warehouse.fact_g SET score = score + 1000 WHERE student_no = 'S2' AND term = 'T0'",
          "INSERT INTO warehouse.fact_g VALUES ('S99', 'T2', 7, '110105199001019999')",
          keys="(VALUES ('S1', 'T1'), ('S2', 'T0'), ('S99', 'T2')) t(student_no, term)")
    take_snapshot(c, target, counts=counts)
    assert counts == {"tables_copied": 0, "tables_kept": 0, "tables_patched": 1}, counts
    take_snapshot(c, full, incremental=False)
    got = _tables(target)
    assert got == _tables(full) and ("S99", "T2", 7) in {r[:3] for r in got["warehouse.fact_g"]}
    assert all(not v[3].startswith("11010519900101") for v in got["warehouse.fact_g"])  # still masked

    build("UPDATE warehouse.fact_g SET score = 0 WHERE student_no = 'S3'", keys=None)  # a whole build
    take_snapshot(c, target, counts=counts)
    assert counts["tables_copied"] == 1 and (0,) in {(r[2],) for r in _tables(target)["warehouse.fact_g"]}
    c.execute("UPDATE warehouse.fact_g SET score = -1 WHERE student_no = 'S4'")  # content, but no build logged
    _record(c, "warehouse", "fact_g")
    take_snapshot(c, target, counts=counts)
    take_snapshot(c, full, incremental=False)
    assert counts["tables_copied"] == 1 and _tables(target) == _tables(full)
    c.close()
