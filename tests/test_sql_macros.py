"""The DuckDB macros behind normalisation, checked against python-stdnum and the domain's examples.

stdnum's ISO 7064 MOD 11-2 is the reference for the check character (stdnum.cn.ric also looks the
area code up in its own table, which is not what these tests are about)."""

import random

import pytest
from stdnum.iso7064 import mod_11_2


def _valid_id(rng: random.Random) -> str:
    body = f"45{rng.randint(0, 9999):04d}{rng.randint(1950, 2009)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" \
           f"{rng.randint(0, 999):03d}"
    return body + mod_11_2.calc_check_digit(body)


def test_check_character_agrees_with_stdnum_on_many_numbers(con):
    rng = random.Random(1)
    ids = [_valid_id(rng) for _ in range(3000)]
    broken = [i[:17] + ("0" if i[17] != "0" else "1") for i in ids[:1000]]
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS id", [ids + broken])
    ours = dict(con.execute("SELECT id, id_is_valid(id) FROM t").fetchall())
    assert all(ours[i] == mod_11_2.is_valid(i) for i in ids + broken)
    assert sum(ours.values()) == 3000


@pytest.mark.parametrize("raw,expected,valid", [
    ("360426199101010071", "360426199101010071", True),
    ("120103198806018241", "120103198806018241", True),
    ("34052419800101001x", "34052419800101001X", True),
    (" 34052419800101001X ", "34052419800101001X", True),
    ("３６０４２６１９９１０１０１００７１", "360426199101010071", True),
    ("360426199101010072", "360426199101010072", False),
    ("360426199113010071", "360426199113010071", False),
    ("", None, False),
])
def test_normalise_and_validate_domain_examples(con, raw, expected, valid):
    got, ok = con.execute("SELECT id_normalize(?), id_is_valid(id_normalize(?))", [raw, raw]).fetchone()
    assert (got, ok) == (expected, valid)


def test_fifteen_digit_upgrade_matches_stdnum(con):
    rng = random.Random(2)
    olds = [f"45{rng.randint(0, 9999):04d}{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            f"{rng.randint(0, 999):03d}" for _ in range(500)]
    rows = con.execute("SELECT o, id_normalize(o) FROM unnest(?) AS t(o)", [olds]).fetchall()
    for old, new in rows:
        body = old[:6] + "19" + old[6:]
        assert new == body + mod_11_2.calc_check_digit(body)
        assert mod_11_2.is_valid(new)


def test_gender_and_birth_date_from_the_number(con):
    assert con.execute("SELECT id_gender('360426199101010071'), id_gender('120103198806018241'), "
                       "id_birth_date('120103198806018241')::VARCHAR").fetchone() == ("1", "2", "1988-06-01")


@pytest.mark.parametrize("raw,clean", [
    ("  张　三 ", "张三"),
    ("韦 小 宝", "韦小宝"),
    ("阿依古丽・买买提", "阿依古丽·买买提"),
    ("阿依古丽．买买提", "阿依古丽·买买提"),   # the full-width full stop is a middle dot in a name, not '.'
    ("ＬＩ  Ｍｉｎｇ", "LI Ming"),
    ("覃　", "覃"),
    ("   ", None),
])
def test_name_clean(con, raw, clean):
    assert con.execute("SELECT name_clean(?)", [raw]).fetchone()[0] == clean


@pytest.mark.parametrize("raw,iso", [
    ("2023-09-01", "2023-09-01"), ("2023/9/1", "2023-09-01"), ("20230901", "2023-09-01"),
    ("2019.06.28", "2019-06-28"), ("45170", "2023-09-01"), ("45170.0", "2023-09-01"),
    ("1693526400000", "2023-09-01"), ("2024-03-05T14:30:00+08:00", "2024-03-05"),
    ("2023-09-01 10:00:00", "2023-09-01"), ("not a date", None), ("", None),
    ("2024年3月5日", "2024-03-05"), ("２０２４年３月５日", "2024-03-05"), ("2024-02-30", None), ("0000-00-00", None),
    ("20240230", None), ("0001-01-01", None), ("2024-01-3099", None),
])
def test_parse_date_any(con, raw, iso):
    got = con.execute("SELECT parse_date_any(?)::VARCHAR", [raw]).fetchone()[0]
    assert got == iso


def test_masks_keep_only_ends(con):
    assert con.execute("SELECT mask_id('450102199901010015'), mask_phone('13812345678')").fetchone() == (
        "450102************", "138****5678")


@pytest.mark.parametrize("raw,clean", [
    ("13812345678", "13812345678"), ("+86 138-1234-5678", "13812345678"), ("8613812345678", "13812345678"),
    ("138 1234 5678", "13812345678"), ("0771-1234567", None), ("12345678901", None), ("", None), (None, None),
])
def test_phone_clean(con, raw, clean):
    assert con.execute("SELECT phone_clean(?)", [raw]).fetchone()[0] == clean
