"""File drops: GBK and UTF-8 CSV, a corrupt byte, XLSX, the same file twice, names escaping the inbox."""

from pathlib import Path

import openpyxl
import pytest

from connectors import load_entity
from connectors.config import Entity, Source

HEADER = "人员编号,姓名,缴费月份,实缴金额\n"
ROWS = ["2024010101,韦小宝,2024-03,0.2\n", "2024010102,覃　丽,2024-03,0.2\n", "19960012,莫德明,2024-03,45.5\n"]


def _source(inbox: Path, pattern: str, pk=("人员编号", "缴费月份")) -> tuple[Source, Entity]:
    entity = Entity("party", "dues", tuple(pk), {"pattern": pattern})
    return Source("party", "files", "", "team:test", {"inbox": str(inbox)}, {"dues": entity}), entity


def _rows(con, table="party__dues"):
    return con.execute(f'SELECT "人员编号", "姓名", "实缴金额" FROM raw.{table} ORDER BY 1').fetchall()


@pytest.mark.parametrize("encoding,expected", [("gbk", "gb18030"), ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig")])
def test_csv_in_each_encoding_lands_as_text(tmp_path, con, encoding, expected):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "党费缴纳_2024.csv").write_bytes((HEADER + "".join(ROWS)).encode(encoding))
    source, entity = _source(inbox, "党费缴纳_*.csv")
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.encoding == expected
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (3, 3, 0)
    assert _rows(con)[0] == ("19960012", "莫德明", "45.5")  # text as written: no float, no lost zeros
    assert not list(inbox.iterdir()), "a loaded file is archived out of the inbox"


def test_gbk_file_really_is_gbk():
    data = (HEADER + ROWS[0]).encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_corrupt_byte_quarantines_that_line_and_loads_the_rest(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = [r.encode("gbk") for r in ROWS]
    bad = "2024010103,黄".encode("gbk") + b"\x81\x20" + ",2024-03,0.2\n".encode("gbk")  # 0x81 0x20 is no GBK
    (inbox / "党费缴纳_2024.csv").write_bytes(HEADER.encode("gbk") + good[0] + bad + good[1] + good[2])
    source, entity = _source(inbox, "党费缴纳_*.csv")
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert (result.rows_read, result.rows_landed, result.rows_rejected) == (4, 3, 1)
    rule, detail = con.execute("SELECT rule, detail FROM quality.quarantine WHERE stage = 'raw'").fetchone()
    assert rule == "undecodable_bytes" and "line 3" in detail and "党费缴纳_2024.csv" in detail


def test_same_content_twice_is_loaded_once(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    payload = (HEADER + "".join(ROWS)).encode("gbk")
    (inbox / "党费缴纳_2024.csv").write_bytes(payload)
    source, entity = _source(inbox, "党费缴纳_*.csv")
    load_entity(con, tmp_path / "raw", source, entity)
    (inbox / "党费缴纳_2024_again.csv").write_bytes(payload)  # re-dropped under another name
    [again] = load_entity(con, tmp_path / "raw", source, entity)
    assert again.status == "skipped" and "党费缴纳_2024_again.csv" in again.message and again.rows_landed == 0
    assert len(_rows(con)) == 3
    assert not list(inbox.iterdir()), "the repeat is archived too"
    assert con.execute("SELECT status FROM quality.load_audit ORDER BY started_at").fetchall() == [("ok",), ("skipped",)]


def test_xlsx_with_dates_and_numbers(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["人员编号", "姓名", "入党日期", "委员人数"])
    import datetime as dt
    ws.append(["19960012", "莫德明", dt.date(2019, 6, 28), 5])
    ws.append(["2024010101", "韦小宝", 43644, 0])  # an Excel serial number stored as a number
    ws.append(["2024010102", "覃丽", "2019.06.28", None])
    wb.save(inbox / "党员信息.xlsx")
    entity = Entity("party", "members", ("人员编号",), {"pattern": "党员信息*.xlsx"})
    source = Source("party", "files", "", "t", {"inbox": str(inbox)}, {"members": entity})
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.rows_landed == 3 and result.encoding == "xlsx"
    got = con.execute('SELECT "入党日期", "委员人数", parse_date_any("入党日期")::VARCHAR FROM raw.party__members '
                      'ORDER BY "人员编号"').fetchall()
    assert got == [("2019-06-28", "5", "2019-06-28"), ("43644", "0", "2019-06-28"), ("2019.06.28", None, "2019-06-28")]


def test_unreadable_file_is_set_aside_with_its_reason(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "党员信息.xlsx").write_bytes(b"this is not a zip file")
    entity = Entity("party", "members", ("人员编号",), {"pattern": "党员信息*.xlsx"})
    source = Source("party", "files", "", "t", {"inbox": str(inbox)}, {"members": entity})
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "rejected" and "not a readable XLSX" in result.message
    reasons = list((tmp_path / "_rejected" / "inbox").glob("*.reason.txt"))
    assert len(reasons) == 1 and "党员信息.xlsx" in reasons[0].name
    assert con.execute("SELECT status FROM quality.load_audit").fetchone() == ("rejected",)


def test_a_link_out_of_the_inbox_is_refused(tmp_path, con):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text(HEADER + ROWS[0], encoding="utf-8")
    (inbox / "党费缴纳_x.csv").symlink_to(outside)
    source, entity = _source(inbox, "党费缴纳_*.csv")
    [result] = load_entity(con, tmp_path / "raw", source, entity)
    assert result.status == "rejected" and "outside the inbox" in result.message
    assert not list(inbox.iterdir()) and outside.exists()
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'party__dues'"
                           ).fetchone()[0]
