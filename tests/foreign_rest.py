"""Foreign REST vendors for tests: real HTTP servers on loopback that follow none of the simulated
campus's conventions (Link headers, OAuth2 tokens that die, gzip, 429, capped pages, envelopes that
report errors at HTTP 200, next links to another origin, endless pagination).

A :class:`Vendor` is a ``ThreadingHTTPServer`` on ``127.0.0.1`` with an ephemeral port that answers GETs
and POSTs with a route function and records every request it saw (path, query, headers), so a test
can assert what was sent where, e.g. that another origin never saw an ``Authorization`` header.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str = ""


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list: JSON; str/bytes: as is
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    content_type: str = "application/json; charset=utf-8"

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode("utf-8")
        elif self.body is None:
            data = b""
        else:
            data = json.dumps(self.body, ensure_ascii=False).encode("utf-8")
        if self.content_type:
            headers.setdefault("Content-Type", self.content_type)
        if self.gzip:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(data))
        return data, headers


Route = Callable[[Seen], Reply]


class Vendor:
    """One foreign server. ``routes`` maps a path to a function of the request; unknown paths are 404."""

    def __init__(self, routes: dict[str, Route] | None = None):
        self.routes: dict[str, Route] = dict(routes or {})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                seen = Seen(method, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                            {k: v for k, v in self.headers.items()}, body)
                with vendor._lock:
                    vendor.seen.append(seen)
                route = vendor.routes.get(parts.path)
                reply = route(seen) if route else Reply(404, {"error": f"no route {parts.path}"})
                data, headers = reply.encode()
                self.send_response(reply.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def __enter__(self) -> Vendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- OAuth2 client credentials, with tokens that die --------------------------------------------------


class TokenIssuer:
    """A token endpoint (``client_credentials``, HTTP basic or form client auth) whose tokens die after
    ``uses`` API requests or ``lifetime`` seconds, whichever first. ``check`` is the API side."""

    def __init__(self, client_id: str, client_secret: str, *, uses: int | None = None,
                 lifetime: float | None = None, expires_in: int | None = 3600, scope: str | None = None):
        self.client_id, self.client_secret = client_id, client_secret
        self.uses, self.lifetime, self.expires_in, self.scope = uses, lifetime, expires_in, scope
        self.issued = 0
        self.rejected = 0  # API requests answered 401
        self._tokens: dict[str, list[float]] = {}  # token -> [issued_at, uses]
        self._lock = threading.Lock()

    def token_route(self, seen: Seen) -> Reply:
        import base64
        import time

        form = {k: v[-1] for k, v in parse_qs(seen.body).items()}
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = seen.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"})
        if cid != self.client_id or secret != self.client_secret:
            return Reply(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        if self.scope is not None and form.get("scope") != self.scope:
            return Reply(400, {"error": "invalid_scope"})
        with self._lock:
            self.issued += 1
            token = f"tok-{self.issued}-{cid}"
            self._tokens[token] = [time.monotonic(), 0]
        body = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Reply(200, body)

    def check(self, seen: Seen) -> Reply | None:
        """None when the request carries a live token; else the 401 to answer."""
        import time

        auth = seen.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        with self._lock:
            state = self._tokens.get(token) if token else None
            dead = state is None or (self.uses is not None and state[1] >= self.uses) or (
                self.lifetime is not None and time.monotonic() - state[0] > self.lifetime)
            if dead:
                self.rejected += 1
                return Reply(401, {"error": "invalid_token", "error_description": "token expired"},
                             {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            state[1] += 1
        return None


# -- hostile servers: they never break the rules loudly, they just never finish ---------------------------


class Hostile:
    """A raw TCP server on loopback that misbehaves in one way (``mode``):

    * ``drip``: answers 200 with a long Content-Length, then one byte a second, for ever;
    * ``silent``: accepts the connection, reads the request and never answers;
    * ``huge``: a JSON body of ``size`` bytes, sent as fast as the client reads (chunked, no length).

    ``connections`` counts the connections it accepted (each one a request attempt)."""

    def __init__(self, mode: str, size: int = 0):
        import socket

        self.mode, self.size = mode, size
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        import time

        try:
            conn.recv(65536)
            if self.mode == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                while not self._stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(1.0)
            elif self.mode == "silent":
                self._stop.wait()
            elif self.mode == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                block = b'{"id": "0000000001", "name": "x"},' * 2000
                sent = 0
                conn.sendall(b"%x\r\n[\r\n" % 1)
                while sent < self.size and not self._stop.is_set():
                    conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                    sent += len(block)
                conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._sock.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
