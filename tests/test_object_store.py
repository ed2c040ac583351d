"""Object storage on a real S3 API (moto's server on loopback, tests/s3_server.py): the catalog's
conditional write loses no update between concurrent publishers, and the raw zone keeps its parts in
the store, committed loads only."""

from __future__ import annotations

import hashlib
import json
import threading

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.config import Entity
from connectors.object_raw_zone import ObjectRawZone, open_raw_zone
from connectors.raw_zone import RawZone
from hub import object_store
from hub.publisher import Column, DatasetSpec, Publisher, read_catalog, read_manifest
from tests import s3_server

s3_endpoint, s3_bucket = s3_server.s3_endpoint, s3_server.s3_bucket  # fixtures: moto's S3 server on loopback


def test_conditional_update_loses_no_update_between_racing_writers(s3_bucket):
    fs = fsspec.filesystem("s3")
    path = f"{s3_bucket}/counter.json"

    def bump(current: bytes | None) -> bytes:
        doc = json.loads(current) if current else {"n": 0, "by": []}
        return json.dumps({"n": doc["n"] + 1, "by": [*doc["by"], threading.get_ident()]}).encode()

    def writer():
        for _ in range(5):
            object_store.conditional_update(fs, path, bump)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(fs.cat_file(path))["n"] == 20, "every increment of every writer is there"
    object_store.put_new(fs, f"{s3_bucket}/once", b"1")
    with pytest.raises(FileExistsError):
        object_store.put_new(fs, f"{s3_bucket}/once", b"2")
    assert fs.cat_file(f"{s3_bucket}/once") == b"1"


def _spec(name: str) -> DatasetSpec:
    return DatasetSpec(name=name, description=name, query=f"SELECT i, '{name}' AS who FROM range(200) t(i)",
                       order_by="i", columns=(Column("i", "n", "public"), Column("who", "dataset", "public")),
                       audience="public")


def test_concurrent_publishers_of_different_datasets_all_reach_the_catalog(s3_bucket, tmp_path):
    """Two colleges' steps (or two publish assets) switching the same catalog.json at once: on the old
    read-modify-write (plain PUT) one of them silently vanished from the catalog."""
    import duckdb

    root = f"s3://{s3_bucket}/published"
    names = [f"ds{i}" for i in range(6)]
    errors = []

    def publish(name):
        try:
            con = duckdb.connect()
            Publisher(root).publish(con, _spec(name), lineage=[], quality={})
            con.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    catalog = read_catalog(root)
    assert sorted(catalog["datasets"]) == names
    fs = fsspec.filesystem("s3")
    for name in names:
        manifest = read_manifest(root, name)
        [f] = manifest["files"]
        data = fs.cat_file(f"{s3_bucket}/published/{name}/{manifest['version']}/{f['path']}")
        assert hashlib.sha256(data).hexdigest() == f["sha256"]


class _Pages:
    """An extractor's pages; the second load fails half-way when told to."""

    def __init__(self, n: int, fail: bool = False):
        self.n, self.fail = n, fail

    def __iter__(self):
        yield pa.table({"id": [str(i) for i in range(self.n)], "v": ["x"] * self.n})
        if self.fail:
            raise RuntimeError("the source dropped the connection")


def test_the_raw_zone_keeps_committed_loads_in_the_store(s3_bucket, tmp_path, con):
    from connectors.base import ExtractStats

    url = object_store.college_root(f"s3://{s3_bucket}", "4145000001") + "/raw"
    zone = open_raw_zone(con, url)
    assert isinstance(zone, ObjectRawZone) and type(open_raw_zone(con, tmp_path)) is RawZone
    zone = ObjectRawZone(con, url, spool_dir=tmp_path / "spool")
    entity = Entity(source="hr", name="staff", primary_key=("id",), options={})
    ok = zone.land(entity, _Pages(1200), ExtractStats())
    assert ok.status == "ok" and ok.rows_landed == 1200
    fs = fsspec.filesystem("s3")
    prefix = zone.remote_load(entity, ok.load_id)
    parts = fs.ls(prefix, detail=False)
    assert [p.rsplit("/", 1)[-1] for p in parts] == ["part-00000.parquet"]
    back = pq.read_table(parts, filesystem=fs)
    assert back.num_rows == 1200 and sorted(back["id"].to_pylist()) == sorted(str(i) for i in range(1200))
    assert con.execute("SELECT count(*) FROM raw.hr__staff WHERE _load_id = ?", [ok.load_id]).fetchone()[0] == 1200
    assert not list((tmp_path / "spool").rglob("*.parquet")), "the spool copy goes once the load committed"

    with pytest.raises(Exception, match="dropped the connection"):
        zone.land(entity, _Pages(10, fail=True), ExtractStats())
    # a load killed between its upload and its commit: parts in the store, no ok row
    orphan = zone.remote_load(entity, "19700101T000000-hr-staff-dead0000")
    fs.pipe_file(f"{orphan}/part-00000.parquet", b"not committed")
    again = zone.land(entity, _Pages(1300), ExtractStats())
    loads = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(zone.remote_folder(entity), detail=False))
    assert loads == sorted([f"load_id={ok.load_id}", f"load_id={again.load_id}"]), "uncommitted loads swept"
    statuses = dict(con.execute("SELECT status, count(*) FROM quality.load_audit GROUP BY 1").fetchall())
    assert statuses == {"ok": 2, "failed": 1}


def test_settings_keep_an_s3_raw_zone_as_a_url_and_a_local_one_as_a_path(tmp_path):
    from hub.settings import Settings

    s3 = Settings.from_env({"HUB_VAR_DIR": str(tmp_path), "HUB_RAW_DIR": "s3://campus-hub/xxdm=4145000001/raw"})
    assert s3.raw_root_url == "s3://campus-hub/xxdm=4145000001/raw" and s3.raw_dir == tmp_path / "raw"
    local = Settings.from_env({"HUB_VAR_DIR": str(tmp_path), "HUB_RAW_DIR": "rel/raw"})
    assert local.raw_root_url == str(local.raw_dir) and local.raw_dir.is_absolute()
    with pytest.raises(object_store.ObjectStoreError, match="10-digit"):
        object_store.college_root("s3://b", "41450")
