"""A real S3 API on loopback for the object-store tests: moto's server mode in its own process.

``s3_endpoint`` (one per test process) starts ``moto_server`` on a free port of 127.0.0.1 and points
botocore at it through the standard variables (``AWS_ENDPOINT_URL_S3`` and demo credentials), as a
deployment points the hub at MinIO or a cloud's S3; ``s3_bucket`` makes a fresh bucket per test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "hub-test", "AWS_SECRET_ACCESS_KEY": "hub-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.fail("moto_server is not installed: `make install` installs the dev extra (moto[server])")
    port = _free_port()
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port}"
    import fsspec

    from hub.settings import temporary_env

    try:
        with temporary_env({**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint}):
            fsspec.filesystem("s3").clear_instance_cache()
            yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A new, empty bucket; its name (use ``s3://<name>/...``)."""
    import fsspec

    name = f"hub-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name
