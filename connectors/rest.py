"""REST sources: auth, four paginators, incremental cursors, and retries that real servers need.

Retries (tenacity) cover 429, 5xx, timeouts and dropped connections with capped exponential backoff
that honours ``Retry-After``; any other 4xx fails at once with the server's own message. Every request
has a timeout and TLS verification is on unless the source turns it off.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pyarrow as pa
import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connectors.base import ExtractStats, SourceError, records_to_table
from connectors.config import Entity, Source
from connectors.cursor import CursorTracker

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class RetryableHTTPError(requests.HTTPError):
    def __init__(self, response: requests.Response):
        super().__init__(f"HTTP {response.status_code}", response=response)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableHTTPError | requests.ConnectionError | requests.Timeout)


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if not header:
        return None
    if header.strip().isdigit():
        return float(header)
    when = email.utils.parsedate_to_datetime(header)
    return max(0.0, when.timestamp() - time.time()) if when else None


def _wait(base: float):
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = _retry_after(exc)
        backoff = min(MAX_BACKOFF_S, base * 2 ** (state.attempt_number - 1))
        return min(MAX_BACKOFF_S, hinted) if hinted is not None else backoff

    return wait


def _dig(doc: Any, path: str | None) -> Any:
    if not path:
        return doc
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


class RestExtractor:
    """Reads one entity of one REST source, page by page, as Arrow text tables."""

    def __init__(self, source: Source, entity: Entity, *, session: requests.Session | None = None,
                 backoff_base: float = 0.5):
        self.source, self.entity = source, entity
        self.base_url = source.setting("base_url").rstrip("/") + "/"
        self.timeout = float(source.setting("timeout", 30))
        self.verify = bool(source.setting("verify_tls", True))
        self.max_attempts = int(source.setting("max_retries", 8)) + 1
        self.session = session or requests.Session()
        self.backoff_base = backoff_base
        self._apply_auth()

    def _apply_auth(self) -> None:
        auth = self.source.options.get("auth", {"type": "none"})
        where = f"sources.{self.source.name}.auth"
        from connectors.config import interpolate

        def val(key: str) -> str:
            if key not in auth:
                raise SourceError(f"{where}.{key} is required for auth type {auth['type']}")
            return interpolate(str(auth[key]), where=f"{where}.{key}")

        if auth["type"] == "bearer":
            self.session.headers["Authorization"] = f"Bearer {val('token')}"
        elif auth["type"] == "api_key":
            self.session.headers[auth.get("header", "X-API-Key")] = val("key")
        elif auth["type"] == "basic":
            self.session.auth = (val("username"), val("password"))
        for k, v in (self.source.options.get("headers") or {}).items():
            self.session.headers[k] = v

    # -- one request, with retries -------------------------------------------------------------
    def _get(self, url: str, params: dict[str, Any] | None, stats: ExtractStats) -> requests.Response:
        def attempt() -> requests.Response:
            resp = self.session.get(url, params=params, timeout=self.timeout, verify=self.verify)
            if resp.status_code in RETRY_STATUS:
                raise RetryableHTTPError(resp)
            if resp.status_code >= 400:
                raise SourceError(f"{self.source.name}.{self.entity.name}: GET {resp.url} -> HTTP "
                                  f"{resp.status_code}: {_server_message(resp)}")
            return resp

        def count_retry(state: RetryCallState) -> None:
            stats.retries += 1

        retrying = Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(self.max_attempts),
                            wait=_wait(self.backoff_base), before_sleep=count_retry, reraise=True)
        try:
            return retrying(attempt)
        except (RetryableHTTPError, requests.RequestException) as exc:
            raise SourceError(f"{self.source.name}.{self.entity.name}: GET {url} failed after "
                              f"{self.max_attempts} attempts: {exc}") from None

    # -- pages ---------------------------------------------------------------------------------
    def extract(self, cursor: str | None, stats: ExtractStats) -> Iterator[pa.Table]:
        """Yield one text table per page. ``cursor`` is the inclusive lower bound from the last load."""
        opts = self.entity.options
        pag = opts["paginator"]
        params: dict[str, Any] = dict(opts.get("params") or {})
        if cursor is not None and self.entity.cursor_param:
            params[self.entity.cursor_param] = cursor
        url = urljoin(self.base_url, opts["path"].lstrip("/"))
        tracker = CursorTracker(self.entity, cursor, tolerance=self.entity.future_tolerance)
        for table in getattr(self, f"_pages_{pag['type']}")(url, params, pag, stats):
            stats.pages += 1
            if table.num_rows:
                tracker.observe(table)
                yield table
        stats.cursor_after = tracker.result()
        stats.findings.extend(tracker.findings)

    def _records(self, resp: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        try:
            doc = resp.json()
        except ValueError:
            raise SourceError(f"{self.source.name}.{self.entity.name}: {resp.url} did not answer JSON "
                              f"({resp.text[:80]!r})") from None
        records = _dig(doc, self.entity.options.get("records_path"))
        if not isinstance(records, list):
            raise SourceError(f"{self.source.name}.{self.entity.name}: no list at records_path "
                              f"{self.entity.options.get('records_path')!r} in {resp.url}")
        return doc, records

    def _pages_page_number(self, url, params, pag, stats) -> Iterator[pa.Table]:
        page, size = int(pag.get("start", 1)), int(pag.get("page_size", 500))
        while True:
            doc, records = self._records(self._get(url, {**params, pag["page_param"]: page,
                                                         pag["size_param"]: size}, stats))
            yield records_to_table(records, stats)
            total = _dig(doc, pag.get("total_pages_path"))
            if not records or (total is not None and page >= int(total)) or (total is None and len(records) < size):
                return
            page += 1

    def _pages_offset(self, url, params, pag, stats) -> Iterator[pa.Table]:
        offset, limit = 0, int(pag.get("limit", 500))
        next_url: str | None = None
        while True:
            if next_url:
                resp = self._get(next_url, None, stats)
            else:
                resp = self._get(url, {**params, pag["offset_param"]: offset, pag["limit_param"]: limit}, stats)
            doc, records = self._records(resp)
            yield records_to_table(records, stats)
            if pag.get("next_url_path"):
                next_url = _dig(doc, pag["next_url_path"])
                if not next_url:
                    return
            else:
                offset += len(records)
                if len(records) < limit:
                    return

    def _pages_cursor(self, url, params, pag, stats) -> Iterator[pa.Table]:
        token: str | None = None
        while True:
            query = {**params, pag["limit_param"]: int(pag.get("limit", 500))}
            if token:
                query[pag["cursor_param"]] = token
            doc, records = self._records(self._get(url, query, stats))
            yield records_to_table(records, stats)
            token = _dig(doc, pag["next_cursor_path"])
            if not token:
                return

    def _pages_link_header(self, url, params, pag, stats) -> Iterator[pa.Table]:
        resp = self._get(url, {**params, pag["page_param"]: 1, pag["size_param"]: int(pag.get("page_size", 500))},
                         stats)
        while True:
            _, records = self._records(resp)
            yield records_to_table(records, stats)
            nxt = resp.links.get("next", {}).get("url")
            if not nxt:
                return
            resp = self._get(urljoin(resp.url, nxt), None, stats)


def _server_message(resp: requests.Response) -> str:
    try:
        doc = resp.json()
        if isinstance(doc, dict):
            for key in ("error", "message", "msg", "detail"):
                if key in doc:
                    return str(doc[key])
    except ValueError:
        pass
    return resp.text[:200].strip() or resp.reason
