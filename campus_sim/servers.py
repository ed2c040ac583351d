"""Real loopback HTTP servers for the simulated campus systems (see docs/simulated-campus.md).

One stdlib ``ThreadingHTTPServer`` per system serves the generated JSONL files from memory:

========  ===========================================  ==============  =====================
system    endpoints                                    auth            pagination
========  ===========================================  ==============  =====================
hr        /api/hr/v1/staff                             Bearer token    page / page_size
student   /api/xg/v1/students                          X-API-Key       limit / cursor
activity  /api/activity/v1/{meetings,attendance}       HTTP basic      offset / limit + next
learning  /api/learning/v1/{courses,study-records}     Bearer token    page / per_page + Link
========  ===========================================  ==============  =====================

Records are sorted by (updated time, key); ``updated_since`` is an inclusive lower bound on the
updated time. A seeded RNG makes a fraction of API requests fail (500, 503, 429, slow, dropped).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from campus_sim.inbox import drop_party_exports

log = logging.getLogger(__name__)

SYSTEMS = ("hr", "student", "activity", "learning")
DEFAULT_PORTS = {"hr": 18081, "student": 18082, "activity": 18083, "learning": 18084}
FAULT_KINDS = ("500", "503", "429", "slow", "drop")
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000

_CHINA_TIME = timezone(timedelta(hours=8))
_POLL_SECONDS = 0.05
_IDLE_CONNECTION_SECONDS = 30.0
_CLOSE_TIMEOUT_SECONDS = 5.0
_CURSOR_PREFIX = "pos:"


class _BadParameter(Exception):
    """A query parameter the API rejects; answered with 400 naming the parameter."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"invalid parameter {name!r}: {problem}")


# --------------------------------------------------------------------------- updated-time parsing


def _parse_iso(value: Any) -> datetime:
    """An ISO 8601 date-time as an aware datetime; naive values are China time (+08:00)."""
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {value!r}")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=_CHINA_TIME)


def _is_digits(text: str) -> bool:
    """True for a non-empty string of ASCII digits."""
    return text.isascii() and text.isdigit()


def _parse_epoch_ms(value: Any) -> int:
    """Epoch milliseconds as an int (record values are JSON integers, query values digit strings)."""
    if isinstance(value, str) and _is_digits(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected epoch milliseconds, got {value!r}")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Source:
    """One served JSONL file: where it lives, its key fields and its updated-time field.

    ``updated`` lists candidate fields, the first present in a record wins: the contract gives
    courses only ``published_at``, so they fall back to it when they have no ``updated_at``.
    """

    file: str
    key: tuple[str, ...]
    updated: tuple[str, ...]

    def updated_value(self, record: dict[str, Any]) -> Any:
        """The record's updated time as stored (KeyError when it has none of the fields)."""
        for name in self.updated:
            if name in record:
                return record[name]
        raise KeyError(self.updated[0])


@dataclass(frozen=True)
class _Dataset:
    """Records of one endpoint as their JSON text, sorted by (updated time, key)."""

    texts: list[str]
    updated: list[Any]

    def __len__(self) -> int:
        return len(self.texts)

    def first_since(self, since: Any) -> int:
        """Index of the first record updated at or after ``since`` (0 when ``since`` is None)."""
        return 0 if since is None else bisect.bisect_left(self.updated, since)


def _sortable(value: Any) -> tuple:
    """A sort key for a record key value that orders numbers, strings and nulls without TypeError."""
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, "" if value is None else str(value))


def _load_dataset(path: Path, source: _Source, parse_updated: Callable[[Any], Any]) -> _Dataset:
    """Read a JSONL file, keeping each record's text exactly as stored, sorted by (updated, key)."""
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            record = json.loads(text)
            try:
                updated = parse_updated(source.updated_value(record))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line_no}: bad updated time {source.updated}: {exc!r}") from exc
            key = tuple(_sortable(record.get(name)) for name in source.key)
            rows.append((updated, key, text))
    rows.sort(key=lambda row: (row[0], row[1]))
    return _Dataset(texts=[row[2] for row in rows], updated=[row[0] for row in rows])


# --------------------------------------------------------------------------- JSON composition


def _json_array(texts: list[str]) -> str:
    """A JSON array of already-encoded JSON values."""
    return "[" + ",".join(texts) + "]"


def _json_object(fields: list[tuple[str, str]]) -> str:
    """A JSON object from (name, already-encoded JSON value) pairs."""
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in fields) + "}"


def _error_body(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


# --------------------------------------------------------------------------- pagination


@dataclass(frozen=True)
class _PageRequest:
    """What a paginator needs: the data, the parsed query and a way to build links to this endpoint."""

    data: _Dataset
    params: dict[str, str]
    start: int
    link: Callable[[dict[str, str]], str]

    @property
    def total(self) -> int:
        """Number of records matching ``updated_since``."""
        return len(self.data) - self.start

    def int_param(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        """An integer query parameter within bounds, or ``default`` when absent."""
        raw = self.params.get(name)
        if raw is None:
            return default
        if not _is_digits(raw):
            raise _BadParameter(name, "must be a non-negative integer")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise _BadParameter(name, f"must be at least {minimum}{upper}")
        return value

    def page_size(self, name: str) -> int:
        return self.int_param(name, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)

    def slice(self, offset: int, size: int) -> list[str]:
        """``size`` matching records from ``offset`` (relative to the first matching record)."""
        begin = self.start + offset
        return self.data.texts[begin : begin + size]

    def link_with(self, **changes: int) -> str:
        """Absolute URL of this endpoint with the current query and ``changes`` applied."""
        return self.link({**self.params, **{name: str(value) for name, value in changes.items()}})


_Reply = tuple[str, dict[str, str]]


def _page_hr(request: _PageRequest) -> _Reply:
    """HR: ``page``/``page_size`` in a ``{"code":0,"data":{"list":…}}`` envelope."""
    page = request.int_param("page", 1, 1)
    size = request.page_size("page_size")
    items = request.slice((page - 1) * size, size)
    data = _json_object(
        [
            ("list", _json_array(items)),
            ("page", str(page)),
            ("page_size", str(size)),
            ("total", str(request.total)),
            ("pages", str(math.ceil(request.total / size))),
        ]
    )
    return _json_object([("code", "0"), ("data", data)]), {}


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, size: int) -> int:
    """The absolute record position a cursor points at (it already implies ``updated_since``)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _BadParameter("cursor", "not a cursor returned by this API") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not _is_digits(digits) or int(digits) > size:
        raise _BadParameter("cursor", "not a cursor returned by this API")
    return int(digits)


def _page_student(request: _PageRequest) -> _Reply:
    """Student affairs: ``limit``/``cursor``; body ``{"items":[…],"next_cursor":…}``."""
    limit = request.page_size("limit")
    position = request.start
    if "cursor" in request.params:
        position = max(position, _decode_cursor(request.params["cursor"], len(request.data)))
    end = position + limit
    items = request.data.texts[position:end]
    next_cursor = _encode_cursor(end) if end < len(request.data) else None
    return _json_object([("items", _json_array(items)), ("next_cursor", json.dumps(next_cursor))]), {}


def _page_activity(request: _PageRequest) -> _Reply:
    """Activity app: ``offset``/``limit``; body ``{"count","next","results"}``."""
    offset = request.int_param("offset", 0, 0)
    limit = request.page_size("limit")
    following = offset + limit
    next_url = request.link_with(offset=following, limit=limit) if following < request.total else None
    body = _json_object(
        [
            ("count", str(request.total)),
            ("next", json.dumps(next_url)),
            ("results", _json_array(request.slice(offset, limit))),
        ]
    )
    return body, {}


def _page_learning(request: _PageRequest) -> _Reply:
    """Learning platform: ``page``/``per_page``; a bare JSON array and a ``Link: rel="next"`` header."""
    page = request.int_param("page", 1, 1)
    per_page = request.page_size("per_page")
    headers = {}
    if page * per_page < request.total:
        headers["Link"] = f'<{request.link_with(page=page + 1, per_page=per_page)}>; rel="next"'
    return _json_array(request.slice((page - 1) * per_page, per_page)), headers


# --------------------------------------------------------------------------- systems and auth


@dataclass(frozen=True)
class _System:
    """How one campus system is served: endpoints, accepted parameters, paginator, time format."""

    endpoints: dict[str, _Source]
    params: frozenset[str]
    paginate: Callable[[_PageRequest], _Reply]
    parse_updated: Callable[[Any], Any] = _parse_iso
    since_format: str = "an ISO 8601 date-time"


_SYSTEM_SPECS = {
    "hr": _System(
        endpoints={"/api/hr/v1/staff": _Source("hr/staff.jsonl", ("gh",), ("updated_at",))},
        params=frozenset({"page", "page_size", "updated_since"}),
        paginate=_page_hr,
    ),
    "student": _System(
        endpoints={"/api/xg/v1/students": _Source("student/students.jsonl", ("studentNo",), ("updatedAt",))},
        params=frozenset({"limit", "cursor", "updated_since"}),
        paginate=_page_student,
    ),
    "activity": _System(
        endpoints={
            "/api/activity/v1/meetings": _Source("activity/meetings.jsonl", ("meeting_id",), ("updated_at",)),
            "/api/activity/v1/attendance": _Source(
                "activity/attendance.jsonl", ("meeting_id", "person_no"), ("updated_at",)
            ),
        },
        params=frozenset({"offset", "limit", "updated_since"}),
        paginate=_page_activity,
    ),
    "learning": _System(
        endpoints={
            "/api/learning/v1/courses": _Source(
                "learning/courses.jsonl", ("course_id",), ("updated_at", "published_at")
            ),
            "/api/learning/v1/study-records": _Source(
                "learning/study_records.jsonl", ("record_id",), ("updated_at",)
            ),
        },
        params=frozenset({"page", "per_page", "updated_since"}),
        paginate=_page_learning,
        parse_updated=_parse_epoch_ms,
        since_format="epoch milliseconds",
    ),
}


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class _Auth:
    """Checks a request's credentials; ``challenge`` is the WWW-Authenticate value for 401s."""

    check: Callable[[Mapping[str, str]], bool]
    challenge: str | None


def _bearer(token: str, realm: str) -> _Auth:
    def check(headers: Mapping[str, str]) -> bool:
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and _same(given.strip(), token)

    return _Auth(check, f'Bearer realm="{realm}"')


def _api_key(key: str) -> _Auth:
    return _Auth(lambda headers: _same(headers.get("X-API-Key") or "", key), None)


def _basic(user: str, password: str, realm: str) -> _Auth:
    def check(headers: Mapping[str, str]) -> bool:
        scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(decoded, f"{user}:{password}")

    return _Auth(check, f'Basic realm="{realm}"')


def _auth_from_env(env: Mapping[str, str]) -> dict[str, _Auth]:
    """Each system's credentials, from the environment with the simulation defaults."""
    return {
        "hr": _bearer(env.get("HUB_HR_TOKEN", "sim-hr-token"), "hr"),
        "student": _api_key(env.get("HUB_XG_API_KEY", "sim-xg-key")),
        "activity": _basic(
            env.get("HUB_ACTIVITY_USER", "hub"), env.get("HUB_ACTIVITY_PASSWORD", "sim-activity"), "activity"
        ),
        "learning": _bearer(env.get("HUB_LEARNING_TOKEN", "sim-learning-token"), "learning"),
    }


# --------------------------------------------------------------------------- faults and stats


class _FaultPlan:
    """Seeded, thread-safe decision of which API requests fail and how."""

    def __init__(self, rate: float, seed: int) -> None:
        self._rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """A fault kind for the next API request, or None to answer it normally."""
        with self._lock:
            if self._rng.random() >= self._rate:
                return None
            return self._rng.choice(FAULT_KINDS)


@dataclass
class _Counters:
    """Per-system request and injected-fault counters."""

    requests: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self) -> None:
        with self.lock:
            self.requests += 1

    def count_fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "faults": dict(self.faults)}


# --------------------------------------------------------------------------- HTTP


class _SystemServer(ThreadingHTTPServer):
    """One system's HTTP server, one daemon thread per connection.

    It remembers its connections and their threads, so ``close`` can end them even while a client
    keeps a connection alive or a delayed response is pending.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        system: _System,
        datasets: dict[str, _Dataset],
        auth: _Auth,
        faults: _FaultPlan,
        counters: _Counters,
        slow_seconds: float,
        stopping: threading.Event,
    ) -> None:
        self.system = system
        self.datasets = datasets
        self.auth = auth
        self.faults = faults
        self.slow_seconds = slow_seconds
        self.stopping = stopping
        self.counters = counters
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a daemon thread, registered before it starts (so none escapes)."""
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._lock:
            self._connections.add(request)
            self._handlers = [handler for handler in self._handlers if handler.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close(self, timeout: float) -> None:
        """After ``shutdown()``: end every open connection, join the handler threads, close the socket."""
        with self._lock:
            connections, handlers = list(self._connections), list(self._handlers)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))
            if handler.is_alive():
                log.warning(
                    "%s: a request handler did not finish within %.1f s", self.server_address, timeout
                )
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, retries) are routine; anything else is logged."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s failed", client_address, exc_info=True)
        else:
            log.exception("request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes GET requests: /health, then the system's endpoints (faults, auth, parameters, page)."""

    server: _SystemServer
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_CONNECTION_SECONDS
    server_version = "CampusSim/1.0"

    def do_GET(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        self.server.counters.count_request()
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, json.dumps({"status": "ok"}))
            return
        data = self.server.datasets.get(url.path)
        if data is None:
            self._send(404, _error_body(f"no such endpoint: {url.path}"))
            return
        fault = self.server.faults.draw()
        if fault is not None:
            self.server.counters.count_fault(fault)
            if self._inject(fault):
                return
        if not self.server.auth.check(self.headers):
            self._refuse()
            return
        try:
            body, headers = self._page(url.path, url.query, data)
        except _BadParameter as exc:
            self._send(400, _error_body(str(exc)))
            return
        self._send(200, body, headers)

    def _refuse(self) -> None:
        """401 with a JSON message (and a WWW-Authenticate challenge for HTTP auth schemes)."""
        challenge = self.server.auth.challenge
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        self._send(401, _error_body("missing or wrong credentials"), headers)

    def _page(self, path: str, query: str, data: _Dataset) -> _Reply:
        """Validate the query string and let the system's paginator build the page."""
        params = self._params(query)
        since = params.get("updated_since")
        try:
            start = data.first_since(None if since is None else self.server.system.parse_updated(since))
        except (TypeError, ValueError):
            hint = " (send a '+' in the UTC offset as %2B)" if " " in since else ""
            raise _BadParameter("updated_since", f"must be {self.server.system.since_format}{hint}") from None

        def link(query_params: dict[str, str]) -> str:
            return f"{self._base_url()}{path}?{urlencode(query_params)}"

        return self.server.system.paginate(_PageRequest(data, params, start, link))

    def _params(self, query: str) -> dict[str, str]:
        """Query parameters as single values; unknown or repeated parameters are rejected."""
        parsed = parse_qs(query, keep_blank_values=True)
        for name, values in parsed.items():
            if name not in self.server.system.params:
                raise _BadParameter(name, "unknown parameter")
            if len(values) > 1:
                raise _BadParameter(name, "given more than once")
        return {name: values[0] for name, values in parsed.items()}

    def _base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _inject(self, fault: str) -> bool:
        """Act out an injected fault; True when the request is finished (False: slow, now answer)."""
        if fault == "slow":
            if not self.server.stopping.wait(self.server.slow_seconds):
                return False
            fault = "drop"  # shutting down while delayed: hang up instead of answering
        if fault == "drop":
            self._drop()
        elif fault == "429":
            self._send(429, _error_body("too many requests"), {"Retry-After": "1"})
        else:
            message = "service unavailable" if fault == "503" else "internal server error"
            self._send(int(fault), _error_body(message))
        return True

    def _drop(self) -> None:
        """Close the connection without writing any response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
        """Write a complete JSON response (the client may already have gone; that is fine)."""
        payload = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- public API


class SourceServers:
    """The four campus API servers on loopback, serving one generated data directory.

    Use as a context manager (``with SourceServers(data_dir) as servers: servers.urls``) or call
    ``start()`` / ``stop()``. Credentials are read from the environment when constructed.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        faults: float = 0.0,
        slow_seconds: float = 3.0,
        seed: int = 0,
        inbox: str | os.PathLike[str] | None = None,
    ) -> None:
        unknown = set(ports or {}) - set(SYSTEMS)
        if unknown:
            raise ValueError(f"unknown systems in ports: {sorted(unknown)}")
        if not 0.0 <= faults <= 1.0:
            raise ValueError("faults must be between 0 and 1")
        if slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        self.data_dir = Path(data_dir)
        self.host = host
        self.ports = {system: (ports or {}).get(system, 0) for system in SYSTEMS}
        self.faults = faults
        self.slow_seconds = slow_seconds
        self.seed = seed
        self.inbox = None if inbox is None else Path(inbox)
        self.dropped: list[Path] = []
        self._auth = _auth_from_env(os.environ)
        self._servers: dict[str, _SystemServer] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._counters: dict[str, _Counters] = {}
        self._stopping = threading.Event()

    def __enter__(self) -> SourceServers:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each running system, e.g. ``{"hr": "http://127.0.0.1:18081", ...}``."""
        return {
            system: f"http://{self.host}:{server.server_address[1]}"
            for system, server in self._servers.items()
        }

    @property
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per system: ``{"requests": n, "faults": {"500": n, "503": n, "429": n, "slow": n, "drop": n}}``.

        Counts every request the system received (including /health); kept after ``stop()``.
        """
        return {system: counters.snapshot() for system, counters in self._counters.items()}

    def start(self) -> SourceServers:
        """Load the data, start one server thread per system and drop the party exports (if an inbox)."""
        if self._servers:
            raise RuntimeError("servers already started")
        datasets = {system: self._load(spec) for system, spec in _SYSTEM_SPECS.items()}
        self._stopping = threading.Event()
        self._counters = {system: _Counters() for system in SYSTEMS}
        plan = _FaultPlan(self.faults, self.seed)
        try:
            for system, spec in _SYSTEM_SPECS.items():
                self._servers[system] = _SystemServer(
                    (self.host, self.ports[system]),
                    system=spec,
                    datasets=datasets[system],
                    auth=self._auth[system],
                    faults=plan,
                    counters=self._counters[system],
                    slow_seconds=self.slow_seconds,
                    stopping=self._stopping,
                )
            for system, server in self._servers.items():
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": _POLL_SECONDS},
                    name=f"campus-sim-{system}",
                    daemon=True,
                )
                thread.start()
                self._threads[system] = thread
            if self.inbox is not None:
                self.dropped = drop_party_exports(self.data_dir, self.inbox)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop all servers: wake delayed responses, end open connections, join every thread."""
        self._stopping.set()
        for system in self._threads:
            self._servers[system].shutdown()  # only servers whose loop runs: shutdown() waits for it
        for server in self._servers.values():
            server.close(_CLOSE_TIMEOUT_SECONDS)
        for thread in self._threads.values():
            thread.join()
        self._servers.clear()
        self._threads.clear()

    def _load(self, spec: _System) -> dict[str, _Dataset]:
        return {
            path: _load_dataset(self.data_dir / source.file, source, spec.parse_updated)
            for path, source in spec.endpoints.items()
        }


def serve_forever(
    data_dir: str | os.PathLike[str],
    ports: Mapping[str, int] | None = None,
    faults: float = 0.0,
    slow_seconds: float = 3.0,
    seed: int = 0,
    inbox: str | os.PathLike[str] | None = None,
) -> None:
    """Run the source servers until SIGINT or SIGTERM, printing one line per system; then stop cleanly.

    ``ports`` defaults to the contract's 18081-18084. Must be called from the main thread.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SourceServers(
            data_dir,
            ports=DEFAULT_PORTS if ports is None else ports,
            faults=faults,
            slow_seconds=slow_seconds,
            seed=seed,
            inbox=inbox,
        ) as servers:
            for system, url in servers.urls.items():
                print(f"{system:<9} {url}", flush=True)
            if servers.inbox is not None:
                print(
                    f"{'party':<9} {len(servers.dropped)} export(s) dropped into {servers.inbox}", flush=True
                )
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
