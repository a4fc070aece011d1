"""Property tests: any alert the model can hold that to_xml accepts is schema-valid and
reads back identical, through XML and through JSON."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    NamedValue,
    Polygon,
    Reference,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    format_cap_time,
    from_json,
    parse_cap,
    to_json,
    to_xml,
)
from tests.conftest import CAP_DATA

SCHEMAS = [
    xmlschema.XMLSchema(str(CAP_DATA / name)) for name in ("CAP-v1.2.xsd", "CAP-v1.2-extended.xsd")
]

token = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")).filter(
        lambda c: c not in ",<&"
    ),
    min_size=1,
    max_size=12,
)
free_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1
).filter(str.strip)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([timezone(timedelta(minutes=m)) for m in (0, 480, -420, 330, -180)]),
).map(lambda dt: dt.replace(microsecond=0))
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
printable = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
pairs = st.builds(NamedValue, token, st.text(printable, max_size=8))


@st.composite
def polygons(draw: st.DrawFn) -> Polygon:
    points = draw(st.lists(st.tuples(lats, lons), min_size=3, max_size=6).filter(_encloses_an_area))
    return Polygon(tuple([*points, points[0]]))


def _encloses_an_area(points: list[tuple[float, float]]) -> bool:
    ring = [*points, points[0]]
    return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))) > 1e-6


areas = st.builds(
    Area,
    area_desc=free_text,
    polygons=st.lists(polygons(), max_size=2),
    circles=st.lists(
        st.builds(Circle, lats, lons, st.floats(min_value=0, max_value=5000)), max_size=2
    ),
    geocodes=st.lists(pairs, max_size=2),
)


@st.composite
def infos(draw: st.DrawFn, sent: datetime) -> Info:
    expires = draw(st.none() | st.integers(1, 10_000).map(lambda m: sent + timedelta(minutes=m)))
    return Info(
        language=draw(st.sampled_from(["en-US", "zh-CN", "mn", "fr"])),
        categories=draw(st.lists(st.sampled_from(Category), min_size=1, max_size=3)),
        event=draw(free_text),
        response_types=draw(st.lists(st.sampled_from(ResponseType), max_size=2)),
        urgency=draw(st.sampled_from(Urgency)),
        severity=draw(st.sampled_from(Severity)),
        certainty=draw(st.sampled_from(Certainty)),
        effective=sent if draw(st.booleans()) else None,
        expires=expires,
        headline=draw(st.none() | free_text),
        description=draw(st.none() | free_text),
        parameters=draw(st.lists(pairs, max_size=2)),
        areas=draw(st.lists(areas, max_size=2)),
    )


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    sent = draw(moments)
    msg_type = draw(st.sampled_from([MsgType.ALERT, MsgType.UPDATE, MsgType.CANCEL]))
    identifier = draw(token)
    references = []
    if msg_type is not MsgType.ALERT:
        earlier = format_cap_time(sent - timedelta(hours=1))
        # An Update or Cancel never reuses its own identifier (CAP 1.2 §3.2.1, identifier).
        references = [Reference(draw(token), f"{identifier}.earlier", earlier)]
    return Alert(
        identifier=identifier,
        sender=draw(token),
        sent=sent,
        status=draw(st.sampled_from(Status)),
        msg_type=msg_type,
        scope=Scope.PUBLIC,
        note=draw(st.none() | free_text),
        references=references,
        infos=draw(st.lists(infos(sent), max_size=2)),
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(alerts())
def test_generated_alerts_are_schema_valid_and_round_trip(alert: Alert) -> None:
    xml = to_xml(alert)
    for schema in SCHEMAS:
        schema.validate(xml.decode())
    assert parse_cap(xml).alert == alert
    assert from_json(to_json(alert)) == alert
