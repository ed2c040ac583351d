"""One semantics for expectations (issue 16 point 8): every expectation type the suites use is run through
Great Expectations (whole table and chunked) and through the DuckDB SQL translator on the same data, with
violations injected, and the engines must find the same unexpected and missing counts and the same verdict.

The data is small and synthetic but typed like the warehouse (text, integers, doubles, dates, timestamps
with and without a time zone) and holds the values where engines tend to part: NULLs, boundaries, strict
bounds, multi-byte text, full-width digits, a trailing newline, copies of keys across chunks, partially
null compound keys. The real regular expressions and value sets of the suites are also run, each on text
built to tempt them.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import duckdb
import pytest

from quality.expectations import (
    SQL_ONLY,
    SUPPORTED,
    Expectation,
    Suite,
    _GxRunner,
    load_suites,
    run_suite,
    value_set,
)

ROWS = 5000  # more than two chunks of 2048 rows for the chunked engine
CHUNK_ROWS = 2048


def _exp(etype: str, severity: str = "error", **kwargs) -> Expectation:
    return Expectation(etype, kwargs, severity)


TYPED = [
    _exp("expect_column_values_to_not_be_null", column="code"),
    _exp("expect_column_values_to_not_be_null", column="n"),
    _exp("expect_column_values_to_not_be_null", column="on_day"),
    _exp("expect_column_values_to_not_be_null", column="at_tz"),
    _exp("expect_column_values_to_be_in_set", column="code", value_set=["01", "02", "03", "壮"]),
    _exp("expect_column_values_to_be_in_set", column="flag", value_set=["true", "false"], mostly=0.9),
    _exp("expect_column_values_to_be_between", column="n", min_value=0, max_value=100),
    _exp("expect_column_values_to_be_between", column="x", min_value=0, max_value=30, strict_min=True),
    _exp("expect_column_values_to_be_between", column="y", min_value=0, max_value=10, strict_max=True),
    _exp("expect_column_values_to_be_between", column="m", min_value=0),
    _exp("expect_column_values_to_be_between", column="on_day", min_value="1921-07-01", max_value="2035-12-31"),
    _exp("expect_column_values_to_be_between", column="at_tz", min_value="2020-01-01", max_value="2030-12-31"),
    _exp("expect_column_values_to_be_between", column="at_naive", min_value="2020-01-01", max_value="2030-12-31"),
    _exp("expect_column_value_lengths_to_be_between", column="name", min_value=2, max_value=4),
    _exp("expect_column_values_to_match_regex", column="digits", regex="^[0-9]{3}$"),
    _exp("expect_column_values_to_match_regex", column="name", regex="^[\u4e00-\u9fff·]+$", mostly=0.5),
    _exp("expect_column_values_to_match_regex", column="n", regex="^[0-9]+$"),
    _exp("expect_column_values_to_not_match_regex", column="name", regex="[0-9]"),
    _exp("expect_column_values_to_be_unique", column="key"),
    _exp("expect_column_values_to_be_unique", column="sparse_key"),
    _exp("expect_compound_columns_to_be_unique", column_list=["a", "b"]),
    _exp("expect_column_pair_values_a_to_be_greater_than_b", column_A="valid_to", column_B="valid_from"),
    _exp("expect_column_pair_values_a_to_be_greater_than_b", column_A="total", column_B="part", or_equal=True),
    _exp("expect_table_row_count_to_be_between", min_value=1, max_value=ROWS - 1),
]

# Every row i; violations at chosen i, NULLs on others, copies of keys far apart (different chunks).
TYPED_SQL = f"""
CREATE TABLE warehouse.typed AS
SELECT i,
    CASE WHEN i % 97 = 0 THEN NULL WHEN i % 211 = 0 THEN '04' WHEN i = 7 THEN '' WHEN i = 8 THEN ' 01'
         WHEN i = 9 THEN '壮' ELSE '0' || (1 + i % 3) END                                   AS code,
    CASE WHEN i % 13 = 0 THEN 'yes' WHEN i % 50 = 0 THEN NULL ELSE (i % 2 = 0)::VARCHAR END   AS flag,
    CASE WHEN i % 89 = 0 THEN NULL WHEN i % 301 = 0 THEN -1 WHEN i = 5 THEN 100 WHEN i = 6 THEN 101
         ELSE i % 100 END::INTEGER                                                           AS n,
    CASE WHEN i % 400 = 0 THEN 0.0 WHEN i = 11 THEN 30.0 WHEN i = 12 THEN 30.5 WHEN i % 71 = 0 THEN NULL
         ELSE 0.5 + (i % 29) END::DOUBLE                                                     AS x,
    CASE WHEN i % 333 = 0 THEN 10 WHEN i % 91 = 0 THEN NULL ELSE i % 10 END::DECIMAL(6, 2)   AS y,
    CASE WHEN i % 250 = 0 THEN -3 ELSE i END::BIGINT                                         AS m,
    CASE WHEN i % 83 = 0 THEN NULL WHEN i = 3 THEN DATE '1921-06-30' WHEN i = 4 THEN DATE '1921-07-01'
         WHEN i = 10 THEN DATE '2035-12-31' WHEN i = 14 THEN DATE '2036-01-01'
         ELSE DATE '1990-01-01' + i END                                                       AS on_day,
    CASE WHEN i % 79 = 0 THEN NULL
         WHEN i = 15 THEN TIMESTAMPTZ '2019-12-31 23:30:00+08:00'   -- before midnight in Beijing: out
         WHEN i = 16 THEN TIMESTAMPTZ '2019-12-31 16:30:00+00:00'   -- 00:30 in Beijing: in
         WHEN i = 17 THEN TIMESTAMPTZ '2030-12-31 00:00:00+08:00'
         WHEN i = 18 THEN TIMESTAMPTZ '2030-12-31 00:00:01+08:00'   -- after the max day's midnight: out
         ELSE TIMESTAMPTZ '2024-01-01 08:00:00+08:00' + to_minutes(i) END                     AS at_tz,
    CASE WHEN i = 19 THEN TIMESTAMP '2019-12-31 23:59:59' WHEN i = 20 THEN TIMESTAMP '2031-01-01 00:00:00'
         ELSE TIMESTAMP '2024-01-01 00:00:00' + to_hours(i) END                               AS at_naive,
    CASE WHEN i % 61 = 0 THEN NULL WHEN i = 21 THEN '张' WHEN i = 22 THEN '阿卜杜拉·买买提'
         WHEN i = 23 THEN '王五1' WHEN i = 24 THEN 'Li Lei' WHEN i = 25 THEN '李 四'
         ELSE ['张三', '李四', '王小明', '欧阳娜娜'][1 + i % 4] END                            AS name,
    CASE WHEN i % 59 = 0 THEN NULL WHEN i = 26 THEN '１２３' WHEN i = 27 THEN '123' || chr(10)
         WHEN i = 28 THEN '1234' WHEN i = 29 THEN '12' WHEN i = 30 THEN ' 123' WHEN i = 31 THEN '٣٤٥'
         ELSE lpad((i % 1000)::VARCHAR, 3, '0') END                                           AS digits,
    CASE WHEN i IN (33, 4033) THEN 'K33' WHEN i IN (34, 2034, 4034) THEN 'K34' ELSE 'K' || i END AS key,
    CASE WHEN i % 3 = 0 THEN NULL WHEN i IN (35, 4035) THEN 'S35' ELSE 'S' || i END            AS sparse_key,
    CASE WHEN i % 7 = 0 THEN NULL ELSE 'a' || (i % 2000) END                                   AS a,
    CASE WHEN i % 11 = 0 THEN NULL ELSE 'b' || (i % 2000) END                                  AS b,
    DATE '2020-01-01' + (i % 500)                                                              AS valid_from,
    CASE WHEN i % 37 = 0 THEN NULL WHEN i % 101 = 0 THEN DATE '2020-01-01' + (i % 500)
         WHEN i % 103 = 0 THEN DATE '2019-06-01' ELSE DATE '2021-06-01' + (i % 500) END        AS valid_to,
    CASE WHEN i % 43 = 0 THEN NULL ELSE i % 50 END::INTEGER                                    AS total,
    CASE WHEN i % 47 = 0 THEN NULL WHEN i % 53 = 0 THEN i % 50 + 1 ELSE i % 50 END::INTEGER    AS part
FROM (SELECT range::INTEGER AS i FROM range({ROWS}))
"""

# Text that tempts a regular expression or a value set: padding, case, full-width and Arabic-Indic digits,
# a trailing newline (Python's $ matches before it, RE2's does not), separators, empty text, long text.
TEMPTING = ["", " ", "0", "00", "01", "1", "X", "x", "true", "True", "false", "2024-09-01", "2024/9/1",
            "2024-09-01T08:00:00+08:00", "2024-09-01 08:00:00", "20240901", "202409011230", "45291", "45291.0",
            "2024-2025-1", "2024-2025-3", "2024-09", "13812345678", "12345678901", "450102199901011234",
            "45010219990101123X", "45010219990101123x", "450102990101123", "ABCDEF0123456789ABCDEF0123456789",
            "abcdef0123456789abcdef0123456789", "1,234.50", "12.345", "100", "100.00", "101", "优秀", "中共党员",
            "１２３", "٣٤٥", "123\n", "\n123", "2024-09-01\n", "01 ", " 01", "0１", None]


@cache
def _runner():
    return _GxRunner(None)  # one ephemeral GX context for the module


def _suite(table: str, exps: list[Expectation]) -> Suite:
    return Suite(name=table, table=table, asset=tuple(table.split(".")), description="differential",
                 expectations=tuple(exps), path=Path(f"{table}.yaml"))


def _compare(con: duckdb.DuckDBPyConnection, suite: Suite) -> list[str]:
    """Run the suite on the three engines; every expectation on which they differ, said in words."""
    runner = _runner()
    runs = {engine: run_suite(con, suite, engine=engine, chunk_rows=CHUNK_ROWS, runner=runner)
            for engine in ("gx", "gx_chunked", "sql")}
    problems = []
    for i, exp in enumerate(suite.expectations):
        seen = {}
        for engine, result in runs.items():
            o = result.outcomes[i]
            assert o.error is None, f"{engine} {exp.id}: {o.error}"
            seen[engine] = (o.success, o.unexpected, o.result.get("missing_count"))
        if len(set(seen.values())) > 1:
            problems.append(f"{exp.id} {exp.kwargs}: {seen}")
    return problems


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute("CREATE SCHEMA warehouse; CREATE SCHEMA quality")
    c.execute("CREATE TABLE quality.check_result (asset VARCHAR, check_name VARCHAR, passed BOOLEAN, "
              "evaluated BIGINT, checked_at TIMESTAMPTZ)")
    c.execute("SET TimeZone = 'Asia/Shanghai'")
    c.execute(TYPED_SQL)
    yield c
    c.close()


def test_the_typed_cases_cover_every_expectation_type_the_suites_use():
    used = {e.type for s in load_suites().values() for e in s.expectations} - SQL_ONLY
    covered = {e.type for e in TYPED}
    assert used <= covered, f"not in the differential test: {sorted(used - covered)}"
    assert set(SUPPORTED) - SQL_ONLY == covered  # and the supported ones no suite uses yet


def test_gx_chunked_gx_and_sql_find_the_same_violations_on_typed_data(con):
    suite = _suite("warehouse.typed", TYPED)
    assert _compare(con, suite) == []
    sql = {o.expectation.id: o for o in run_suite(con, suite, engine="sql").outcomes}
    # the injected violations were found, so the agreement is not agreement on nothing
    assert sql["expect_column_values_to_be_in_set(code)"].unexpected > 20
    assert sql["expect_column_values_to_be_between(at_tz)"].unexpected == 2
    assert sql["expect_column_values_to_be_between(on_day)"].unexpected == 2
    assert sql["expect_column_values_to_match_regex(digits)"].unexpected >= 6
    assert sql["expect_column_values_to_be_unique(key)"].unexpected == 5
    assert sql["expect_compound_columns_to_be_unique(a,b)"].unexpected > 0
    assert sql["expect_column_pair_values_a_to_be_greater_than_b(valid_to,valid_from)"].unexpected > 0
    assert not sql["expect_table_row_count_to_be_between()"].success
    assert sum(not o.success for o in sql.values()) >= 15


def test_the_suites_own_patterns_and_value_sets_agree_on_tempting_text(con):
    """Each distinct regular expression and value set of the suites, on the same tempting values."""
    exps, seen = [], set()
    for suite in load_suites().values():
        for e in suite.expectations:
            if e.type in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
                key = (e.type, e.kwargs["regex"])
            elif e.type == "expect_column_values_to_be_in_set":
                key = (e.type, tuple(value_set(e)))
            else:
                continue
            if key not in seen:
                seen.add(key)
                exps.append(dataclasses.replace(e, kwargs={**e.kwargs, "column": f"c{len(exps)}"}))
    assert len(exps) > 30
    values = TEMPTING + sorted({v for e in exps if e.type.endswith("in_set") for v in value_set(e)})[:200]
    con.execute("CREATE OR REPLACE TABLE warehouse.tempting AS SELECT "
                + ", ".join(f"v AS c{i}" for i in range(len(exps)))
                + " FROM unnest(?::VARCHAR[]) t(v)", [values])
    assert _compare(con, _suite("warehouse.tempting", exps)) == []
