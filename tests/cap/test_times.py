"""CAP time values: strict and tolerant reading, canonical writing, round trips."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.cap.times import format_cap_time, is_strict_cap_time, parse_cap_time

CAP_TIME_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)


def test_utc_is_written_minus_zero() -> None:
    assert format_cap_time(datetime(2024, 6, 6, 15, 15, tzinfo=UTC)) == "2024-06-06T15:15:00-00:00"


def test_offset_kept_and_microseconds_dropped() -> None:
    dt = datetime(2003, 6, 17, 14, 57, 0, 999999, tzinfo=timezone(timedelta(hours=-7)))
    assert format_cap_time(dt) == "2003-06-17T14:57:00-07:00"
    dt = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert format_cap_time(dt) == "2024-01-02T03:04:05+05:30"


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        format_cap_time(datetime(2024, 1, 1))


def test_plus_and_minus_zero_both_read_as_utc() -> None:
    plus = parse_cap_time("2010-08-31T00:09:25+00:00", strict=True)
    minus = parse_cap_time("2010-08-31T00:09:25-00:00", strict=True)
    assert plus == minus
    assert plus.utcoffset() == timedelta(0)
    assert format_cap_time(plus) == "2010-08-31T00:09:25-00:00"


def test_offset_is_kept_on_reading() -> None:
    dt = parse_cap_time("2011-07-09T20:52:00-07:00")
    assert dt.utcoffset() == timedelta(hours=-7)
    assert dt.astimezone(UTC) == datetime(2011, 7, 10, 3, 52, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2024-06-06T15:15:00Z", "2024-06-06T15:15:00.250-00:00"])
def test_z_and_fractions_strict_versus_tolerant(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cap_time(text, strict=True)
    tolerant = parse_cap_time(text)
    assert tolerant == datetime(2024, 6, 6, 15, 15, tzinfo=UTC)
    assert tolerant.microsecond == 0
    assert not is_strict_cap_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-06-06T15:15:00",
        "2024-06-06 15:15:00-00:00",
        "2024-02-30T15:15:00-00:00",
        "2024-06-06T25:15:00-00:00",
        "2024-06-06T15:15:00+24:00",
        "2024-06-06T15:15:00+14:30",  # beyond XML Schema's ±14:00
        "2024-06-06T15:15:00-23:59",
        "9999-12-31T10:00:00-12:00",  # past the last year any zone can show
        "0001-01-01T00:00:00+08:00",
        "２０２４-06-06T15:15:00+08:00",  # digits other than ASCII ones
        "yesterday",
        "",
    ],
)
def test_malformed_times_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cap_time(text)


@settings(database=None)
@given(aware_datetimes)
def test_format_is_always_cap_form_and_round_trips(dt: datetime) -> None:
    text = format_cap_time(dt)
    assert CAP_TIME_FORM.fullmatch(text), text
    assert "Z" not in text and "." not in text
    if dt.utcoffset() == timedelta(0):
        assert text.endswith("-00:00")
    back = parse_cap_time(text, strict=True)
    assert back == dt.replace(microsecond=0)
    assert back.utcoffset() == dt.utcoffset()
    assert format_cap_time(back) == text
