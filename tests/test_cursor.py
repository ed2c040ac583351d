"""The load's cursor: compared in the value's own type, never moved by a value from the future, and a
cursor field that no record carries fails the load instead of re-reading everything forever."""

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors.base import SourceError
from connectors.config import Entity
from connectors.cursor import CursorTracker, parse_tolerance

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def _entity(ctype="string", field="updated_at"):
    return Entity("src", "things", ("id",), {}, cursor_field=field, cursor_type=ctype)


def _track(entity, pages, before=None):
    tracker = CursorTracker(entity, before, now=NOW)
    for page in pages:
        tracker.observe(pa.table(page))
    return tracker


def test_iso_text_cursor_skips_future_values_and_reports_their_keys():
    t = _track(_entity(), [{"id": ["a", "b", "c"],
                            "updated_at": ["2026-12-01T08:00:00Z", "2099-01-01T00:00:00Z", "2026-12-02 09:30:00"]}])
    assert t.result() == "2026-12-02 09:30:00"
    [f] = t.findings
    assert (f.kind, f.record_key, f.field, f.value) == ("cursor_in_future", "b", "updated_at", "2099-01-01T00:00:00Z")


def test_tolerance_admits_a_value_just_ahead_of_the_clock():
    soon = (NOW + dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    t = _track(_entity(), [{"id": ["a"], "updated_at": [soon]}])
    assert t.result() == soon and not t.findings


def test_epoch_ms_text_compares_as_numbers_not_text():
    # As text "999..." > "1700..."; as numbers the larger epoch wins.
    t = _track(_entity("epoch_ms"), [{"id": ["a", "b"], "updated_at": ["999999999999", "1764000000000"]}])
    assert t.result() == "1764000000000"
    t = _track(_entity("epoch_ms"), [{"id": ["a", "b"], "updated_at": ["1764000000000", "4102444800000"]}])
    assert t.result() == "1764000000000" and [f.record_key for f in t.findings] == ["b"]


def test_plain_int_sequence_has_no_future_check():
    t = _track(_entity("int"), [{"id": ["a", "b"], "updated_at": ["9", "10"]}])
    assert t.result() == "10" and not t.findings


def test_typed_columns_compare_as_their_type():
    tz = pa.array([dt.datetime(2026, 11, 30, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, tzinfo=dt.UTC)],
                  pa.timestamp("us", tz="UTC"))
    t = _track(_entity(), [{"id": pa.array([1, 2]), "updated_at": tz}])
    assert t.result() == "2026-11-30T00:00:00+00:00" and [f.record_key for f in t.findings] == ["2"]
    dec = pa.array([Decimal("10.50"), Decimal("9.75")], pa.decimal128(6, 2))
    assert _track(_entity(), [{"id": [1, 2], "updated_at": dec}]).result() == "10.50"


def test_the_cursor_never_moves_back_behind_the_stored_one():
    t = _track(_entity("int"), [{"id": ["a"], "updated_at": ["5"]}], before="7")
    assert t.result() == "7"
    naive = pa.array([dt.datetime(2026, 1, 1, 8)], pa.timestamp("ms"))
    assert _track(_entity(), [{"id": [1], "updated_at": naive}], before="2026-02-01T00:00:00").result() == \
        "2026-02-01T00:00:00"


def test_a_cursor_field_no_record_carries_fails_the_load():
    t = _track(_entity(field="modified"), [{"id": ["a"], "updated_at": ["2026-01-01"]}])
    with pytest.raises(SourceError, match="cursor_field 'modified' is in none of the 1 record"):
        t.result()
    # An empty load says nothing about the field: the cursor stays.
    assert _track(_entity(field="modified"), [], before="x").result() == "x"


def test_a_declared_int_cursor_holding_text_is_one_clear_error():
    with pytest.raises(SourceError, match="declared int but holds 'yesterday'"):
        _track(_entity("int"), [{"id": ["a"], "updated_at": ["yesterday"]}])


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), (120, 120)])
def test_tolerances(text, seconds):
    assert parse_tolerance(text).total_seconds() == seconds
    with pytest.raises(ValueError, match="not a duration"):
        parse_tolerance("soon")
