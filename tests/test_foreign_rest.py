"""REST sources unlike the simulated campus, configured through sources.yaml alone (tests/foreign_rest.py).

Every load is checked twice: each key in raw against what the server sent (tests compare every field of
every record), and ``rows_read = rows_landed + rows_skipped + rows_rejected`` in ``quality.load_audit``.
"""

from __future__ import annotations

import json
import random
import time

import pytest
import yaml

from connectors import SourceError, load_entity, load_sources
from tests.foreign_rest import Reply, Seen, TokenIssuer, Vendor

NOW_MS = int(time.time() * 1000)


# -- helpers ------------------------------------------------------------------------------------------


def _sources(tmp_path, spec: dict):
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": spec}, allow_unicode=True), encoding="utf-8")
    return load_sources(path)


def _load(con, tmp_path, sources, source: str, entity: str):
    src = sources[source]
    [result] = load_entity(con, tmp_path / "raw", src, src.entities[entity])
    return result


def _fails(con, tmp_path, sources, source: str, entity: str) -> str:
    with pytest.raises(SourceError) as err:
        _load(con, tmp_path, sources, source, entity)
    return str(err.value)


def _text(v):
    """What raw must hold for a JSON value: text as sent; nested values as the record's own JSON."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _assert_raw_is(con, table: str, records: list[dict], pk: str):
    """Every record once (its latest version), every key equal to what was sent; absent keys NULL."""
    cols = [r[0] for r in con.execute(f"DESCRIBE raw.{table}").fetchall() if not r[0].startswith("_")]
    rows = con.execute(f"""SELECT {', '.join(f'"{c}"' for c in cols)} FROM raw.{table}
                           QUALIFY row_number() OVER (PARTITION BY "{pk}" ORDER BY _extracted_at DESC,
                                                      _row_number DESC) = 1""").fetchall()
    got = {r[cols.index(pk)]: dict(zip(cols, r, strict=True)) for r in rows}
    assert len(got) == len(records) == len({r[pk] for r in records})
    keys = {k for r in records for k in r}
    assert keys <= set(cols), f"keys never landed: {keys - set(cols)}"
    for rec in records:
        row = got[_text(rec[pk])]
        for c in cols:
            assert row[c] == _text(rec.get(c)), (rec[pk], c, row[c], rec.get(c))


def _audit(con) -> list[tuple]:
    rows = con.execute("SELECT status, rows_read, rows_landed, rows_skipped, rows_rejected, message, cursor_before, "
                       "cursor_after, pages FROM quality.load_audit ORDER BY started_at").fetchall()
    for status, read, landed, skipped, rejected, *_ in rows:
        if status == "ok":
            assert read == landed + skipped + rejected, rows
        else:
            assert landed == 0 and skipped == 0, rows
    return rows


def _members(n: int, seed: int = 1) -> list[dict]:
    """Records with nested optional keys: an owner with or without dept, dept null, tags or none."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = {"cardNo": f"C{i:05d}", "name": f"成员{i}", "balance": rng.choice([12.5, 0, 3.0, None, 100]),
               "frozen": rng.random() < 0.2, "modifiedTime": NOW_MS - 10_000_000 + i * 1000}
        shape = i % 5
        if shape == 0:
            rec["owner"] = {"id": i, "dept": {"code": f"D{i % 7}", "name": "组织部"}}
        elif shape == 1:
            rec["owner"] = {"id": i}
        elif shape == 2:
            rec["owner"] = {"id": i, "dept": None, "roles": ["支部书记", "委员"]}
        elif shape == 3:
            rec["tags"] = []
        if i % 3 == 0:
            rec["tags"] = [{"k": "党员", "since": 2019}, {"k": "教工"}]
        out.append(rec)
    return out


def _shuffled(value, rng: random.Random):
    """The same JSON with object keys in another order: servers do not promise key order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


# -- 1. capped page sizes: the silent loss this issue is about --------------------------------------


def _capped_offset_vendor(data: list[dict], cap: int):
    def cards(seen: Seen) -> Reply:
        start, rows = int(seen.query.get("start", 0)), min(int(seen.query.get("rows", 20)), cap)
        return Reply(body={"total": len(data), "more": start + rows < len(data), "rows": data[start:start + rows]})

    return Vendor({"/openapi/v3/cards": cards})


@pytest.mark.parametrize("signal", ["total_path", "has_more_path", None])
def test_capped_offset_server_lands_every_row(tmp_path, con, signal):
    """Asked for 500 a page, the server sends 100. Before this change the offset paginator took the short
    first page for the last: an ok load with 100 of 1,200 rows and the cursor moved."""
    data = _members(1200)
    with _capped_offset_vendor(data, cap=100) as vendor:
        paginator = {"type": "offset", "offset_param": "start", "limit_param": "rows", "limit": 500}
        if signal:
            paginator[signal] = {"total_path": "total", "has_more_path": "more"}[signal]
        sources = _sources(tmp_path, {"card": {"kind": "rest", "base_url": vendor.url, "entities": {"cards": {
            "path": "/openapi/v3/cards", "records_path": "rows", "paginator": paginator, "primary_key": "cardNo"}}}})
        result = _load(con, tmp_path, sources, "card", "cards")
        starts = [int(s.query["start"]) for s in vendor.seen]
    assert result.status == "ok" and result.rows_landed == 1200
    # Steps by the records received, not the limit asked; the server's signal ends the load, without one
    # an empty page.
    assert starts == list(range(0, 1200 if signal else 1300, 100))
    _assert_raw_is(con, "card__cards", data, "cardNo")
    _audit(con)


def _capped_page_vendor(data: list[dict], cap: int, *, has_more: bool):
    def books(seen: Seen) -> Reply:
        page, size = int(seen.query["pageNo"]), min(int(seen.query["pageSize"]), cap)
        chunk = data[(page - 1) * size: page * size]
        body: dict = {"records": chunk}
        if has_more:
            body["hasMore"] = page * size < len(data)
        return Reply(body={"code": 0, "msg": "操作成功", "data": body})

    return Vendor({"/library/api/books": books})


@pytest.mark.parametrize("has_more", [True, False])
def test_capped_page_number_server_lands_every_row(tmp_path, con, has_more):
    """Page-number paging with a hasMore flag and no total_pages_path (it crashed with a TypeError), and
    with no signal at all (it stopped after the first short page)."""
    data = _members(333, seed=2)
    with _capped_page_vendor(data, cap=50, has_more=has_more) as vendor:
        paginator = {"type": "page_number", "page_param": "pageNo", "size_param": "pageSize", "page_size": 200}
        if has_more:
            paginator["has_more_path"] = "data.hasMore"
        sources = _sources(tmp_path, {"lib": {"kind": "rest", "base_url": vendor.url, "entities": {"books": {
            "path": "/library/api/books", "records_path": "data.records", "paginator": paginator,
            "primary_key": "cardNo"}}}})
        result = _load(con, tmp_path, sources, "lib", "books")
        pages = [int(s.query["pageNo"]) for s in vendor.seen]
    assert result.rows_landed == 333
    assert pages == list(range(1, 8 if has_more else 9)), "hasMore = false ends it; else the empty page 8"
    _assert_raw_is(con, "lib__books", data, "cardNo")
    _audit(con)


def test_a_total_that_does_not_match_fails_the_load_and_keeps_the_cursor(tmp_path, con):
    data = _members(450, seed=3)
    served = list(data)
    served_total: list[int | None] = [None]

    def cards(seen: Seen) -> Reply:
        since = int(seen.query.get("since", 0))
        rows = [r for r in served if r["modifiedTime"] >= since]
        start, size = int(seen.query.get("start", 0)), min(int(seen.query.get("rows", 20)), 60)
        total = served_total[0] if served_total[0] is not None else len(rows)
        return Reply(body={"total": total, "rows": rows[start:start + size]})

    with Vendor({"/openapi/v3/cards": cards}) as vendor:
        sources = _sources(tmp_path, {"card": {"kind": "rest", "base_url": vendor.url, "entities": {"cards": {
            "path": "/openapi/v3/cards", "records_path": "rows", "primary_key": "cardNo",
            "incremental": {"cursor_field": "modifiedTime", "param": "since", "type": "epoch_ms"},
            "paginator": {"type": "offset", "offset_param": "start", "limit_param": "rows", "limit": 100,
                          "total_path": "total"}}}}})
        first = _load(con, tmp_path, sources, "card", "cards")
        assert first.rows_landed == 450
        # The server now says 20 more exist than it serves (a record lost between its count and its pages).
        served_total[0] = 20 + 1
        message = _fails(con, tmp_path, sources, "card", "cards")
    assert "total of 21 record(s)" in message and "1 were read" in message and "card.cards" in message
    [*_, (status, read, landed, _, _, audit_msg, before, after, _)] = _audit(con)
    assert status == "failed" and read == 1 and landed == 0 and "21" in audit_msg
    assert before == after == first.cursor_after
    assert con.execute("SELECT cursor_value FROM meta.source_cursor").fetchone()[0] == first.cursor_after
    assert con.execute("SELECT count(*) FROM raw.card__cards").fetchone()[0] == 450


# -- Link headers, OAuth2 tokens that die, gzip, 429, an epoch-ms cursor, nested optional keys -------


class _MemberApi:
    """A members API: Link rel=next (absolute), X-Total-Count, per_page capped at 40, gzip bodies,
    a 429 with Retry-After every fifth request, OAuth2 bearer tokens, key order shuffled each time."""

    def __init__(self, data: list[dict], issuer: TokenIssuer, delay: float = 0.0):
        self.data, self.issuer, self.delay = data, issuer, delay
        self.calls = 0
        self.throttled = 0
        self.vendor = Vendor({"/oauth/token": issuer.token_route, "/v1/members": self.members})

    def members(self, seen: Seen) -> Reply:
        self.calls += 1
        if self.calls % 5 == 0:
            self.throttled += 1
            return Reply(429, {"error": "slow down"}, {"Retry-After": "0"})
        denied = self.issuer.check(seen)
        if denied:
            return denied
        time.sleep(self.delay)
        since = int(seen.query.get("since", 0))
        rows = sorted((r for r in self.data if r["modifiedTime"] >= since), key=lambda r: r["modifiedTime"])
        page, per = int(seen.query.get("page", 1)), min(int(seen.query.get("per_page", 30)), 40)
        chunk = rows[(page - 1) * per: page * per]
        headers = {"X-Total-Count": str(len(rows))}
        if page * per < len(rows):
            nxt = f"{self.vendor.url}/v1/members?page={page + 1}&per_page={per}" + (f"&since={since}" if since else "")
            headers["Link"] = f'<{nxt}>; rel="next", <{self.vendor.url}/v1/members?page=1>; rel="first"'
        rng = random.Random(self.calls)
        return Reply(body=[_shuffled(r, rng) for r in chunk], headers=headers, gzip=True)


def _member_sources(tmp_path, api: _MemberApi, **auth_extra):
    return _sources(tmp_path, {"ykt": {
        "kind": "rest", "base_url": api.vendor.url + "/", "max_retries": 3,
        "auth": {"type": "oauth2_client_credentials", "token_url": api.vendor.url + "/oauth/token",
                 "client_id": "hub", "client_secret": "${YKT_SECRET}", "scope": "members.read", **auth_extra},
        "entities": {"members": {
            "path": "v1/members", "primary_key": "cardNo",
            "incremental": {"cursor_field": "modifiedTime", "param": "since", "type": "epoch_ms"},
            "paginator": {"type": "link_header", "page_param": "page", "size_param": "per_page", "page_size": 100,
                          "total_header": "X-Total-Count"}}}}})


def test_link_header_oauth2_gzip_429_epoch_ms_and_nested_keys(tmp_path, con, monkeypatch):
    monkeypatch.setenv("YKT_SECRET", "s3cr3t-ykt")
    data = _members(230, seed=4)
    data[17]["modifiedTime"] = NOW_MS + 5 * 86_400_000  # a clock error at the source, 5 days ahead
    issuer = TokenIssuer("hub", "s3cr3t-ykt", uses=3, scope="members.read")
    api = _MemberApi(data, issuer)
    with api.vendor:
        sources = _member_sources(tmp_path, api)
        first = _load(con, tmp_path, sources, "ykt", "members")
        _assert_raw_is(con, "ykt__members", data, "cardNo")
        assert first.rows_landed == 230 and first.pages == 6
        assert api.throttled >= 1 and first.retries >= api.throttled
        # Tokens die after three requests: each died once (one 401), was refreshed once, the request retried.
        assert issuer.issued == 2 and issuer.rejected == 1, "6 pages, 3 per token"
        sane = max(r["modifiedTime"] for i, r in enumerate(data) if i != 17)
        assert first.cursor_after == str(sane), "the future value does not move the cursor"
        [finding] = con.execute("SELECT kind, record_key, field, value FROM quality.load_finding").fetchall()
        assert finding == ("cursor_in_future", "C00017", "modifiedTime", str(data[17]["modifiedTime"]))

        # The next load reads from the cursor on (inclusive): the boundary record and the future one are
        # read again, with their keys in another order, and skipped.
        second = _load(con, tmp_path, sources, "ykt", "members")
        assert api.vendor.seen[-1].query["since"] == first.cursor_after
        assert second.rows_read == 2 and second.rows_landed == 0 and second.rows_skipped == 2
        # One nested value changes (a key goes away): only that record lands again, as sent.
        data[-1]["modifiedTime"] += 1
        data[-1].pop("tags", None)
        data[-1]["owner"] = {"id": 1}
        third = _load(con, tmp_path, sources, "ykt", "members")
        assert third.rows_landed == 1
    _assert_raw_is(con, "ykt__members", data, "cardNo")
    assert "s3cr3t" not in json.dumps(_audit(con), default=str)
    sent_secret = [s for s in api.vendor.seen if "s3cr3t" in json.dumps(s.__dict__)]
    assert all(s.path == "/oauth/token" for s in sent_secret), "the secret goes to the token URL only"


def test_oauth2_token_is_refreshed_before_it_expires(tmp_path, con, monkeypatch):
    monkeypatch.setenv("YKT_SECRET", "s3cr3t-ykt")
    data = _members(400, seed=5)
    issuer = TokenIssuer("hub", "s3cr3t-ykt", lifetime=1.0, expires_in=1, scope="members.read")
    api = _MemberApi(data, issuer, delay=0.12)
    with api.vendor:
        sources = _member_sources(tmp_path, api, client_auth="body")
        result = _load(con, tmp_path, sources, "ykt", "members")
    assert result.rows_landed == 400
    assert issuer.issued >= 2 and issuer.rejected == 0, "refreshed ahead of expires_in, never by a 401"
    _assert_raw_is(con, "ykt__members", data, "cardNo")
    _audit(con)


def test_oauth2_failures_name_the_token_url_never_the_secret(tmp_path, con, monkeypatch):
    monkeypatch.setenv("YKT_SECRET", "wrong-s3cr3t")
    issuer = TokenIssuer("hub", "right-s3cr3t")
    api = _MemberApi(_members(10), issuer)
    with api.vendor:
        sources = _member_sources(tmp_path, api)
        message = _fails(con, tmp_path, sources, "ykt", "members")
        assert f"token request to {api.vendor.url}/oauth/token -> HTTP 401: invalid_client" in message
        assert "s3cr3t" not in message
        # A token the API refuses even fresh: refreshed once, then a clear failure.
        monkeypatch.setenv("YKT_SECRET", "right-s3cr3t")
        issuer.uses = 0
        message = _fails(con, tmp_path, sources, "ykt", "members")
    assert "HTTP 401 again with a fresh token from" in message and "/oauth/token" in message
    assert issuer.issued == 2 and "s3cr3t" not in message and "tok-" not in message
    assert "s3cr3t" not in json.dumps(_audit(con), default=str)


# -- api_key in the query, static headers, envelopes, HTML error pages, records_path --------------


def test_api_key_in_the_query_and_static_headers_never_leak_into_messages(tmp_path, con, monkeypatch):
    monkeypatch.setenv("LIB_APPKEY", "k-9f8e7d")
    monkeypatch.setenv("LIB_TENANT", "gzxy")
    data = _members(75, seed=6)

    def books(seen: Seen) -> Reply:
        if seen.query.get("appkey") != "k-9f8e7d" or seen.headers.get("X-Tenant") != "gzxy":
            return Reply(403, {"msg": "bad appkey"})
        if seen.query.get("pageNo") == "9":
            return Reply(400, {"msg": "pageNo out of range"})
        page, size = int(seen.query["pageNo"]), int(seen.query["pageSize"])
        return Reply(body={"code": "0", "data": {"total": len(data), "records": data[(page - 1) * size: page * size]}})

    with Vendor({"/lib/books": books}) as vendor:
        spec = {"kind": "rest", "base_url": vendor.url,
                "auth": {"type": "api_key", "location": "query", "name": "appkey", "key": "${LIB_APPKEY}"},
                "headers": {"X-Tenant": "${LIB_TENANT}"},
                "entities": {"books": {"path": "/lib/books", "records_path": "data.records", "primary_key": "cardNo",
                                       "paginator": {"type": "page_number", "page_param": "pageNo",
                                                     "size_param": "pageSize", "page_size": 10,
                                                     "total_path": "data.total"}},
                             "broken": {"path": "/lib/books", "records_path": "data.records", "primary_key": "cardNo",
                                        "params": {"x": 1},
                                        "paginator": {"type": "page_number", "page_param": "pageNo",
                                                      "size_param": "pageSize", "page_size": 1, "start": 9}}}}
        sources = _sources(tmp_path, {"lib": spec})
        result = _load(con, tmp_path, sources, "lib", "books")
        message = _fails(con, tmp_path, sources, "lib", "broken")
    assert result.rows_landed == 75 and all(s.query["appkey"] == "k-9f8e7d" for s in vendor.seen)
    _assert_raw_is(con, "lib__books", data, "cardNo")
    assert "HTTP 400: pageNo out of range" in message and "appkey=***" in message and "k-9f8e7d" not in message
    assert "k-9f8e7d" not in json.dumps(_audit(con), default=str)


def _envelope_vendor(pages: list):
    def api(seen: Seen) -> Reply:
        page = int(seen.query.get("page", 1))
        return pages[page - 1] if page <= len(pages) else Reply(body={"code": 0, "data": []})

    return Vendor({"/api/list": api})


def _one_source(vendor: Vendor, **entity):
    ent = {"path": "/api/list", "records_path": "data", "primary_key": "cardNo",
           "paginator": {"type": "page_number", "page_param": "page", "size_param": "size", "page_size": 5}}
    ent.update(entity)
    return {"v": {"kind": "rest", "base_url": vendor.url, "entities": {"e": ent}}}


def test_an_error_envelope_at_http_200_fails_with_the_servers_message(tmp_path, con):
    good = Reply(body={"code": 0, "msg": "ok", "data": _members(5)})
    with _envelope_vendor([good, Reply(body={"code": 500, "msg": "系统繁忙", "data": None})]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert "v.e: page 2" in message and "code = 500: 系统繁忙" in message

    with _envelope_vendor([Reply(body={"success": False, "message": "签名错误", "data": []})]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert "success = false: 签名错误" in message

    # A vendor's own envelope, configured: status "OK" is success, anything else an error in errorMsg.
    own = {"envelope": {"code_path": "status", "ok_codes": ["OK"], "message_path": "errorMsg"}}
    pages = [Reply(body={"status": "OK", "data": _members(5)}),
             Reply(body={"status": "DENIED", "errorMsg": "IP 不在白名单", "data": []})]
    with _envelope_vendor(pages) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor, **own)), "v", "e")
    assert "status = 'DENIED': IP 不在白名单" in message
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchone()[0] == 0
    assert [r[0] for r in _audit(con)] == ["failed"] * 3

    # "data": null with a success code is an empty page, not an error.
    with _envelope_vendor([Reply(body={"code": 0, "msg": "ok", "data": None})]) as vendor:
        result = _load(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert result.status == "ok" and result.rows_read == 0


def test_html_error_pages_are_decoded_and_quoted_briefly(tmp_path, con):
    page = ('<!DOCTYPE html><html><head><meta charset="gbk"><title>访问被拒绝</title><style>p{}</style></head>'
            '<body><h1>403 禁止访问</h1><p>您的IP不在允许范围内。' + "说明" * 400 + "</p></body></html>")
    gbk = page.encode("gbk")
    with _envelope_vendor([Reply(403, gbk, content_type="text/html")]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert "HTTP 403: '访问被拒绝 — 403 禁止访问 您的IP不在允许范围内。" in message and len(message) < 400
    # A portal's login page at HTTP 200, its charset in the header.
    portal = "<html><head><title>统一身份认证</title></head><body>请登录</body></html>"
    with _envelope_vendor([Reply(200, portal.encode("gb18030"), content_type="text/html; charset=GB2312")]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert "did not answer JSON (HTTP 200, text/html; charset=GB2312): '统一身份认证 — 请登录'" in message
    # No charset declared anywhere: detected.
    bare = ("<html><head><title>服务器内部错误</title></head><body><p>系统正在维护，请稍后再试。"
            "如有疑问请联系信息中心。</p></body></html>")
    with _envelope_vendor([Reply(404, bare.encode("gbk"), content_type="text/html")]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor)), "v", "e")
    assert "HTTP 404: '服务器内部错误 — 系统正在维护，请稍后再试。" in message


def test_a_wrong_records_path_lists_the_keys_that_were_found(tmp_path, con):
    with _envelope_vendor([Reply(body={"code": 0, "result": {"rows": _members(3)}, "page": 1})]) as vendor:
        message = _fails(con, tmp_path, _sources(tmp_path, _one_source(vendor, records_path="result.list")), "v", "e")
    assert "no list at records_path 'result.list'" in message
    assert "'list' is missing under 'result' (keys there: ['rows'])" in message
    assert "top-level keys found: ['code', 'page', 'result']" in message


# -- origins: links and redirects never take credentials elsewhere --------------------------------


def test_next_links_and_redirects_to_another_origin_are_refused_and_get_no_credentials(tmp_path, con, monkeypatch):
    monkeypatch.setenv("V_KEY", "key-abc123")
    data = _members(12)
    with Vendor({"/v1/members": lambda s: Reply(body=data[6:])}) as other, Vendor() as home:
        def members(seen: Seen) -> Reply:
            return Reply(body=data[:6], headers={"Link": f'<{other.url}/v1/members?page=2>; rel="next"'})

        home.routes.update({
            "/v1/members": members,
            "/v1/moved": lambda s: Reply(302, headers={"Location": f"{other.url}/v1/members"}),
            "/v1/old": lambda s: Reply(301, headers={"Location": "/v1/new?page=1"}),
            "/v1/new": lambda s: Reply(body=data if s.headers.get("X-API-Key") == "key-abc123" else []),
        })
        paginator = {"type": "link_header", "page_param": "page", "size_param": "per_page", "page_size": 6}
        sources = _sources(tmp_path, {"v": {
            "kind": "rest", "base_url": home.url, "auth": {"type": "api_key", "header": "X-API-Key", "key": "${V_KEY}"},
            "entities": {n: {"path": p, "primary_key": "cardNo", "paginator": paginator}
                         for n, p in (("linked", "/v1/members"), ("moved", "/v1/moved"), ("old", "/v1/old"))}}})
        linked = _fails(con, tmp_path, sources, "v", "linked")
        moved = _fails(con, tmp_path, sources, "v", "moved")
        old = _load(con, tmp_path, sources, "v", "old")
    assert "next link" in linked and "another origin" in linked and "key-abc123" not in linked
    assert "a redirect from" in moved and "another origin" in moved
    assert other.seen == [], "the other origin never saw a request, let alone a key"
    # A redirect within the origin is followed, with the credentials.
    assert old.rows_landed == 12 and [s.path for s in home.requests_to("/v1/new")] == ["/v1/new"]
    _assert_raw_is(con, "v__old", data, "cardNo")
    _audit(con)


# -- endless pagination -------------------------------------------------------------------------------


def test_endless_pagination_is_stopped_with_a_message(tmp_path, con):
    calls = {"n": 0}

    def same_cursor(seen: Seen) -> Reply:
        return Reply(body={"items": [{"cardNo": "C1"}], "next": "abc"})

    def forever(seen: Seen) -> Reply:
        calls["n"] += 1
        page = int(seen.query.get("p", 1))
        return Reply(body={"data": [{"cardNo": f"C{page}"}]},
                     headers={"Link": f'</forever?p={page + 1}&n=3>; rel="next"'})

    def ignores_page(seen: Seen) -> Reply:
        return Reply(body={"data": [{"cardNo": "C1"}, {"cardNo": "C2"}]})

    with Vendor({"/same": same_cursor, "/forever": forever, "/ignores": ignores_page}) as vendor:
        sources = _sources(tmp_path, {"v": {"kind": "rest", "base_url": vendor.url, "entities": {
            "cur": {"path": "/same", "records_path": "items", "primary_key": "cardNo",
                    "paginator": {"type": "cursor", "cursor_param": "c", "limit_param": "n", "limit": 3,
                                  "next_cursor_path": "next"}},
            "link": {"path": "/forever", "records_path": "data", "primary_key": "cardNo",
                     "paginator": {"type": "link_header", "page_param": "p", "size_param": "n", "page_size": 3,
                                   "max_pages": 25}},
            "page": {"path": "/ignores", "records_path": "data", "primary_key": "cardNo",
                     "paginator": {"type": "page_number", "page_param": "p", "size_param": "n", "page_size": 2}}}}})
        cur = _fails(con, tmp_path, sources, "v", "cur")
        link = _fails(con, tmp_path, sources, "v", "link")
        page = _fails(con, tmp_path, sources, "v", "page")
    assert "next cursor 'abc' repeats" in cur
    assert "max_pages = 25" in link and calls["n"] == 25
    assert "p=2 repeats the page before it" in page
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchone()[0] == 0
    assert [r[0] for r in _audit(con)] == ["failed"] * 3


# -- the cursor ------------------------------------------------------------------------------------


def test_a_cursor_field_no_record_carries_fails_the_load(tmp_path, con):
    with _envelope_vendor([Reply(body={"code": 0, "data": _members(3)})]) as vendor:
        spec = _one_source(vendor, incremental={"cursor_field": "updateTime", "param": "since"})
        message = _fails(con, tmp_path, _sources(tmp_path, spec), "v", "e")
    assert "cursor_field 'updateTime' is in none of the 3 record(s)" in message
    assert con.execute("SELECT count(*) FROM meta.source_cursor").fetchone()[0] == 0
    _audit(con)


def test_config_rejects_unknown_rest_options_in_one_line(tmp_path):
    from connectors import ConfigError

    base = {"kind": "rest", "base_url": "http://127.0.0.1:1", "entities": {"e": {
        "path": "/x", "primary_key": "id", "paginator": {"type": "offset", "offset_param": "o", "limit_param": "l"}}}}
    cases = [
        ({**base, "auth": {"type": "oauth2_client_credentials", "token_url": "http://127.0.0.1:1/t", "client_id": "a"}},
         "auth.client_secret: is required"),
        ({**base, "auth": {"type": "api_key", "key": "k", "location": "cookie"}}, "auth.location: Input should be 'header' or 'query'"),
        ({**base, "envelope": {"code": "x"}}, "envelope: unknown key(s) ['code']"),
        ({**base, "entities": {"e": {**base["entities"]["e"], "paginator": {
            "type": "page_number", "page_param": "p", "size_param": "s", "max_pages": 0}}}},
         "paginator.max_pages: must be a positive integer"),
        ({**base, "entities": {"e": {**base["entities"]["e"], "paginator": {"type": "offset", "offset_param": "o"}}}},
         "paginator.limit_param: is required"),
    ]
    for spec, expected in cases:
        with pytest.raises(ConfigError) as err:
            _sources(tmp_path, {"v": spec})
        assert expected in str(err.value) and "\n" not in str(err.value)
