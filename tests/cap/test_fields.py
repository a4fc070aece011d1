"""Text forms of polygon, circle, references and decimals: exact round trips, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.cap.fields import (
    read_circle,
    read_decimal,
    read_polygon,
    read_references,
    write_circle,
    write_decimal,
    write_polygon,
    write_references,
)
from broadcaster.cap.model import Circle, Polygon

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(database=None)
@given(finite)
def test_decimal_written_without_exponent_and_read_back_exactly(number: float) -> None:
    text = write_decimal(number)
    assert "e" not in text.lower()
    assert read_decimal(text) == number


@pytest.mark.parametrize("text", ["1e5", "nan", "inf", "", "1,5", "--1", "0x10"])
def test_non_decimals_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        read_decimal(text)


def test_polygon_read_tolerates_whitespace_and_signs() -> None:
    polygon = read_polygon("\n +41.12,-117.61\t41.06,-117.47  41.04,-117.47 +41.12,-117.61 ")
    assert polygon.points[0] == (41.12, -117.61)
    assert write_polygon(polygon) == "41.12,-117.61 41.06,-117.47 41.04,-117.47 41.12,-117.61"
    assert read_polygon(write_polygon(polygon)) == polygon


@pytest.mark.parametrize("text", ["", "  ", "41,1 42", "41,1,2 1,1", "+40.85,-118.09,"])
def test_bad_polygons_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        read_polygon(text)


def test_circle_forms() -> None:
    assert read_circle(" -16.053,-173.274 0.0 ") == Circle(-16.053, -173.274, 0.0)
    assert write_circle(Circle(41.0, 113.5, 10.0)) == "41.0,113.5 10.0"
    for bad in ("41,113", "41,113 5 6", "41 113 5", "a,b 5"):
        with pytest.raises(ValueError):
            read_circle(bad)


def test_references_keep_sent_verbatim() -> None:
    text = "a@b,id-1,2024-07-01T07:00:00+08:00  c,id-2,2024-07-01T00:00:00Z"
    references = read_references(text)
    assert [r.sent for r in references] == ["2024-07-01T07:00:00+08:00", "2024-07-01T00:00:00Z"]
    assert write_references(references) == " ".join(text.split())
    for bad in ("", "a,b", "a,b,c,d", "a,,c"):
        with pytest.raises(ValueError):
            read_references(bad)


def test_polygon_model_is_comparable_by_value() -> None:
    assert Polygon(((1.0, 2.0),)) == Polygon(((1.0, 2.0),))
