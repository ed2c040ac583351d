"""Exports made by people, unlike the simulated campus's clean ones, configured through sources.yaml alone.

A title above the header, two header rows under merged cells, 合计/总计/制表人 rows at the end, rows with
too few or too many fields, and bad files (a link out of the inbox, a missing required column, a file
that fails while landing) next to good ones. Each test compares every key in raw with the file's data
rows and checks rows_read = rows_landed + rows_skipped + rows_rejected for every load.
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from connectors import ConfigError, load_entity, load_sources


def _sources(tmp_path: Path, inbox: Path, entity_yaml: str) -> tuple:
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  party:\n    kind: files\n    inbox: {inbox}\n    entities:\n      e:\n"
                    + "".join(f"        {line}\n" for line in entity_yaml.strip().splitlines()), encoding="utf-8")
    source = load_sources(path)["party"]
    return source, source.entities["e"]


def _conserved(con) -> None:
    """Every load: rows_read = rows_landed + rows_skipped + rows_rejected; an ok load's rejected rows
    are exactly its raw quarantine rows."""
    audits = con.execute("SELECT load_id, status, rows_read, rows_landed, rows_skipped, rows_rejected "
                         "FROM quality.load_audit").fetchall()
    assert audits
    for load_id, status, read, landed, skipped, rejected in audits:
        assert read == landed + skipped + rejected, (load_id, status, read, landed, skipped, rejected)
        if status == "ok":
            quarantined = con.execute("SELECT count(*) FROM quality.quarantine WHERE load_id = ? AND stage = 'raw'",
                                      [load_id]).fetchone()[0]
            assert quarantined == rejected, (load_id, quarantined, rejected)


def _raw(con, columns: list[str], table: str = "party__e") -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f"SELECT {cols} FROM raw.{table} ORDER BY _file, _row_number").fetchall()


def _quarantine(con, rule: str | None = None) -> list[tuple[str, str, dict]]:
    rows = con.execute("SELECT rule, detail, original_row FROM quality.quarantine WHERE stage = 'raw' "
                       "AND (? IS NULL OR rule = ?) ORDER BY detail", [rule, rule]).fetchall()
    return [(r, d, json.loads(o)) for r, d, o in rows]


# -- XLSX: title, two header rows under merged cells, 合计 and signature rows -----------------------
def _members_workbook(path: Path) -> list[tuple]:
    """The workbook as a party secretary makes it; returns its data rows as they should land."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "2024年度党员信息统计表"
    ws.merge_cells("A1:G1")
    for cell, text in {"A2": "序号", "B2": "人员编号", "C2": "姓名", "D2": "联系方式", "F2": "党费",
                       "D3": "手机", "E3": "邮箱", "F3": "应缴", "G3": "实缴"}.items():
        ws[cell] = text
    for rng in ("A2:A3", "B2:B3", "C2:C3", "D2:E2", "F2:G2"):
        ws.merge_cells(rng)
    data = [(1, "2024010101", "韦小宝", "13800000001", "wxb@example.cn", 0.2, 0.2),
            (2, "0012", "覃　丽", None, "ql@example.cn", 45.5, 45),
            (3, "2024010103", "合计划", "13800000003", None, 12, 0)]  # a name that merely starts with 合计
    for row in data:
        ws.append(row)
    ws.append([])  # a blank row before the footer
    ws.append(["合 计", None, None, None, None, 57.7, 45.2])
    ws.merge_cells("A8:C8")
    ws.append(["制表人：王芳", None, None, "审核人：李明"])
    ws.append(["填表日期:", "2024-12-01"])
    wb.save(path)
    return [(str(n), key, name, phone, mail, f"{due:g}", f"{paid:g}") for n, key, name, phone, mail, due, paid in data]


def test_xlsx_with_title_merged_two_row_header_and_footer(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = _members_workbook(inbox / "党员信息_2024.xlsx")
    source, entity = _sources(tmp_path, inbox, """
pattern: "党员信息_*.xlsx"
primary_key: 人员编号
required_columns: [联系方式_手机, 党费_实缴]
header_row: 2
header_rows: 2
""")
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "ok", result.message
    columns = ["序号", "人员编号", "姓名", "联系方式_手机", "联系方式_邮箱", "党费_应缴", "党费_实缴"]
    assert [c for c in con.execute("SELECT * FROM raw.party__e LIMIT 0").fetchdf().columns
            if not c.startswith("_")] == columns
    assert _raw(con, columns) == expected  # every key, every value, nothing from the footer
    footers = {f[2]["row"]: f for f in _quarantine(con, "footer_row")}
    # Each footer row kept as read, with its sheet row, under the names of its columns.
    assert {row: f[2]["values"] for row, f in footers.items()} == {
        8: {"序号": "合 计", "党费_应缴": "57.7", "党费_实缴": "45.2"},
        9: {"序号": "制表人：王芳", "联系方式_手机": "审核人：李明"},
        10: {"序号": "填表日期:", "人员编号": "2024-12-01"},
    }
    assert all(f[2]["file"] == "党员信息_2024.xlsx" and f"row {row}" in f[1] for row, f in footers.items())
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (6, 3, 3)
    _conserved(con)


# -- CSV: GBK, a title, two header lines, a multi-line value, 总计 and a signature line -----------------
def test_gbk_csv_with_title_two_header_lines_and_total(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = [
        "党费缴纳明细表（2024年3月）,,,,,",  # the title, as Excel saves a merged title row
        ",,,,,",  # an empty row under it
        "人员编号,姓名,缴费信息,,,备注",  # 缴费信息 merged over three columns; 人员编号, 姓名, 备注 over two rows
        ",,缴费月份,应缴金额,实缴金额,",
        "2024010101,韦小宝,2024-03,0.2,0.2,",
        '0012,莫德明,2024-03,45.5,45.5,"补缴\r\n上月"',  # a value over two lines
        "2024010103,覃丽,2024-03,0.4,,未缴",
        "总计,,,46.1,45.7,",
        "制表人：王芳",  # one field: a footer, not a broken row
    ]
    (inbox / "党费缴纳_202403.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    source, entity = _sources(tmp_path, inbox, """
pattern: "党费缴纳_*.csv"
primary_key: [人员编号, 缴费信息_缴费月份]
skip_rows: 2
header_rows: 2
""")
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "ok" and result.encoding == "gb18030", result.message
    columns = ["人员编号", "姓名", "缴费信息_缴费月份", "缴费信息_应缴金额", "缴费信息_实缴金额", "备注"]
    assert _raw(con, columns) == [
        ("2024010101", "韦小宝", "2024-03", "0.2", "0.2", None),
        ("0012", "莫德明", "2024-03", "45.5", "45.5", "补缴\r\n上月"),
        ("2024010103", "覃丽", "2024-03", "0.4", None, "未缴"),
    ]
    footers = {f[2]["line"]: f for f in _quarantine(con, "footer_row")}
    # Line numbers as in the file: the two-line value moves the total to line 9.
    assert sorted(footers) == [9, 10]
    assert footers[9][2]["values"] == {"人员编号": "总计", "缴费信息_应缴金额": "46.1", "缴费信息_实缴金额": "45.7"}
    assert footers[10][2]["text"] == "制表人：王芳" and "line 10" in footers[10][1]
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (5, 3, 2)
    _conserved(con)


# -- CSV: rows with too few and too many fields --------------------------------------------------------
def test_short_and_long_rows_are_quarantined_by_line_and_the_rest_lands(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = ("人员编号,姓名,备注\n"
            '1,甲,"第一行\n第二行"\n'  # lines 2-3
            "2,乙\n"  # line 4: short
            "3,丙,x,多出来的\n"  # line 5: long
            "\n"  # line 6: blank, no row
            '4,"丁,戊",y\n'  # line 7: a comma inside quotes is no extra field
            "5\n"  # line 8: short
            '6,"引号""内",z\n')  # line 9
    (inbox / "名单_1.csv").write_text(text, encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "名单_*.csv"\nprimary_key: 人员编号')
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "ok", result.message
    assert _raw(con, ["人员编号", "姓名", "备注"]) == [
        ("1", "甲", "第一行\n第二行"), ("4", "丁,戊", "y"), ("6", '引号"内', "z")]
    bad = _quarantine(con, "wrong_field_count")
    assert [(o["line"], o["text"]) for _, _, o in sorted(bad, key=lambda b: b[2]["line"])] == [
        (4, "2,乙"), (5, "3,丙,x,多出来的"), (8, "5")]
    assert all(o["file"] == "名单_1.csv" for _, _, o in bad)
    assert any("line 5: 4 field(s), the header has 3" in d for _, d, _ in bad)
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (6, 3, 3)
    _conserved(con)


def test_line_numbers_hold_across_reader_blocks_and_undecodable_lines(tmp_path, con):
    """A file larger than Arrow's read block, with multi-line values, short rows and a line that is
    not GBK: every quarantined line number is the line in the file."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines, expected, short = ["编号,姓名,说明"], [], []
    for i in range(1, 100_001):
        if i % 19_000 == 0:
            lines.append(f"{i},短行")
            short.append((len(lines), f"{i},短行"))
        elif i % 7 == 0:
            lines.extend([f'{i},名{i},"两行', '说明"'])
            expected.append((str(i), f"名{i}", "两行\r\n说明"))
        else:
            lines.append(f"{i},名{i},说明{i}")
            expected.append((str(i), f"名{i}", f"说明{i}"))
    data = "\r\n".join(lines).encode("gbk") + b"\r\n"
    assert len(data) > 2 << 20
    broken_at = len(lines) + 1
    data += "100001,坏".encode("gbk") + b"\x81\x20" + ",x\r\n".encode("gbk")
    data += "100002,好,最后\r\n100003,短\r\n".encode("gbk")  # lines after the undecodable one keep their numbers
    expected.append(("100002", "好", "最后"))
    short.append((broken_at + 2, "100003,短"))
    (inbox / "名单_big.csv").write_bytes(data)
    source, entity = _sources(tmp_path, inbox, 'pattern: "名单_*.csv"\nprimary_key: 编号')
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "ok", result.message
    assert _raw(con, ["编号", "姓名", "说明"]) == expected
    bad = sorted((o["line"], o["text"]) for _, _, o in _quarantine(con, "wrong_field_count"))
    assert bad == short
    [(_, detail, original)] = _quarantine(con, "undecodable_bytes")
    assert original["line"] == broken_at and f"line {broken_at}" in detail
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (len(expected) + len(short) + 1,
                                                                            len(expected), len(short) + 1)
    _conserved(con)


# -- bad files next to good ones --------------------------------------------------------------------
GOOD = "人员编号,姓名,缴费月份\n2024010101,韦小宝,2024-03\n2024010102,覃丽,2024-03\n"


def test_a_link_out_of_the_inbox_is_set_aside_and_the_good_file_loads(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text("人员编号,姓名,缴费月份\n9,机密,2024-03\n", encoding="utf-8")
    (inbox / "党费_a_link.csv").symlink_to(outside)
    (inbox / "党费_b.csv").write_text(GOOD, encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "党费_*.csv"\nprimary_key: [人员编号, 缴费月份]')
    results = load_entity(con, tmp_path / "raw", source, entity)
    assert [r.status for r in results] == ["rejected", "ok"]
    assert "outside the inbox" in results[0].message and "党费_a_link.csv" in results[0].message
    assert _raw(con, ["人员编号", "姓名"]) == [("2024010101", "韦小宝"), ("2024010102", "覃丽")]
    assert not list(inbox.iterdir())
    [moved] = [p for p in (tmp_path / "_rejected" / "inbox").iterdir() if not p.name.endswith(".reason.txt")]
    assert moved.is_symlink() and moved.name.endswith("党费_a_link.csv")  # the link moved, not its target
    assert outside.read_text(encoding="utf-8").endswith("机密,2024-03\n")  # the target untouched
    reason = moved.with_name(moved.name + ".reason.txt").read_text(encoding="utf-8")
    assert "党费_a_link.csv" in reason and "outside the inbox" in reason
    assert con.execute("SELECT count(*) FROM raw.party__e WHERE 姓名 = '机密'").fetchone() == (0,)
    _conserved(con)


def test_a_file_missing_a_required_column_is_set_aside(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "党费_a.csv").write_text("人员编号,姓名\n2024010199,漏列\n2024010198,漏列\n", encoding="utf-8")
    (inbox / "党费_b.csv").write_text(GOOD, encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "党费_*.csv"\nprimary_key: [人员编号, 缴费月份]')
    results = load_entity(con, tmp_path / "raw", source, entity)
    assert [r.status for r in results] == ["rejected", "ok"]
    assert "required column(s) ['缴费月份'] missing" in results[0].message
    assert (results[0].rows_read, results[0].rows_rejected) == (2, 2)  # set aside whole, every row counted
    assert _raw(con, ["人员编号", "姓名", "缴费月份"]) == [("2024010101", "韦小宝", "2024-03"),
                                                      ("2024010102", "覃丽", "2024-03")]
    rejected = tmp_path / "_rejected" / "inbox"
    [reason] = rejected.glob("*党费_a.csv.reason.txt")
    assert "党费_a.csv" in reason.read_text(encoding="utf-8") and "缴费月份" in reason.read_text(encoding="utf-8")
    assert con.execute("SELECT status, count(*) FROM quality.load_audit GROUP BY 1 ORDER BY 1").fetchall() == [
        ("ok", 1), ("rejected", 1)]
    _conserved(con)


def test_a_file_that_fails_at_landing_is_set_aside(tmp_path, con):
    """A header naming a column the raw zone keeps for itself makes DuckDB refuse the table."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "党费_a.csv").write_text("人员编号,缴费月份,_row_hash\n1,2024-03,x\n", encoding="utf-8")
    (inbox / "党费_b.csv").write_text(GOOD, encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "党费_*.csv"\nprimary_key: [人员编号, 缴费月份]')
    results = load_entity(con, tmp_path / "raw", source, entity)
    assert [r.status for r in results] == ["rejected", "ok"]
    assert _raw(con, ["人员编号", "姓名"]) == [("2024010101", "韦小宝"), ("2024010102", "覃丽")]
    # one audit row per file: the failed landing's row became the rejection
    audit = con.execute("SELECT status, rows_read, rows_landed, rows_rejected, message FROM quality.load_audit "
                        "ORDER BY started_at").fetchall()
    assert [a[:4] for a in audit] == [("rejected", 1, 0, 1), ("ok", 2, 2, 0)]
    assert audit[0][4].startswith("党费_a.csv: ") and "_rejected" in audit[0][4]
    assert list((tmp_path / "_rejected" / "inbox").glob("*党费_a.csv.reason.txt"))
    _conserved(con)


# -- the footer rule, configured ------------------------------------------------------------------------
TOTALS = "人员编号,姓名\n1,甲\n2,乙\n合计,2人\n合計,2人\n"


@pytest.mark.parametrize("footer,landed,footers", [
    (None, ["1", "2", "合計"], ["合计"]),  # the default words (simplified Chinese)
    ("footer: none", ["1", "2", "合计", "合計"], []),  # off: the total lands, as the file says
    ("footer: {first_cell: [合計]}", ["1", "2", "合计"], ["合計"]),  # the words replaced
    ("footer: {first_cell: [], last_rows: 2}", ["1", "2"], ["合计", "合計"]),  # the last rows, whatever they say
])
def test_footer_rule_is_configurable(tmp_path, con, footer, landed, footers):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "名单.csv").write_text(TOTALS, encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "名单*.csv"\nprimary_key: 人员编号\n' + (footer or ""))
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert [r[0] for r in _raw(con, ["人员编号"])] == landed
    assert sorted(o["values"]["人员编号"] for _, _, o in _quarantine(con, "footer_row")) == sorted(footers)
    assert result.rows_read == 4 and result.rows_rejected == len(footers)
    _conserved(con)


@pytest.mark.parametrize("option,message", [
    ("header_row: 0", "header_row: Input should be greater than or equal to 1, got 0"),
    ("header_rows: two", "header_rows: Input should be a valid integer"),
    ("skip_rows: -1", "skip_rows: Input should be greater than or equal to 0, got -1"),
    ("header_row: 2\nskip_rows: 1", "give header_row or skip_rows, not both"),
    ("footer: yes", "footer: Input should be a valid dictionary or instance of Footer, got True"),
    ("footer: {first_cell: 合计}", "footer.first_cell: Input should be a valid list, got '合计'"),
    ("footer: {last_row: 1}", "footer: unknown key(s) ['last_row']"),
    ("header_separator: 1", "header_separator: Input should be a valid string, got 1"),
])
def test_layout_options_are_validated_in_one_line(tmp_path, option, message):
    with pytest.raises(ConfigError) as err:
        _sources(tmp_path, tmp_path, 'pattern: "x*.csv"\nprimary_key: id\n' + option)
    assert message in str(err.value) and "sources.party.entities.e" in str(err.value)
    assert "\n" not in str(err.value)


def test_xlsx_header_without_merges_offset_table_and_unnamed_columns(tmp_path, con):
    """A header "centred across selection" (no merge, blanks to the right), the table starting in B4,
    a column with values but no header, and a header repeating a name in another file."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B1"] = "组织关系转接登记"
    ws["B3"], ws["C3"], ws["D3"] = "介绍信编号", "转出", None  # 转出 spans 转出 组织 and 日期 unmerged
    ws["C4"], ws["D4"] = "组织", "日期"
    rows = [("JS-001", "第一支部", "2024-01-05", "补"), ("JS-002", "第二支部", "2024-02-11", None)]
    for r, (key, org, day, extra) in enumerate(rows, start=5):
        ws[f"B{r}"], ws[f"C{r}"], ws[f"D{r}"], ws[f"F{r}"] = key, org, day, extra
    ws["B7"] = "小计：2"
    wb.save(inbox / "转接_1.xlsx")
    dup = openpyxl.Workbook()
    for row in (["标题"], [], ["介绍信编号", "姓名", "姓名"], [], ["JS-003", "甲", "乙"]):
        dup.active.append(row)
    dup.save(inbox / "转接_2.xlsx")
    source, entity = _sources(tmp_path, inbox, """
pattern: "转接_*.xlsx"
primary_key: 介绍信编号
header_row: 3
header_rows: 2
header_separator: "·"
""")
    first, second = load_entity(con, tmp_path / "raw", source, entity)
    assert first.status == "ok", first.message
    assert [c for c in con.execute("SELECT * FROM raw.party__e LIMIT 0").fetchdf().columns
            if not c.startswith("_")] == ["介绍信编号", "转出·组织", "转出·日期", "column_6"]
    assert _raw(con, ["介绍信编号", "转出·组织", "转出·日期", "column_6"]) == [
        ("JS-001", "第一支部", "2024-01-05", "补"), ("JS-002", "第二支部", "2024-02-11", None)]
    [(_, detail, original)] = _quarantine(con, "footer_row")
    assert original["row"] == 7 and original["values"] == {"介绍信编号": "小计：2"}
    assert second.status == "rejected" and "header names more than one column ['姓名']" in second.message
    assert (second.rows_read, second.rows_rejected) == (0, 0)  # not read: nothing counted
    _conserved(con)


def test_a_stray_quote_keeps_rows_but_says_it_cannot_place_the_line(tmp_path, con):
    """Quote parity cannot find lines when a quote sits inside an unquoted value; the quarantined row
    then names its record number after the header instead of a wrong line."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "名单_q.csv").write_text('编号,姓名\n1,张"三\n2\n3,李四\n', encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "名单_*.csv"\nprimary_key: 编号')
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert _raw(con, ["编号", "姓名"]) == [("1", '张"三'), ("3", "李四")]
    [(_, detail, original)] = _quarantine(con, "wrong_field_count")
    assert original["text"] == "2" and original["line"] is None and "record 2 after the header" in detail
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (3, 2, 1)
    _conserved(con)


def test_a_header_row_beyond_the_file_is_set_aside_with_its_reason(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "名单_short.csv").write_text("标题\n", encoding="utf-8")
    source, entity = _sources(tmp_path, inbox, 'pattern: "名单_*.csv"\nprimary_key: 编号\nheader_row: 3')
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "rejected" and "ends before row 3" in result.message
    _conserved(con)


def test_last_rows_counts_a_broken_last_line_as_a_row(tmp_path, con):
    """`last_rows: 2` with a signature line of one field at the end: the total and the signature are
    the footer, the last member is not."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "名单.csv").write_text("人员编号,姓名\n1,甲\n2,乙\n共 2 人,\n王芳 2024-12-01\n", encoding="utf-8")
    source, entity = _sources(tmp_path, inbox,
                              'pattern: "名单*.csv"\nprimary_key: 人员编号\nfooter: {first_cell: [], last_rows: 2}')
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert _raw(con, ["人员编号", "姓名"]) == [("1", "甲"), ("2", "乙")]
    footers = sorted((o["line"], o.get("values"), o.get("text")) for _, _, o in _quarantine(con, "footer_row"))
    assert footers == [(4, {"人员编号": "共 2 人"}, None), (5, None, "王芳 2024-12-01")]
    assert not _quarantine(con, "wrong_field_count")
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (4, 2, 2)
    _conserved(con)
