"""to_xml / to_json / from_json: lossless round trips, schema-valid output, strict refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import xmlschema
from lxml import etree

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
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    from_json,
    parse_cap,
    to_json,
    to_xml,
)
from broadcaster.errors import CapError
from tests.conftest import CAP_DATA, REPO

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
ROUND_TRIP = sorted(
    str(path.relative_to(CAP_DATA / "samples"))
    for folder in ("valid", "cap11", "signed")
    for path in (CAP_DATA / "samples" / folder).glob("*.xml")
)


@pytest.fixture(scope="module")
def oasis_schema() -> xmlschema.XMLSchema:
    """The official OASIS schema, read by an implementation independent of ours."""
    return xmlschema.XMLSchema(str(CAP_DATA / "CAP-v1.2.xsd"))


def sample_alert() -> Alert:
    beijing = timezone(timedelta(hours=8))
    return Alert(
        identifier="CN-150900-20240701-0001",
        sender="warn@ulanqab.example.cn",
        sent=datetime(2024, 7, 1, 8, 0, tzinfo=beijing),
        status=Status.EXERCISE,
        msg_type=MsgType.UPDATE,
        scope=Scope.RESTRICTED,
        restriction="county officers",
        codes=["drill-2024"],
        note="演练",
        references=[
            Reference("warn@ulanqab.example.cn", "CN-150900-1", "2024-07-01T07:00:00+08:00")
        ],
        incidents="flood-2024-07",
        infos=[
            Info(
                language="zh-CN",
                categories=[Category.MET, Category.SAFETY],
                event="暴雨",
                response_types=[ResponseType.EVACUATE, ResponseType.ALL_CLEAR],
                urgency=Urgency.IMMEDIATE,
                severity=Severity.SEVERE,
                certainty=Certainty.LIKELY,
                audience="公众",
                event_codes=[NamedValue("GB", "11B03")],
                effective=datetime(2024, 7, 1, 8, 0, tzinfo=beijing),
                onset=datetime(2024, 7, 1, 9, 0, tzinfo=beijing),
                expires=datetime(2024, 7, 1, 20, 0, tzinfo=UTC),
                sender_name="乌兰察布市气象台",
                headline="暴雨橙色预警",
                description="预计未来6小时\n降雨量将达50毫米以上 & <注意>",
                instruction="转移到高处",
                web="https://example.cn/a/1",
                contact="0474-12379",
                parameters=[NamedValue("colour", "Orange"), NamedValue("level", "Ⅱ")],
                resources=[
                    Resource(
                        resource_desc="audio",
                        mime_type="audio/mpeg",
                        size=1234,
                        uri="https://example.cn/a/1.mp3",
                        deref_uri="AAEC",
                        digest="a" * 40,
                    )
                ],
                areas=[
                    Area(
                        area_desc="集宁区",
                        polygons=[
                            Polygon(((41.0, 113.0), (41.1, 113.0), (41.1, 113.2), (41.0, 113.0)))
                        ],
                        circles=[Circle(41.03, 113.1, 12.5)],
                        geocodes=[NamedValue("GB/T 2260", "150902000000")],
                        altitude=1000.0,
                        ceiling=2500.5,
                    )
                ],
            )
        ],
    )


@pytest.fixture(scope="module")
def extended_schema() -> xmlschema.XMLSchema:
    """The stricter variant: what we write must meet it too."""
    return xmlschema.XMLSchema(str(CAP_DATA / "CAP-v1.2-extended.xsd"))


def test_shipped_schema_is_the_oasis_file_the_tests_hold() -> None:
    # serialize.py validates what it writes against its own copy; the tests' copy is the oracle.
    shipped = REPO / "broadcaster" / "cap" / "schema"
    assert (shipped / "CAP-v1.2.xsd").read_bytes() == (CAP_DATA / "CAP-v1.2.xsd").read_bytes()


@pytest.mark.parametrize("relative", ROUND_TRIP)
def test_sample_round_trip_is_lossless_and_schema_valid(
    relative: str, oasis_schema: xmlschema.XMLSchema, extended_schema: xmlschema.XMLSchema
) -> None:
    parsed = parse_cap((CAP_DATA / "samples" / relative).read_bytes())
    xml = to_xml(parsed.alert)
    oasis_schema.validate(xml.decode())
    extended_schema.validate(xml.decode())
    again = parse_cap(xml)
    assert again.version == "1.2"
    assert again.alert == parsed.alert
    # What a document lacks stays a recommendation; nothing written is an error.
    assert {p.rule for p in again.problems} <= {"expires-recommended", "instruction-recommended"}
    assert from_json(json.loads(json.dumps(to_json(parsed.alert)))) == parsed.alert


def test_full_alert_round_trips_and_validates(
    oasis_schema: xmlschema.XMLSchema, extended_schema: xmlschema.XMLSchema
) -> None:
    alert = sample_alert()
    xml = to_xml(alert)
    oasis_schema.validate(xml.decode())
    extended_schema.validate(xml.decode())
    assert parse_cap(xml).alert == alert
    assert from_json(to_json(alert)) == alert


def test_output_form() -> None:
    xml = to_xml(sample_alert())
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(xml)
    assert root.tag == f"{{{CAP12}}}alert" and root.prefix is None
    names = [etree.QName(child).localname for child in root]
    assert names == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "restriction", "code",
        "note", "references", "incidents", "info",
    ]  # fmt: skip
    text = xml.decode()
    assert "<sent>2024-07-01T08:00:00+08:00</sent>" in text
    assert "<expires>2024-07-01T20:00:00-00:00</expires>" in text
    assert "+00:00" not in text and "Z<" not in text
    assert "<polygon>41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0</polygon>" in text
    assert "<circle>41.03,113.1 12.5</circle>" in text


def test_json_form_uses_cap_element_names() -> None:
    document = to_json(sample_alert())
    assert document["msgType"] == "Update"
    assert document["sent"] == "2024-07-01T08:00:00+08:00"
    assert document["references"] == (
        "warn@ulanqab.example.cn,CN-150900-1,2024-07-01T07:00:00+08:00"
    )
    info = document["info"][0]
    assert info["category"] == ["Met", "Safety"]
    assert info["responseType"] == ["Evacuate", "AllClear"]
    assert info["eventCode"] == [{"valueName": "GB", "value": "11B03"}]
    area = info["area"][0]
    assert area["polygon"] == ["41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0"]
    assert area["circle"] == ["41.03,113.1 12.5"]
    assert area["geocode"] == [{"valueName": "GB/T 2260", "value": "150902000000"}]
    assert area["altitude"] == 1000.0
    assert info["resource"][0]["size"] == 1234
    assert "source" not in document and "addresses" not in document
    json.dumps(document)


def test_to_xml_refuses_invalid_alert_strictly() -> None:
    alert = sample_alert()
    alert.identifier = "has space"
    with pytest.raises(CapError) as caught:
        to_xml(alert)
    assert ("/alert/identifier", "identifier-chars") in {
        (p.path, p.rule) for p in caught.value.problems
    }
    alert = sample_alert()
    alert.infos[0].areas[0].polygons[0] = Polygon(((41.0, 113.0), (41.1, 113.0), (41.1, 113.2)))
    with pytest.raises(CapError) as caught:
        to_xml(alert)
    # Repairable on intake, but nothing is ever written unrepaired.
    assert ("/alert/info[1]/area[1]/polygon[1]", "polygon-closed", "error") in {
        (p.path, p.rule, p.severity) for p in caught.value.problems
    }
    alert = sample_alert()
    alert.sent = datetime(2024, 7, 1, 8, 0)
    with pytest.raises(CapError):
        to_xml(alert)


def test_to_xml_refuses_wrong_types_and_unsafe_text() -> None:
    alert = sample_alert()
    alert.infos[0].urgency = "Soon"  # type: ignore[assignment]
    alert.infos[0].headline = "bell\x07"
    with pytest.raises(CapError) as caught:
        to_xml(alert)
    found = {(p.path, p.rule) for p in caught.value.problems}
    assert ("/alert/info[1]/urgency", "enumeration") in found
    assert ("/alert/info[1]/headline", "xml-chars") in found


def test_from_json_reports_paths_with_cap_names() -> None:
    document = to_json(sample_alert())
    del document["scope"]
    document["info"][0]["urgency"] = "Soon"
    document["info"][0]["area"][0]["polygon"] = ["41.0;113.0"]
    document["info"][0]["area"][0]["colour"] = "red"
    document["info"][0]["expires"] = "tomorrow"
    with pytest.raises(CapError) as caught:
        from_json(document)
    found = {(p.path, p.rule) for p in caught.value.problems}
    assert {
        ("/alert/scope", "required"),
        ("/alert/info[1]/urgency", "enumeration"),
        ("/alert/info[1]/area[1]/polygon[1]", "polygon-form"),
        ("/alert/info[1]/area[1]/colour", "unexpected-element"),
        ("/alert/info[1]/expires", "cap-time"),
    } <= found


@pytest.mark.parametrize("document", [[], "alert", {"info": "x"}, {"info": [3]}])
def test_from_json_rejects_wrong_shapes(document: object) -> None:
    with pytest.raises(CapError) as caught:
        from_json(document)  # type: ignore[arg-type]
    assert caught.value.problems


def test_schema_check_catches_what_rules_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were a model rule ever missing, the OASIS schema check must still refuse the output.
    monkeypatch.setattr("broadcaster.cap.serialize.validate_alert", lambda alert: [])
    alert = sample_alert()
    alert.infos[0].urgency = "Soon"  # type: ignore[assignment]
    with pytest.raises(CapError) as caught:
        to_xml(alert)
    (problem,) = caught.value.problems
    assert (problem.rule, problem.path) == ("schema", "/alert/info[1]/urgency")
    assert "Soon" in problem.message
