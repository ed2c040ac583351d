"""Every source ends in bounded time: hostile REST servers (tests/foreign_rest.py ``Hostile``) that drip,
never answer, send without end, page without end or are not there end the load within its bounds, in
one line, with a ``failed`` audit row; a load reads the network without holding the warehouse."""

from __future__ import annotations

import time

import pytest
import yaml

from connectors import SourceError, load_entity, load_sources
from tests.foreign_rest import Hostile, Reply, Seen, Vendor, free_port


def _source(tmp_path, url: str, **options):
    spec = {"kind": "rest", "base_url": url, **options,
            "entities": {"items": {"path": "/items", "records_path": "data", "primary_key": "id",
                                   "paginator": {"type": "cursor", "cursor_param": "c", "limit_param": "n",
                                                 "next_cursor_path": "next"}}}}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": {"vendor": spec}}), encoding="utf-8")
    src = load_sources(path)["vendor"]
    return src, src.entities["items"]


def _fails_within(con, tmp_path, seconds: float, url: str, **options) -> str:
    src, entity = _source(tmp_path, url, **options)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        load_entity(con, tmp_path / "raw", src, entity)
    took = time.monotonic() - started
    message = str(err.value)
    assert took < seconds, f"took {took:.1f} s: {message}"
    assert "\n" not in message and message.startswith("vendor.items: ")
    status, audited = con.execute("SELECT status, message FROM quality.load_audit").fetchone()
    assert status == "failed" and audited == message
    return message


def test_a_dripping_server_is_cut_at_the_request_deadline(tmp_path, con):
    with Hostile("drip") as server:
        message = _fails_within(con, tmp_path, 8, server.url, timeout=5, deadline=1.5, max_retries=1)
    assert "deadline of 1.5 s" in message and "after 2 attempts" in message


def test_a_server_that_never_answers_ends_within_the_retry_budget(tmp_path, con):
    with Hostile("silent") as server:
        message = _fails_within(con, tmp_path, 8, server.url, timeout=1, max_retries=8, retry_budget=2.5)
    assert "retry budget spent" in message and "retry_budget = 2.5 s" in message
    assert server.connections <= 3


def test_a_server_that_is_not_there_fails_fast_and_says_what_to_check(tmp_path, con):
    message = _fails_within(con, tmp_path, 3, f"http://127.0.0.1:{free_port()}", max_retries=8)
    assert "is not reachable (connection refused)" in message
    assert "sources.vendor.base_url" in message and "hub serve-sources" in message


def test_a_body_over_the_size_limit_fails_the_load(tmp_path, con):
    with Hostile("huge", size=200_000_000) as server:
        message = _fails_within(con, tmp_path, 10, server.url, max_response_bytes="2MB")
    assert "max_response_bytes" in message and "2,000,000" in message


def test_endless_pagination_ends_at_the_load_timeout(tmp_path, con):
    def pages(seen: Seen) -> Reply:  # a new cursor every time, records that never repeat
        n = int(seen.query.get("c") or 0)
        return Reply(200, {"data": [{"id": f"{n}-{i}"} for i in range(50)], "next": str(n + 1)})

    with Vendor({"/items": pages}) as vendor:
        message = _fails_within(con, tmp_path, 6, vendor.url, load_timeout=1.5)
    assert "stopped after load_timeout = 1.5 s" in message and "cursor stays" in message
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'vendor__items'"
                       ).fetchone()[0] == 0, "nothing landed"


def test_transient_errors_are_retried_within_the_loads_budget_of_attempts(tmp_path, con):
    calls = {"n": 0}

    def flaky(seen: Seen) -> Reply:
        calls["n"] += 1
        if calls["n"] % 3:  # two 503s before every good answer
            return Reply(503, {"error": "busy"}, {"Retry-After": "0"})
        n = int(seen.query.get("c") or 0)
        return Reply(200, {"data": [{"id": str(n)}], "next": str(n + 1) if n < 3 else None})

    with Vendor({"/items": flaky}) as vendor:
        src, entity = _source(tmp_path, vendor.url, max_retries=3, max_retries_per_load=20)
        [result] = load_entity(con, tmp_path / "raw", src, entity)
    assert result.rows_landed == 4 and result.retries == 8


def test_the_retries_of_one_load_are_bounded_in_number(tmp_path, con):
    calls = {"n": 0}

    def flaky(seen: Seen) -> Reply:
        calls["n"] += 1
        if calls["n"] % 2:
            return Reply(503, {"error": "busy"}, {"Retry-After": "0"})
        n = int(seen.query.get("c") or 0)
        return Reply(200, {"data": [{"id": str(n)}], "next": str(n + 1)})

    with Vendor({"/items": flaky}) as vendor:
        message = _fails_within(con, tmp_path, 8, vendor.url, max_retries=3, max_retries_per_load=4)
    assert "the load's 4 retries spent (max_retries_per_load)" in message and calls["n"] == 9


def test_a_load_reads_the_network_without_holding_the_warehouse(tmp_path):
    """`hub load` of a slow source: while it reads, another process writes the warehouse; then it lands."""
    import os
    import subprocess
    import sys
    import threading

    from hub.settings import PROJECT_ROOT
    from hub.warehouse import connect

    first_page, release = threading.Event(), threading.Event()

    def slow(seen: Seen) -> Reply:
        n = int(seen.query.get("c") or 0)
        if n == 1:
            first_page.set()
            release.wait(20)  # the load is mid-read until the test has written the warehouse
        return Reply(200, {"data": [{"id": str(n)}], "next": str(n + 1) if n < 2 else None})

    with Vendor({"/items": slow}) as vendor:
        _source(tmp_path, vendor.url)
        warehouse = tmp_path / "warehouse.duckdb"
        env = {**os.environ, "HUB_SOURCES_FILE": str(tmp_path / "sources.yaml"), "HUB_WAREHOUSE": str(warehouse),
               "HUB_RAW_DIR": str(tmp_path / "raw"), "HUB_VAR_DIR": str(tmp_path / "var"),
               "DAGSTER_HOME": str(tmp_path / "dagster_home")}
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "load", "vendor"], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert first_page.wait(60), "the load never reached the source"
            con = connect(warehouse)  # read-write, from this process, while the load waits on the network
            con.execute("CREATE TABLE meta.written_meanwhile AS SELECT 1 AS x")
            con.close()
        finally:
            release.set()
            out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "✓ vendor__items: ok, read 3, landed 3" in out
    con = connect(warehouse, read_only=True)
    assert con.execute("SELECT count(*) FROM raw.vendor__items").fetchone()[0] == 3
    assert con.execute("SELECT x FROM meta.written_meanwhile").fetchone()[0] == 1
    con.close()


def test_progress_is_reported_page_by_page(tmp_path, con):
    def pages(seen: Seen) -> Reply:
        n = int(seen.query.get("c") or 0)
        return Reply(200, {"data": [{"id": f"{n}-{i}"} for i in range(3)], "next": str(n + 1) if n < 3 else None})

    seen: list[tuple[int, int, int]] = []
    with Vendor({"/items": pages}) as vendor:
        src, entity = _source(tmp_path, vendor.url)
        load_entity(con, tmp_path / "raw", src, entity, progress=lambda *a: seen.append(a))
    assert seen == [(3, 1, 0), (6, 2, 0), (9, 3, 0), (12, 4, 0)]


# -- XLSX checked before it is parsed -------------------------------------------------------------------


def _xlsx_with(path, replace: dict[str, bytes] | None = None, edit=None):
    """A real workbook (openpyxl), then members replaced or edited in its zip, as a hostile export would be."""
    import zipfile

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["人员编号", "姓名"])
    ws.append(["2024010101", "韦小宝"])
    plain = path.with_suffix(".plain.xlsx")
    wb.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if replace and info.filename in replace:
                data = replace[info.filename]
            if edit and info.filename == "xl/worksheets/sheet1.xml":
                data = edit(data)
            if replace and "xl/sharedStrings.xml" in replace and info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdSST" Target="sharedStrings.xml" '
                                    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                                    b'sharedStrings"/></Relationships>')
            if replace and "xl/sharedStrings.xml" in replace and info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            out.writestr(info.filename, data)
        for name, data in (replace or {}).items():
            if name not in src.namelist():  # openpyxl writes strings inline: add the part
                out.writestr(name, data)
    plain.unlink()
    return path


def _load_members(tmp_path, con, **source_options):
    from connectors import Entity, Source

    inbox = tmp_path / "inbox"
    entity = Entity("party", "members", ("人员编号",), {"pattern": "党员信息*.xlsx"})
    source = Source("party", "files", "", "t", {"inbox": str(inbox), **source_options}, {"members": entity})
    return load_entity(con, tmp_path / "raw", source, entity)


def _rejected_reason(tmp_path) -> str:
    [reason] = (tmp_path / "_rejected" / "inbox").glob("*.reason.txt")
    return reason.read_text(encoding="utf-8")


def test_an_xlsx_declaring_the_whole_sheet_is_set_aside_unparsed(tmp_path, con):
    import re

    (tmp_path / "inbox").mkdir()
    path = _xlsx_with(tmp_path / "inbox" / "党员信息_炸弹.xlsx",
                      edit=lambda xml: re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="A1:XFD1048576"', xml))
    assert path.stat().st_size < 10_000
    [result] = _load_members(tmp_path, con)
    assert result.status == "rejected"
    assert "declares a sheet range of 1,048,576 rows × 16,384 columns (A1:XFD1048576" in result.message
    assert "max_xlsx_cells" in _rejected_reason(tmp_path)


def test_an_xlsx_with_one_far_cell_is_set_aside_unparsed(tmp_path, con):
    (tmp_path / "inbox").mkdir()
    far = b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'
    _xlsx_with(tmp_path / "inbox" / "党员信息.xlsx",
               edit=lambda xml: xml.replace(b"</sheetData>", far).replace(b"<dimension", b"<ignored"))
    [result] = _load_members(tmp_path, con)
    assert result.status == "rejected" and "uses a sheet range of 1,048,576 rows × 16,384 columns" in result.message


def test_a_shared_strings_bomb_is_set_aside_unparsed(tmp_path, con):
    (tmp_path / "inbox").mkdir()
    strings = (b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
               b'spreadsheetml/2006/main">' + b"<si><t>" + b"A" * 20_000_000 + b"</t></si></sst>")
    path = _xlsx_with(tmp_path / "inbox" / "党员信息.xlsx", replace={"xl/sharedStrings.xml": strings})
    del strings
    assert path.stat().st_size < 1_000_000
    [result] = _load_members(tmp_path, con, max_shared_strings_bytes="10MB")
    assert result.status == "rejected"
    assert "shared strings unpack to 20,000,1" in result.message and "(10,000,000)" in result.message


def test_limits_are_the_sources_to_set(tmp_path, con):
    (tmp_path / "inbox").mkdir()
    _xlsx_with(tmp_path / "inbox" / "党员信息.xlsx")
    [result] = _load_members(tmp_path, con, max_xlsx_cells=3)
    assert result.status == "rejected" and "(A1:B2, 4 cells), over max_xlsx_cells (3)" in result.message
    _xlsx_with(tmp_path / "inbox" / "党员信息2.xlsx")
    [result] = _load_members(tmp_path, con)
    assert result.status == "ok" and result.rows_landed == 1


# -- CSV read in blocks ---------------------------------------------------------------------------------


def _export(rows: int, *, damaged: bool) -> bytes:
    """A party-system export as people make them: a title, two header rows, blank lines, values over
    several lines, rows with the wrong number of fields, a 合计 row and a 制表人 line at the end."""
    lines = ["2024年党费缴纳明细表", "人员编号,姓名,缴费,缴费", ",,月份,金额"]
    for i in range(rows):
        if i % 97 == 5:
            lines.append(f"20240{i:05d},断行,2024-03")  # too few fields
        elif i % 89 == 7:
            lines.append(f'20240{i:05d},"覃丽\n(补缴)",2024-03,{i % 50}.00')  # a value over two lines
        elif i % 83 == 3:
            lines.append("")
        else:
            lines.append(f"20240{i:05d},韦小宝{i},2024-{1 + i % 12:02d},{i % 50}.50")
        if i == rows // 2:
            lines.append("小计,,,123.00")
    lines += ["合计,,,9999.00", "制表人：王芳"]
    data = ("\n".join(lines) + "\n").encode("gb18030")
    if damaged:  # two lines with bytes no encoding decodes
        data = data.replace("韦小宝17,".encode("gb18030"), b"\xff\xfe17,").replace(
            "韦小宝1201,".encode("gb18030"), b"\x80\xff1201,")
    return data


@pytest.mark.parametrize("damaged", [False, True])
def test_a_csv_read_in_small_blocks_lands_as_if_read_whole(tmp_path, monkeypatch, damaged):
    """Block boundaries anywhere (1 kB blocks: rows, quoted line breaks and multi-byte characters cut)
    change nothing: the same rows land, the same rows are set aside with the same lines and reasons."""
    import tempfile

    from connectors import Entity, Source, csv_stream
    from hub.warehouse import connect

    data = _export(3000, damaged=damaged)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the UTF-8 copy of a GB18030 file goes
    outcomes = []
    for block in (64 << 20, 1024):
        monkeypatch.setattr(csv_stream, "BLOCK", block)
        run = tmp_path / f"block-{block}"
        (run / "inbox").mkdir(parents=True)
        (run / "inbox" / "党费缴纳_2024.csv").write_bytes(data)
        entity = Entity("party", "dues", ("人员编号", "缴费_月份"),
                        {"pattern": "党费缴纳_*.csv", "header_rows": 2, "header_row": 2,
                         "footer": {"last_rows": 1, "first_cell": ["合计", "小计"]}})
        source = Source("party", "files", "", "t", {"inbox": str(run / "inbox")}, {"dues": entity})
        con = connect(run / "warehouse.duckdb")
        [result] = load_entity(con, run / "raw", source, entity)
        rows = con.execute('SELECT * EXCLUDE (_load_id, _extracted_at, _file, _row_number) FROM raw.party__dues '
                           'ORDER BY "人员编号"').fetchall()
        set_aside = con.execute("SELECT rule, detail, original_row FROM quality.quarantine ORDER BY detail").fetchall()
        outcomes.append((result.status, result.rows_read, result.rows_landed, result.rows_rejected, result.encoding,
                         rows, set_aside))
        con.close()
    whole, blocks = outcomes
    assert whole == blocks
    assert not list(scratch.iterdir()), "the transcoded copy is removed"
    status, read, landed, rejected, encoding, rows, set_aside = whole
    assert status == "ok" and read == landed + rejected and encoding == "gb18030"
    rules = [r[0] for r in set_aside]
    assert rules.count("footer_row") == 3 and rules.count("wrong_field_count") == 31
    assert rules.count("undecodable_bytes") == (2 if damaged else 0)
    assert any("footer row '制表人：王芳'" in d for _, d, _ in set_aside)
    file_lines = data.decode("gb18030", errors="replace").split("\n")
    assert f"line {file_lines.index('合计,,,9999.00') + 1}: footer row '合计'" in [d.split(" ", 1)[1] for _, d, _ in set_aside]
    short = [i + 1 for i, line in enumerate(file_lines) if "断行" in line]
    assert sorted(int(d.split(" line ")[1].split(":")[0]) for r, d, _ in set_aside if r == "wrong_field_count") == short
    assert ("2024000096", "覃丽\n(补缴)") in [(r[0], r[1]) for r in rows]
