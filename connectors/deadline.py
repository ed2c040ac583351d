"""A total deadline for one HTTP request, and the connection failures that are not worth retrying.

``requests`` (urllib3) has a connect timeout and a timeout per socket read, nothing for a whole
request: a server that drips one byte a second never trips a 30 s read timeout and keeps the load
alive for ever. Here a watchdog timer shuts the request's socket down when its deadline passes, so the
blocked read returns at once whatever phase the request is in (status line, headers or body).

The sessions of REST sources mount :class:`DeadlineAdapter`; a request runs inside
:func:`within` (thread-local, so concurrent loads in other threads keep their own deadlines). The body is
read inside the deadline too, in blocks, and a body over ``max_bytes`` (after gzip is undone) stops
the request at once rather than after it has filled memory.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class DeadlineExceeded(requests.Timeout):
    """The request did not complete within its total deadline (a Timeout: retried like one)."""


class BodyTooLarge(requests.RequestException):
    """The response body is over the source's size limit (never retried)."""


class Deadline:
    """Shuts down the socket of the current request when ``seconds`` have passed."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            _shutdown(self._sock)

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


@contextmanager
def within(seconds: float, what: str) -> Iterator[Deadline]:
    """Run a request under a total deadline; a request it cut short raises :class:`DeadlineExceeded`."""
    deadline = Deadline(seconds)
    previous = getattr(_current, "deadline", None)
    _current.deadline = deadline
    deadline.start()
    try:
        yield deadline
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if deadline.fired and not isinstance(exc, BodyTooLarge):
            raise DeadlineExceeded(f"{what}: no complete answer within the deadline of {seconds:g} s") from None
        raise
    finally:
        deadline.cancel()
        _current.deadline = previous


def _attach(sock: socket.socket | None) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _Connection(HTTPConnection):
    def getresponse(self, *args, **kwargs):  # the request is sent: from here the wait is the server's
        _attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def getresponse(self, *args, **kwargs):
        _attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections hand their socket to the current :class:`Deadline`."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def bounded_session(session: requests.Session | None = None) -> requests.Session:
    session = session or requests.Session()
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def read_body(resp: requests.Response, max_bytes: int, what: str) -> None:
    """Read a streamed response's body into ``resp`` in blocks, at most ``max_bytes`` (decoded)."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes and "Content-Encoding" not in resp.headers:
        resp.close()
        raise BodyTooLarge(f"{what}: the answer is {int(declared):,} bytes, over max_response_bytes "
                           f"({max_bytes:,})")
    body = bytearray()  # grown in place: never a list of blocks and a joined copy side by side
    for block in resp.iter_content(1 << 18):
        if len(body) + len(block) > max_bytes:
            resp.close()
            raise BodyTooLarge(f"{what}: the answer passed max_response_bytes ({max_bytes:,} bytes) and was "
                               "stopped")
        body += block
    resp._content = body  # what resp.content, resp.text and resp.json() read
    resp._content_consumed = True


def unreachable(exc: BaseException) -> str | None:
    """Why a connection could not even be opened (refused, name not resolved, no answer to connect),
    or None for a failure after connecting (a reset, a timeout reading), which is worth a retry."""
    if isinstance(exc, requests.ConnectTimeout):
        return "no answer to the connection attempt"
    if not isinstance(exc, requests.ConnectionError):
        return None
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason).lower()
        return "connection refused" if "refused" in text else "cannot connect"
    return None
