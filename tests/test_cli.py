"""The hub command as a person runs it: one clear line for a mistake, never a traceback."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from hub.settings import PROJECT_ROOT


def _hub(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


def test_serve_sources_without_a_campus_says_what_to_do(tmp_path):
    proc = _hub("serve-sources", "--data", str(tmp_path))
    assert proc.returncode == 2
    assert "no simulated campus here" in proc.stderr and "hub simulate" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_demo_with_a_broken_sources_file_names_the_key(tmp_path, campus_dir):
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  hr:\n    kind: soap\n    entities: {s: {primary_key: id}}\n", encoding="utf-8")
    var = tmp_path / "var"
    var.mkdir()
    os.symlink(campus_dir, var / "campus")
    proc = _hub("demo", "--scale", "0.05", "--seed", "7",
                env={"HUB_SOURCES_FILE": str(bad), "HUB_VAR_DIR": str(var), "DAGSTER_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sources.hr.kind" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.postgres
def test_serve_sources_loads_the_academic_database_by_url(campus_dir):
    base = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        sa.create_engine(base).connect().close()
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc.orig}")
    schema = f"hub_cli_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{base}?options=-csearch_path%3D{schema}"
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve-sources", "--data", str(campus_dir),
                             "--academic-url", url, "--port", "hr=0", "--port", "student=0", "--port",
                             "activity=0", "--port", "learning=0", "--inbox", str(campus_dir / "_inbox")],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("learning"):
                break
        assert any(line.startswith("academic") and "jw_cj" in line for line in lines), lines
        with admin.connect() as c:
            n = c.execute(sa.text(f"SELECT count(*) FROM {schema}.jw_cj")).scalar_one()
        assert n > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        with admin.connect() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def test_hub_load_says_when_a_table_was_too_wide_for_the_landing_memory_limit(tmp_path):
    import sqlite3

    db = tmp_path / "wide.sqlite"
    with sqlite3.connect(db) as c:
        c.execute(f"CREATE TABLE w (id INTEGER PRIMARY KEY, {', '.join(f'c{i} TEXT' for i in range(120))})")
        c.executemany(f"INSERT INTO w VALUES ({', '.join('?' * 121)})",
                      [(r, *(f"r{r}c{i}" for i in range(120))) for r in range(20_000)])
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  ods:\n    kind: sql\n    url: sqlite:///{db}\n    chunk_rows: 5000\n"
                       "    entities:\n      wide: {table: w, primary_key: id}\n", encoding="utf-8")
    env = {"HUB_SOURCES_FILE": str(sources), "HUB_VAR_DIR": str(tmp_path / "var"), "HUB_RAW_MEMORY_LIMIT": "4MB"}
    proc = _hub("load", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "landed 20,000" in proc.stdout and "HUB_RAW_MEMORY_LIMIT" in proc.stdout, proc.stdout

    proc = _hub("load", env={**env, "HUB_RAW_MEMORY_LIMIT": "plenty"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "HUB_RAW_MEMORY_LIMIT" in lines[0] and "'plenty'" in lines[0]
