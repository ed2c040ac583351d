"""Code sets that must be complete: GB/T 2260 area codes (current and retired) and every GB/T 4762
political-status name each source system may send."""

from __future__ import annotations

import csv

import pytest

from models import codesets_dir
from models.build import load_code_sets
from models.gb2260 import AREA_CODE_CSV, parse, render, stdnum_loc_dat


@pytest.fixture(scope="module")
def areas() -> dict[str, dict[str, str]]:
    with AREA_CODE_CSV.open(encoding="utf-8") as f:
        return {r["code"]: r for r in csv.DictReader(f)}


def test_area_codes_are_the_source_table_as_committed():
    """The committed CSV is exactly what models/gb2260.py builds from the pinned python-stdnum table."""
    assert AREA_CODE_CSV.read_text(encoding="utf-8") == render(parse(stdnum_loc_dat().read_text(encoding="utf-8")))


def test_area_codes_cover_the_whole_country(areas):
    provinces = {c[:2] for c in areas}
    # 31 provinces, autonomous regions and municipalities, plus 台湾, 香港 and 澳门
    assert provinces == {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
                         "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
                         "65", "71", "81", "82"}
    assert all(len(c) == 6 and c.isdigit() for c in areas)
    assert len(areas) > 6000
    assert {r["level"] for r in areas.values()} == {"province", "prefecture", "county"}
    assert areas["110000"]["name"] == "北京市" and areas["450000"]["name"] == "广西壮族自治区"
    # the domain file's valid test numbers: 360426 (江西 德安县), 120103 (天津 河西区)
    assert areas["360426"]["province"] == "江西省" and areas["120103"]["name"] == "河西区"


def test_retired_codes_stay_with_their_years(areas):
    """Old ID numbers carry codes that were retired: they stay, with the last year they were in use."""
    assert areas["110103"]["name"] == "崇文区" and areas["110103"]["in_use_to"] == "2010"
    assert areas["450104"]["in_use_from"] == "1983" and areas["450104"]["in_use_to"] == "2004"
    retired = [c for c, r in areas.items() if r["in_use_to"]]
    assert len(retired) > 1000
    # a code renamed keeps one row with its latest name and every name in its history
    assert areas["120110"]["name"] == "东丽区" and "东郊区" in areas["120110"]["history"]
    # every Guangxi code of the previous (Guangxi-only) table is still there
    assert {"450102", "450111", "450127", "450181", "450320"} <= set(areas)


def test_birth_area_names_come_from_the_whole_table(con):
    load_code_sets(con)
    assert con.execute("SELECT count(*), count(DISTINCT substr(code, 1, 2)) FROM staging.cs_area_code").fetchone() \
        == (len(parse(stdnum_loc_dat().read_text(encoding="utf-8"))), 34)
    assert con.execute("SELECT name FROM staging.cs_area_code WHERE code = '110103'").fetchone() == ("崇文区",)


@pytest.mark.parametrize("system", ["hr", "student"])
def test_every_gb4762_full_and_short_name_maps(con, system):
    """HR and student affairs may send any official name, full or short, of GB/T 4762."""
    load_code_sets(con)
    with (codesets_dir / "political_status.csv").open(encoding="utf-8") as f:
        statuses = list(csv.DictReader(f))
    assert len(statuses) == 13
    mapped = dict(con.execute("SELECT source_value, code FROM staging.code_map WHERE system = ? "
                              "AND field = 'political_status'", [system]).fetchall())
    for s in statuses:
        for name in (s["name"], s["short_name"]):
            assert mapped.get(name) == s["code"], f"{system}: {name} should map to {s['code']}"
    assert mapped["中国共产主义青年团团员"] == "03" and mapped["共青团员"] == "03"
