"""REST sources: auth, four paginators, incremental cursors, and retries that real servers need.

Every request has a total ``deadline`` (connect, wait, headers and body; connectors/deadline.py), a
``connect_timeout`` and a read ``timeout``, and a body larger than ``max_response_bytes`` is stopped as
it arrives. A server that cannot be reached (refused, a name that does not resolve, no answer to
connect) fails the load at once, in one line saying what to check. Retries cover 429, 5xx, timeouts and
dropped connections with capped exponential backoff that honours ``Retry-After``, within ``max_retries``
per request and the load's budget (``retry_budget`` seconds, ``max_retries_per_load`` retries); the
whole load stops at ``load_timeout``. Any other 4xx fails at once with the server's own message. TLS
verification is on unless the source turns it off.

Pagination never stops early: a paginator stops on the server's own signal (a next link or cursor, a
``has_more`` flag, a total of records or pages, or an empty page), never on a short page alone, because
most servers cap the page size below what was asked. A total the server reports is compared with the
records read, and a mismatch fails the load. Endless pagination is stopped by ``max_pages`` and by a
next link, next cursor or page that repeats. Links and redirects are followed only to the origin of
``base_url``: credentials are never sent anywhere else. Every option is in docs/connectors.md.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import pyarrow as pa
import requests
from tenacity import RetryCallState

from connectors.base import ExtractStats, SourceError, records_to_table
from connectors.config import Entity, Source, interpolate, memory_bytes
from connectors.cursor import CursorTracker
from connectors.deadline import BodyTooLarge, bounded_session, read_body, unreachable, within

RETRY_STATUS = {429, 500, 502, 503, 504}
REDIRECT_STATUS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10
MAX_BACKOFF_S = 30.0
DEFAULT_MAX_PAGES = 100_000
DEFAULT_OK_CODES = (0, 200)
# Bounds in time and size (docs/connectors.md, "Bounds"): each can be set per source in sources.yaml.
DEFAULT_DEADLINE_S = 120.0  # one request in all: connect, wait, headers and body
DEFAULT_CONNECT_TIMEOUT_S = 5.0  # a server that is not there fails in this long, not after retries
DEFAULT_RETRY_BUDGET_S = 300.0  # time one load may spend on failed attempts and backoff
DEFAULT_MAX_RETRIES_PER_LOAD = 50
DEFAULT_LOAD_TIMEOUT_S = 3600.0  # one load of one entity, every page
DEFAULT_MAX_RESPONSE_BYTES = "256MB"
SIMULATED_HINT = "for the simulated campus, start it with `hub serve-sources`"


class RetryableHTTPError(requests.HTTPError):
    def __init__(self, response: requests.Response):
        super().__init__(f"HTTP {response.status_code}", response=response)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableHTTPError | requests.ConnectionError | requests.Timeout
                      | requests.exceptions.ChunkedEncodingError) and unreachable(exc) is None


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if not header:
        return None
    if header.strip().isdigit():
        return float(header)
    when = email.utils.parsedate_to_datetime(header)
    return max(0.0, when.timestamp() - time.time()) if when else None


def _wait_for(exc: BaseException | None, base: float, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt``: the server's Retry-After, else backoff."""
    hinted = _retry_after(exc)
    backoff = min(MAX_BACKOFF_S, base * 2 ** (attempt - 1))
    return min(MAX_BACKOFF_S, hinted) if hinted is not None else backoff


def _wait(base: float):
    """The same wait as :func:`_wait_for`, as a tenacity ``wait`` (the publisher's catalogue requests)."""
    def wait(state: RetryCallState) -> float:
        return _wait_for(state.outcome.exception() if state.outcome else None, base, state.attempt_number)

    return wait


_MISSING = object()


def _dig(doc: Any, path: str | None, default: Any = None) -> Any:
    if not path:
        return doc
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return default
        doc = doc[part]
    return doc


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "y", "t"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "n", "f", ""}:
        return False
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


class RestExtractor:
    """Reads one entity of one REST source, page by page, as Arrow text tables."""

    def __init__(self, source: Source, entity: Entity, *, session: requests.Session | None = None,
                 backoff_base: float = 0.5):
        self.source, self.entity = source, entity
        self.where = f"{source.name}.{entity.name}"
        self.base_url = source.setting("base_url").rstrip("/") + "/"
        self.origin = _origin(self.base_url)
        self.timeout = float(source.setting("timeout", 30))
        self.verify = bool(source.setting("verify_tls", True))
        self.max_attempts = int(source.setting("max_retries", 8)) + 1
        self.deadline = float(source.setting("deadline", DEFAULT_DEADLINE_S))
        self.connect_timeout = min(float(source.setting("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)),
                                   self.timeout)
        self.retry_budget = float(source.setting("retry_budget", DEFAULT_RETRY_BUDGET_S))
        self.max_retries_per_load = int(source.setting("max_retries_per_load", DEFAULT_MAX_RETRIES_PER_LOAD))
        self.load_timeout = float(source.setting("load_timeout", DEFAULT_LOAD_TIMEOUT_S))
        self.max_response_bytes = memory_bytes(str(source.setting("max_response_bytes",
                                                                  DEFAULT_MAX_RESPONSE_BYTES)))
        self.session = bounded_session(session)
        self._token_session = bounded_session()  # the token URL gets none of the API's headers
        self._started = time.monotonic()
        self._retry_spent = 0.0  # seconds of this load spent on failed attempts and backoff
        self._retries = 0
        self.backoff_base = backoff_base
        self.envelope = entity.options.get("envelope", source.options.get("envelope"))
        self._secrets: list[str] = []
        self._query_auth: tuple[str, str] | None = None
        self._oauth: dict[str, str] | None = None
        self._token: str | None = None
        self._token_deadline = 0.0
        self.token_requests = 0
        self._apply_auth()
        # what the pages said about the whole load: checked when the last page is in
        self._read = 0
        self._total: int | None = None
        self._total_from: str | None = None
        self._fetched = 0

    # -- auth ----------------------------------------------------------------------------------
    def _apply_auth(self) -> None:
        auth = self.source.options.get("auth") or {"type": "none"}
        where = f"sources.{self.source.name}.auth"

        def val(key: str) -> str:
            if key not in auth:
                raise SourceError(f"{where}.{key} is required for auth type {auth['type']}")
            value = interpolate(str(auth[key]), where=f"{where}.{key}")
            return value

        def secret(key: str) -> str:
            value = val(key)
            if value:
                self._secrets.append(value)
            return value

        kind = auth["type"]
        if kind == "bearer":
            self.session.headers["Authorization"] = f"Bearer {secret('token')}"
        elif kind == "api_key":
            name = str(auth.get("name") or auth.get("header") or "X-API-Key")
            if auth.get("location", "header") == "query":
                self._query_auth = (str(auth.get("name") or "api_key"), secret("key"))
            else:
                self.session.headers[name] = secret("key")
        elif kind == "basic":
            self.session.auth = (val("username"), secret("password"))
        elif kind == "oauth2_client_credentials":
            self._oauth = {"token_url": val("token_url"), "client_id": val("client_id"),
                           "client_secret": secret("client_secret"),
                           "scope": val("scope") if auth.get("scope") else "",
                           "client_auth": str(auth.get("client_auth", "basic"))}
        for k, v in (self.source.options.get("headers") or {}).items():
            self.session.headers[str(k)] = interpolate(str(v), where=f"sources.{self.source.name}.headers.{k}")

    def _redact(self, text: str) -> str:
        for s in (*self._secrets, self._token):
            if s:
                text = text.replace(s, "***")
        return text

    def _url_for_message(self, url: str) -> str:
        if self._query_auth:
            parts = urlsplit(url)
            query = "&".join(f"{k}={'***' if k == self._query_auth[0] else v}"
                             for k, v in parse_qsl(parts.query, keep_blank_values=True))
            url = urlunsplit(parts._replace(query=query))
        return self._redact(url)

    def _with_retries(self, attempt, stats: ExtractStats, what: str, url: str):
        """One request under its deadline, retried on 429, 5xx, timeouts and dropped connections with
        capped exponential backoff (``Retry-After`` honoured) while the request's attempts and the load's
        retry budget (time and count) last. A server that cannot be reached is not retried."""
        n = 0
        while True:
            n += 1
            remaining = self.load_timeout - (time.monotonic() - self._started)
            if remaining <= 0:
                raise SourceError(self._load_timed_out())
            began = time.monotonic()
            try:
                with within(min(self.deadline, remaining), f"{what}"):
                    return attempt()
            except BodyTooLarge as exc:
                raise SourceError(f"{self.where}: {self._redact(str(exc))}; raise max_response_bytes if "
                                  "the source really sends pages this large, or ask for smaller pages") from None
            except (RetryableHTTPError, requests.RequestException) as exc:
                why = unreachable(exc)
                if why is not None:
                    scheme, host, port = _origin(url)
                    raise SourceError(
                        f"{self.where}: {scheme}://{host}:{port} is not reachable ({why}); check that the "
                        f"server is running and sources.{self.source.name}.base_url — {SIMULATED_HINT}") from None
                if not _retryable(exc):
                    raise SourceError(f"{self.where}: {what} failed: {self._redact(str(exc))}") from None
                if time.monotonic() - self._started >= self.load_timeout:
                    raise SourceError(self._load_timed_out(f"; last failure: {self._redact(str(exc))}")) from None
                self._retry_spent += time.monotonic() - began
                wait = _wait_for(exc, self.backoff_base, n)
                out_of = None
                if n >= self.max_attempts:
                    out_of = f"after {n} attempts (max_retries = {self.max_attempts - 1})"
                elif self._retries >= self.max_retries_per_load:
                    out_of = f"with the load's {self.max_retries_per_load} retries spent (max_retries_per_load)"
                elif self._retry_spent + wait > self.retry_budget:
                    out_of = (f"with the load's retry budget spent ({self._retry_spent:.0f} s of "
                              f"retry_budget = {self.retry_budget:g} s)")
                if out_of:
                    raise SourceError(f"{self.where}: {what} failed {out_of}: "
                                      f"{self._redact(str(exc))}") from None
                self._retries += 1
                stats.retries += 1
                self._retry_spent += wait
                time.sleep(wait)

    def _load_timed_out(self, tail: str = "") -> str:
        return (f"{self.where}: stopped after load_timeout = {self.load_timeout:g} s ({self._fetched:,} page(s), "
                f"{self._read:,} records read); not committed, the cursor stays where it was{tail}")

    def _fetch_token(self, stats: ExtractStats) -> None:
        o = self._oauth
        assert o is not None
        data = {"grant_type": "client_credentials"}
        if o["scope"]:
            data["scope"] = o["scope"]
        auth = None
        if o["client_auth"] == "body":
            data.update(client_id=o["client_id"], client_secret=o["client_secret"])
        else:
            auth = (o["client_id"], o["client_secret"])

        def attempt() -> requests.Response:
            # Not the source's session: the token URL gets none of the API's headers.
            resp = self._token_session.post(o["token_url"], data=data, auth=auth, verify=self.verify,
                                            timeout=(self.connect_timeout, self.timeout), stream=True,
                                            allow_redirects=False, headers={"Accept": "application/json"})
            read_body(resp, self.max_response_bytes, f"POST {o['token_url']}")
            if resp.status_code in RETRY_STATUS:
                raise RetryableHTTPError(resp)
            return resp

        self.token_requests += 1
        resp = self._with_retries(attempt, stats, f"token request to {o['token_url']}", o["token_url"])
        if resp.status_code != 200:
            raise SourceError(f"{self.where}: token request to {o['token_url']} -> HTTP {resp.status_code}: "
                              f"{self._redact(_server_message(resp))}")
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(f"{self.where}: token request to {o['token_url']} answered without an "
                              f"access_token ({self._redact(_server_message(resp))})")
        self._token = token
        expires = _as_int(doc.get("expires_in"))
        if expires is None or expires <= 0:
            self._token_deadline = float("inf")  # no lifetime given: used until the API answers 401
        else:
            # Refreshed before it runs out: a tenth of its life (at most a minute) early.
            self._token_deadline = time.monotonic() + expires - min(60.0, expires * 0.1)

    def _auth_headers(self, stats: ExtractStats) -> dict[str, str] | None:
        if self._oauth is None:
            return None
        if self._token is None or time.monotonic() >= self._token_deadline:
            self._fetch_token(stats)
        return {"Authorization": f"Bearer {self._token}"}

    # -- one request, with retries -------------------------------------------------------------
    def _check_origin(self, url: str, what: str) -> None:
        if _origin(url) != self.origin:
            scheme, host, port = self.origin
            raise SourceError(f"{self.where}: {what} {self._url_for_message(url)} is on another origin than "
                              f"base_url ({scheme}://{host}:{port}); not followed, credentials are never sent "
                              "to another origin")

    def _get(self, url: str, params: dict[str, Any] | None, stats: ExtractStats,
             what: str = "URL") -> requests.Response:
        self._check_origin(url, what)
        if self._query_auth:
            name, key = self._query_auth
            if name not in dict(parse_qsl(urlsplit(url).query)):
                params = {**(params or {}), name: key}

        def attempt() -> requests.Response:
            target, query, refreshed = url, params, False
            for _ in range(MAX_REDIRECTS + 2):
                resp = self.session.get(target, params=query, timeout=(self.connect_timeout, self.timeout),
                                        verify=self.verify, allow_redirects=False, stream=True,
                                        headers=self._auth_headers(stats))
                read_body(resp, self.max_response_bytes, f"GET {self._url_for_message(resp.url)}")
                if resp.status_code in REDIRECT_STATUS and resp.headers.get("Location"):
                    target, query = urljoin(resp.url, resp.headers["Location"]), None
                    self._check_origin(target, f"a redirect from {self._url_for_message(resp.url)} to")
                    continue
                if resp.status_code == 401 and self._oauth is not None:
                    if refreshed:
                        raise SourceError(
                            f"{self.where}: GET {self._url_for_message(resp.url)} -> HTTP 401 again with a fresh "
                            f"token from {self._oauth['token_url']}: {self._redact(_server_message(resp))}")
                    self._fetch_token(stats)  # the token died early: refreshed once, the request retried
                    refreshed = True
                    continue
                if resp.status_code in RETRY_STATUS:
                    raise RetryableHTTPError(resp)
                if resp.status_code >= 400:
                    raise SourceError(f"{self.where}: GET {self._url_for_message(resp.url)} -> HTTP "
                                      f"{resp.status_code}: {self._redact(_server_message(resp))}")
                return resp
            raise SourceError(f"{self.where}: GET {self._url_for_message(url)}: more than {MAX_REDIRECTS} redirects")

        return self._with_retries(attempt, stats, f"GET {self._url_for_message(url)}", url)

    # -- pages ---------------------------------------------------------------------------------
    def extract(self, cursor: str | None, stats: ExtractStats) -> Iterator[pa.Table]:
        """Yield one text table per page. ``cursor`` is the inclusive lower bound from the last load."""
        opts = self.entity.options
        pag = opts["paginator"]
        params: dict[str, Any] = dict(opts.get("params") or {})
        if cursor is not None and self.entity.cursor_param:
            params[self.entity.cursor_param] = cursor
        url = urljoin(self.base_url, opts["path"].lstrip("/"))
        self._max_pages = int(pag.get("max_pages", DEFAULT_MAX_PAGES))
        self._started = time.monotonic()
        tracker = CursorTracker(self.entity, cursor, tolerance=self.entity.future_tolerance)
        for table in getattr(self, f"_pages_{pag['type']}")(url, params, pag, stats):
            stats.pages += 1
            if table.num_rows:
                tracker.observe(table)
                yield table
        if self._total is not None and self._total != self._read:
            raise SourceError(self._mismatch())
        stats.cursor_after = tracker.result()
        stats.findings.extend(tracker.findings)

    def _page(self, url: str, params: dict[str, Any] | None, stats: ExtractStats,
              what: str = "URL") -> tuple[requests.Response, Any, list[dict[str, Any]]]:
        if self._fetched >= self._max_pages:
            raise SourceError(f"{self.where}: stopped after max_pages = {self._max_pages:,} pages while the "
                              f"server still signals more ({self._read:,} records read); raise "
                              "paginator.max_pages if the source really is this large")
        resp = self._get(url, params, stats, what)
        self._fetched += 1
        doc, records = self._records(resp)
        resp._content = b""  # parsed: the body's bytes are not kept beside its records
        self._read += len(records)
        self._note_total(doc, resp)
        return resp, doc, records

    def _note_total(self, doc: Any, resp: requests.Response) -> None:
        pag = self.entity.options["paginator"]
        if pag.get("total_path"):
            value = _dig(doc, pag["total_path"])
            if value is not None:
                total = _as_int(value)
                if total is None:
                    raise SourceError(f"{self.where}: total_path {pag['total_path']!r} holds {value!r}, "
                                      "not a number of records")
                self._total, self._total_from = total, f"total_path {pag['total_path']}"
        if pag.get("total_header") and resp.headers.get(pag["total_header"]) is not None:
            value = resp.headers[pag["total_header"]]
            total = _as_int(value)
            if total is None:
                raise SourceError(f"{self.where}: header {pag['total_header']} holds {value!r}, not a number")
            self._total, self._total_from = total, f"header {pag['total_header']}"

    def _more(self, doc: Any, pag: dict[str, Any], pages_done: int) -> bool | None:
        """Whether the server says more records follow: True, False, or None when it does not say."""
        if pag.get("has_more_path"):
            flag = _dig(doc, pag["has_more_path"])
            if flag is not None:
                more = _as_bool(flag)
                if more is None:
                    raise SourceError(f"{self.where}: has_more_path {pag['has_more_path']!r} holds {flag!r}, "
                                      "not a true/false value")
                return more
        if pag.get("total_pages_path"):
            pages = _as_int(_dig(doc, pag["total_pages_path"]))
            if pages is not None:
                return pages_done < pages
        if self._total is not None:
            return self._read < self._total
        return None

    def _records(self, resp: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        try:
            doc = resp.json()
        except ValueError:
            raise SourceError(f"{self.where}: page {self._fetched}: GET {self._url_for_message(resp.url)} did not answer JSON "
                              f"(HTTP {resp.status_code}, {resp.headers.get('Content-Type') or 'no content type'}): "
                              f"{self._redact(_body_brief(resp))}") from None
        error = self._envelope_error(doc)
        if error:
            raise SourceError(f"{self.where}: page {self._fetched}: GET {self._url_for_message(resp.url)} answered HTTP "
                              f"{resp.status_code} with an error: {self._redact(error)}")
        path = self.entity.options.get("records_path")
        records = _dig(doc, path, _MISSING)
        if isinstance(records, list):
            return doc, records
        if path and (records is None or _null_on_the_way(doc, path)):
            return doc, []  # "data": null on an empty page, once the envelope said all is well
        raise SourceError(f"{self.where}: page {self._fetched}: no list at records_path {path!r} in "
                          f"{self._url_for_message(resp.url)}: {_shape(doc, path)}")

    def _envelope_error(self, doc: Any) -> str | None:
        """The server's own error message when a 200 answer's envelope reports an error, else None."""
        env = self.envelope
        if not isinstance(doc, dict) or env is False or env == "none":
            return None
        if isinstance(env, dict):
            message = _dig(doc, env["message_path"]) if env.get("message_path") else _default_message(doc)
            if env.get("success_path"):
                ok = _as_bool(_dig(doc, env["success_path"]))
                if ok is False:
                    return _say(f"{env['success_path']} = {_dig(doc, env['success_path'])!r}", message)
            if env.get("code_path"):
                code = _dig(doc, env["code_path"])
                ok_codes = {str(c) for c in env.get("ok_codes", DEFAULT_OK_CODES)}
                if code is not None and str(code) not in ok_codes:
                    return _say(f"{env['code_path']} = {code!r}", message)
            if env.get("error_path"):
                err = _dig(doc, env["error_path"])
                if err not in (None, "", False, [], {}, 0, "0"):
                    return _say(f"{env['error_path']} = {_short(err)}", message if message is not None else None)
            return None
        # The default: the envelopes most APIs use.
        if doc.get("success") is False:
            return _say("success = false", _default_message(doc))
        for key in ("code", "errcode", "error_code"):
            code = _as_int(doc.get(key))
            if code is not None and code not in DEFAULT_OK_CODES:
                return _say(f"{key} = {doc[key]!r}", _default_message(doc),
                            hint=f" (if {code} means success here, set envelope.ok_codes)")
        err = doc.get("error")
        if isinstance(err, str | dict) and err:
            return _say(f"error = {_short(err)}", _default_message(doc, skip="error"))
        return None

    def _pages_page_number(self, url, params, pag, stats) -> Iterator[pa.Table]:
        start, size = int(pag.get("start", 1)), int(pag.get("page_size", 500))
        page, previous = start, None
        while True:
            _, doc, records = self._page(url, {**params, pag["page_param"]: page, pag["size_param"]: size}, stats)
            self._check_repeat(records, previous, f"{pag['page_param']}={page}")
            yield records_to_table(records, stats)
            # A short page is no signal: servers cap the page size. Only the server's own word, or an
            # empty page, ends the load.
            more = self._more(doc, pag, page - start + 1)
            if not records:
                self._empty_but_more(more, f"{pag['page_param']}={page}")
                return
            if more is False:
                return
            page, previous = page + 1, records

    def _pages_offset(self, url, params, pag, stats) -> Iterator[pa.Table]:
        offset, limit = 0, int(pag.get("limit", 500))
        next_url: str | None = None
        seen: set[str] = set()
        previous = None
        while True:
            if next_url:
                _, doc, records = self._page(next_url, None, stats, "next link")
            else:
                _, doc, records = self._page(url, {**params, pag["offset_param"]: offset,
                                                   pag["limit_param"]: limit}, stats)
                self._check_repeat(records, previous, f"{pag['offset_param']}={offset}")
            yield records_to_table(records, stats)
            more = self._more(doc, pag, self._fetched)
            if pag.get("next_url_path"):
                next_url = _dig(doc, pag["next_url_path"])
                if not next_url or more is False:
                    return
                next_url = urljoin(url, str(next_url))
                if next_url in seen:
                    raise SourceError(f"{self.where}: the next link {self._url_for_message(next_url)} repeats "
                                      "one already followed: endless pagination stopped")
                seen.add(next_url)
            else:
                # Step by the records received, not the limit asked: a server may send fewer.
                if not records:
                    self._empty_but_more(more, f"{pag['offset_param']}={offset}")
                    return
                offset += len(records)
                if more is False:
                    return
                previous = records

    def _pages_cursor(self, url, params, pag, stats) -> Iterator[pa.Table]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, pag["limit_param"]: int(pag.get("limit", 500))}
            if token:
                query[pag["cursor_param"]] = token
            _, doc, records = self._page(url, query, stats)
            yield records_to_table(records, stats)
            nxt = _dig(doc, pag["next_cursor_path"])
            more = self._more(doc, pag, self._fetched)
            if nxt in (None, "") and more and self._total is None:
                raise SourceError(f"{self.where}: has_more says more records follow but the answer has no "
                                  f"{pag['next_cursor_path']} ({self._read:,} read over {self._fetched:,} page(s))")
            if nxt in (None, "") or more is False:
                return
            token = str(nxt)
            if token in seen:
                raise SourceError(f"{self.where}: the next cursor {token!r} repeats one already followed: "
                                  "endless pagination stopped")
            seen.add(token)

    def _pages_link_header(self, url, params, pag, stats) -> Iterator[pa.Table]:
        resp, doc, records = self._page(url, {**params, pag["page_param"]: 1,
                                              pag["size_param"]: int(pag.get("page_size", 500))}, stats)
        seen: set[str] = set()
        while True:
            yield records_to_table(records, stats)
            nxt = resp.links.get("next", {}).get("url")
            if not nxt or self._more(doc, pag, self._fetched) is False:
                return
            nxt = urljoin(resp.url, nxt)
            if nxt in seen:
                raise SourceError(f"{self.where}: the next link {self._url_for_message(nxt)} repeats one already "
                                  "followed: endless pagination stopped")
            seen.add(nxt)
            resp, doc, records = self._page(nxt, None, stats, "next link")

    def _empty_but_more(self, more: bool | None, where: str) -> None:
        if not more:
            return
        if self._total is not None:
            raise SourceError(self._mismatch() + f"; the page at {where} came back empty")
        raise SourceError(f"{self.where}: the page at {where} is empty while has_more says more records follow "
                          f"({self._read:,} read over {self._fetched:,} page(s))")

    def _mismatch(self) -> str:
        return (f"{self.where}: the server reported a total of {self._total:,} record(s) ({self._total_from}) but "
                f"{self._read:,} were read over {self._fetched:,} page(s); not committed, the cursor stays where "
                "it was")

    def _check_repeat(self, records: list, previous: list | None, where: str) -> None:
        """A page that repeats the one before (same size, first and last record) means the server ignores
        the page parameter: without this the load would never end."""
        if records and previous and len(records) == len(previous) and records[0] == previous[0] \
                and records[-1] == previous[-1]:
            raise SourceError(f"{self.where}: the page at {where} repeats the page before it (the server "
                              "ignores the page parameter?): endless pagination stopped")


def _say(what: str, message: Any, hint: str = "") -> str:
    return f"{what}: {_short(message)}{hint}" if message not in (None, "") else f"{what}{hint}"


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _default_message(doc: dict, skip: str = "") -> Any:
    for key in ("msg", "message", "errmsg", "error_msg", "errorMessage", "error_description", "detail", "error"):
        if key != skip and doc.get(key) not in (None, ""):
            return doc[key]
    return None


def _null_on_the_way(doc: Any, path: str | None) -> bool:
    """Whether records_path runs into an explicit null (``"data": null``) before its end."""
    if not path:
        return False
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return False
        doc = doc[part]
        if doc is None:
            return True
    return False


def _shape(doc: Any, path: str | None) -> str:
    """What the answer looked like where records were expected, naming the keys that were found."""
    if isinstance(doc, list):
        return "the answer is a list; remove records_path" if path else "no records"
    if not isinstance(doc, dict):
        return f"the answer is {type(doc).__name__} {_short(doc, 80)}"
    top = f"top-level keys found: {sorted(doc)}"
    if not path:
        return f"the answer is an object, set records_path; {top}"
    node: Any = doc
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(node, dict):
            return f"{'.'.join(walked)} is {type(node).__name__}, not an object; {top}"
        if part not in node:
            here = f" under {'.'.join(walked)!r} (keys there: {sorted(node)})" if walked else ""
            return f"{part!r} is missing{here}; {top}"
        node = node[part]
        walked.append(part)
    return f"{path} is {type(node).__name__} {_short(node, 80)}; {top}"


_CHARSET_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_CHARSET_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.IGNORECASE)
_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030"}


def _decoded_body(resp: requests.Response) -> str:
    """The body as text in its declared charset (header, then <meta>), else the detected one."""
    raw = resp.content or b""
    m = _CHARSET_HEADER.search(resp.headers.get("Content-Type", ""))
    charset = m.group(1) if m else None
    if not charset:
        mm = _CHARSET_META.search(raw[:4096])
        charset = mm.group(1).decode("ascii") if mm else None
    if not charset:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            charset = resp.apparent_encoding or "gb18030"
    charset = _SUPERSET.get(charset.lower(), charset)
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _body_brief(resp: requests.Response, limit: int = 160) -> str:
    """A short quote of a body that is not JSON: an HTML page's title and first text, decoded."""
    text = _decoded_body(resp)
    if "<" in text[:1024] and re.search(r"<(html|head|body|title|!doctype)", text[:2048], re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<[^>]+>", " ", body)
        words = " ".join(body.split())
        head = " ".join(title.group(1).split()) if title else ""
        text = f"{head} — {words}" if head and words else (head or words)
    return repr(_short(text, limit)) if text.strip() else "an empty body"


def _server_message(resp: requests.Response) -> str:
    try:
        doc = resp.json()
        if isinstance(doc, dict):
            for key in ("error", "message", "msg", "detail", "error_description"):
                if key in doc:
                    return str(doc[key])
    except ValueError:
        pass
    if not resp.content:
        return resp.reason or "no message"
    return _body_brief(resp, 200)
