"""Schema drift at the source: a new column is added and reported; a missing required column fails that
entity's load and nothing else; a changed type is reported and kept as text, never coerced."""

import json

import pytest

from campus_sim.servers import SourceServers
from connectors import SourceError, load_entity, load_sources
from hub.settings import PROJECT_ROOT, Settings
from tests.test_servers import _write_campus


@pytest.fixture
def data_dir(tmp_path):
    return _write_campus(tmp_path / "campus")


def _rewrite(path, change):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(r), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _load(con, tmp_path, data_dir, monkeypatch, source, entity):
    with SourceServers(data_dir) as servers:
        for k, v in Settings.from_env().source_env(servers.urls).items():
            monkeypatch.setenv(k, v)
        src = load_sources(PROJECT_ROOT / "sources.yaml")[source]
        return load_entity(con, tmp_path / "raw", src, src.entities[entity])


def _later(record, field="updated_at", value="2031-01-01T00:00:00+08:00"):
    return {**record, field: value}


def test_new_column_is_added_and_reported(tmp_path, data_dir, con, monkeypatch):
    _load(con, tmp_path, data_dir, monkeypatch, "hr", "staff")
    _rewrite(data_dir / "hr" / "staff.jsonl", lambda r: _later({**r, "gzzh": "GZ" + r["gh"]}))
    [result] = _load(con, tmp_path, data_dir, monkeypatch, "hr", "staff")
    assert result.new_columns == ["gzzh"]
    assert con.execute("SELECT count(gzzh) FROM raw.hr__staff").fetchone()[0] == result.rows_landed > 0
    message = con.execute("SELECT message FROM quality.load_audit WHERE load_id = ?", [result.load_id]).fetchone()[0]
    assert "new column(s) ['gzzh']" in message


def test_missing_required_column_fails_that_load_and_keeps_what_was_loaded(tmp_path, data_dir, con, monkeypatch):
    [first] = _load(con, tmp_path, data_dir, monkeypatch, "hr", "staff")
    _rewrite(data_dir / "hr" / "staff.jsonl", lambda r: _later({k: v for k, v in r.items() if k != "sfzjh"}))
    with pytest.raises(SourceError, match=r"hr\.staff: required column\(s\) \['sfzjh'\] missing"):
        _load(con, tmp_path, data_dir, monkeypatch, "hr", "staff")
    assert con.execute("SELECT count(*) FROM raw.hr__staff").fetchone()[0] == first.rows_landed
    cursor = con.execute("SELECT cursor_value FROM meta.source_cursor WHERE source = 'hr'").fetchone()[0]
    assert cursor == first.cursor_after, "the cursor did not move past rows that were not landed"
    [other] = _load(con, tmp_path, data_dir, monkeypatch, "student", "students")
    assert other.status == "ok" and other.rows_landed > 0, "other sources proceed"
    folders = sorted(p.name for p in (tmp_path / "raw" / "hr" / "staff").glob("load_id=*"))
    assert folders == [f"load_id={first.load_id}"], "no Parquet left behind by the failed load"


def test_changed_type_is_reported_and_kept_as_text(tmp_path, data_dir, con, monkeypatch):
    _load(con, tmp_path, data_dir, monkeypatch, "learning", "study_records")
    _rewrite(data_dir / "learning" / "study_records.jsonl",
             lambda r: {**r, "minutes": f"{r['minutes']}分钟" if r["minutes"] is not None else None,
                        "updated_at": 1924963200000})
    [result] = _load(con, tmp_path, data_dir, monkeypatch, "learning", "study_records")
    assert result.type_changes == ["minutes: number -> string"]
    assert con.execute("SELECT source_type FROM meta.source_schema WHERE column_name = 'minutes'").fetchone() == (
        "string",)
    texts = [r[0] for r in con.execute("SELECT minutes FROM raw.learning__study_records WHERE _load_id = ? "
                                       "AND minutes IS NOT NULL", [result.load_id]).fetchall()]
    assert texts and all(t.endswith("分钟") for t in texts), "the new values land as sent"
