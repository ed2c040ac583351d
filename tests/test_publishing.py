"""Publishing as readers meet it: every reader gets the warehouse's rows, never a partial or mixed
version, not even while versions are published or a publish is killed; encrypted data needs its key."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from hub import encryption
from hub.publisher import (
    Column,
    DatasetSpec,
    Publisher,
    PublishError,
    notify_catalogue,
    read_catalog,
    read_manifest,
)
from hub.settings import PROJECT_ROOT
from tests import s3_server

s3_endpoint, s3_bucket = s3_server.s3_endpoint, s3_server.s3_bucket  # fixtures: moto's S3 server on loopback

SPEC = DatasetSpec(
    name="members", description="test", order_by="person_key",
    query="SELECT person_key, name, org_code, batch FROM members",
    columns=(Column("person_key", "key", "internal"), Column("name", "name", "internal"),
             Column("org_code", "branch", "public"), Column("batch", "which publish wrote it", "public")))
SECRET_SPEC = DatasetSpec(
    name="registry", description="restricted", order_by="person_key", audience="restricted",
    query="SELECT person_key, id_number FROM members",
    columns=(Column("person_key", "key", "internal"), Column("id_number", "ID number", "restricted")))


@pytest.fixture
def members(con):
    con.execute("""CREATE TABLE members AS SELECT printf('K%06d', i) AS person_key, '党员' || i AS name,
                   'B' || (i % 7) AS org_code, 0 AS batch, '450102199001' || printf('%06d', i) AS id_number
                   FROM range(5000) t(i)""")
    return con


def _files(root, name):
    manifest = read_manifest(root, name)
    folder = root / manifest["name"] / manifest["version"]
    return manifest, [str(folder / f["path"]) for f in manifest["files"]]


def test_every_reader_gets_the_warehouse_rows(tmp_path, members):
    root = tmp_path / "pub"
    Publisher(root).publish(members, SPEC, lineage=[], quality={})
    manifest, files = _files(root, "members")
    want = sorted(members.execute("SELECT person_key, name, org_code, batch FROM members").fetchall())
    assert sorted(duckdb.sql(f"SELECT * FROM read_parquet({files})").fetchall()) == want
    table = pads.dataset(files, format="parquet").to_table()
    assert sorted(zip(*[table.column(c).to_pylist() for c in table.column_names], strict=True)) == want
    assert sorted(pd.concat(pd.read_parquet(f) for f in files).itertuples(index=False, name=None)) == want
    assert sorted(pl.read_parquet(files).rows()) == want
    assert [c["name"] for c in manifest["schema"]["columns"]] == ["person_key", "name", "org_code", "batch"]


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_polling_reader_never_sees_a_partial_or_mixed_version(tmp_path, members, store, request):
    if store == "s3":  # a real S3 API (moto's server on loopback): no rename, the catalog switched by If-Match
        import fsspec

        root, fs = f"s3://{request.getfixturevalue('s3_bucket')}/pub", fsspec.filesystem("s3")
    else:
        root, fs = tmp_path / "pub", None
    pub = Publisher(root, keep_versions=3)
    pub.publish(members, SPEC, lineage=[], quality={})
    seen, problems, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                if fs is None:
                    manifest, files = _files(root, "members")
                    batches = set(pl.read_parquet(files)["batch"].to_list())
                    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
                else:
                    manifest = read_manifest(root, "members")
                    files = [f"{root}/members/{manifest['version']}/{f['path']}" for f in manifest["files"]]
                    table = pq.read_table(files, filesystem=fs)
                    batches, rows = set(table["batch"].to_pylist()), table.num_rows
            except FileNotFoundError:  # a version pruned between reading the catalog and the files
                continue
            if rows != manifest["row_count"] or len(batches) != 1:
                problems.append((manifest["version"], rows, batches))
            seen.add(manifest["version"])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for batch in range(1, 16 if fs is None else 8):
        members.execute(f"UPDATE members SET batch = {batch}")
        pub.publish(members, SPEC, lineage=[], quality={})
    stop.set()
    for t in threads:
        t.join()
    assert not problems
    assert len(seen) >= 3, "the readers really read while versions changed"


KILL_SCRIPT = """
import os, sys, time, duckdb
import hub.publisher as hp
from hub.warehouse import connect
con = connect(sys.argv[1])
con.execute("UPDATE members SET batch = 99")
real_place = hp.Publisher._place_version
def slow_place(self, tmp, name, version):
    open(sys.argv[2], "w").write("writing")   # the version's files are written: now die before the switch
    time.sleep(30)
    real_place(self, tmp, name, version)
hp.Publisher._place_version = slow_place
spec = hp.DatasetSpec(name="members", description="test", order_by="person_key",
    query="SELECT person_key, name, org_code, batch FROM members",
    columns=tuple(hp.Column(c, c, "public") for c in ("person_key", "name", "org_code", "batch")))
hp.Publisher(sys.argv[3]).publish(con, spec, lineage=[], quality={})
"""


def test_a_publish_killed_midway_leaves_the_previous_version_current(tmp_path, members):
    root = tmp_path / "pub"
    first = Publisher(root).publish(members, SPEC, lineage=[], quality={})
    db = members.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'hub'").fetchone()[0]
    members.close()
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, db, str(marker), str(root)], cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the publish reached the point of writing its version"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest, files = _files(root, "members")
    assert manifest["version"] == first["version"]
    assert set(pl.read_parquet(files)["batch"].to_list()) == {0}, "the previous version, whole and readable"


def test_restricted_data_is_encrypted_and_reads_back_only_with_its_key(tmp_path, members):
    key = encryption.new_key()
    keys = f"{encryption.FOOTER_KEY_ID}:{key}"
    root = tmp_path / "pub"
    manifest = Publisher(root, kms_master_keys=keys).publish(members, SECRET_SPEC, lineage=[], quality={})
    assert manifest["encrypted"] and manifest["encryption"]["footer_key_id"] == encryption.FOOTER_KEY_ID
    assert key not in json.dumps(manifest) and key not in (root / "catalog.json").read_text(encoding="utf-8")
    _, [path] = _files(root, "registry")
    raw = open(path, "rb").read()
    assert b"450102199001" not in raw, "no ID number in clear anywhere in the file"
    with pytest.raises((OSError, pa.ArrowException)):  # no key: not even the footer can be read
        pq.read_table(path)
    with pytest.raises(duckdb.Error):
        duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
    other = encryption.master_keys(f"{encryption.FOOTER_KEY_ID}:{encryption.new_key()}")
    with pytest.raises(encryption.KeyConfigError, match="does not open this file"):
        encryption.read_encrypted(path, other)
    back = encryption.read_encrypted(path, encryption.master_keys(keys))
    assert sorted(zip(back["person_key"].to_pylist(), back["id_number"].to_pylist(), strict=True)) == \
        sorted(members.execute("SELECT person_key, id_number FROM members").fetchall())


def test_restricted_publish_without_keys_says_which_variable(tmp_path, members):
    with pytest.raises(encryption.KeyConfigError, match="HUB_KMS_MASTER_KEYS needs a key named 'hub_footer'"):
        Publisher(tmp_path, kms_master_keys="other:" + encryption.new_key()).publish(
            members, SECRET_SPEC, lineage=[], quality={})
    with pytest.raises(encryption.KeyConfigError, match="'hub_footer' is 5 bytes"):
        encryption.master_keys("hub_footer:aGVsbG8=")


def test_an_fsspec_root_publishes_and_switches_too(members):
    root = f"memory://hub-test-{os.getpid()}/published"
    pub = Publisher(root, keep_versions=2)
    first = pub.publish(members, SPEC, lineage=["L1"], quality={})
    members.execute("UPDATE members SET batch = 1")
    second = pub.publish(members, SPEC, lineage=["L2"], quality={})
    assert read_catalog(root)["datasets"]["members"]["current_version"] == second["version"] != first["version"]
    import fsspec

    fs = fsspec.filesystem("memory")
    data = fs.cat_file(f"/hub-test-{os.getpid()}/published/members/{second['version']}/data/part-00000.parquet")
    import hashlib

    assert hashlib.sha256(data).hexdigest() == second["files"][0]["sha256"]


class _Catalogue(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 2

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers.get("Authorization"), json.loads(body)))
        if len(type(self).received) <= type(self).fail_first:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_catalogue_is_told_of_a_new_version_with_retries(tmp_path, members):
    manifest = Publisher(tmp_path / "pub").publish(members, SPEC, lineage=[], quality={})
    _Catalogue.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catalogue)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/catalogue"
        assert notify_catalogue(url, manifest, token="tok-123") == 201
        assert len(_Catalogue.received) == 3, "two 503s, then accepted"
        auth, body = _Catalogue.received[-1]
        assert auth == "Bearer tok-123" and body["version"] == manifest["version"] and "changed" not in body
        _Catalogue.fail_first = 99
        with pytest.raises(PublishError, match="failed after 2 attempts"):
            notify_catalogue(url, manifest, token=None, attempts=2)
    finally:
        server.shutdown()
        _Catalogue.fail_first = 2
