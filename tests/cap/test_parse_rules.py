"""parse_cap on hand-made documents: each rule reported with its element path and severity."""

from __future__ import annotations

import pytest

from broadcaster.cap import Certainty, parse_cap
from broadcaster.cap.problems import Problem
from broadcaster.cap.times import format_cap_time
from broadcaster.errors import CapError

NS12 = "urn:oasis:names:tc:emergency:cap:1.2"
NS11 = "urn:oasis:names:tc:emergency:cap:1.1"

HEAD = """<identifier>ulanqab-2024-0001</identifier>
<sender>warn@ulanqab.example.cn</sender>
<sent>2024-07-01T08:00:00+08:00</sent>
<status>Exercise</status>
<msgType>Alert</msgType>
<scope>Public</scope>"""

AREA = """<area><areaDesc>集宁区</areaDesc>
<polygon>41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0</polygon>
<geocode><valueName>GB/T 2260</valueName><value>150902000000</value></geocode></area>"""


def doc(
    head: str = HEAD,
    info: str = "",
    *,
    certainty: str = "Likely",
    area: str = AREA,
    ns: str = NS12,
    after_head: str = "",
) -> bytes:
    body = info or (
        f"<info><language>zh-CN</language><category>Met</category><event>暴雨</event>"
        f"<urgency>Immediate</urgency><severity>Severe</severity>"
        f"<certainty>{certainty}</certainty><expires>2024-07-01T20:00:00+08:00</expires>"
        f"<instruction>远离河道。</instruction>{area}</info>"
    )
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f'{declaration}<alert xmlns="{ns}">{head}{after_head}{body}</alert>'.encode()


def rejected(data: bytes | str) -> list[Problem]:
    with pytest.raises(CapError) as caught:
        parse_cap(data)
    return caught.value.problems


def pairs(problems: list[Problem]) -> set[tuple[str, str, str]]:
    return {(p.path, p.rule, p.severity) for p in problems}


def test_well_formed_document_accepted_without_problems() -> None:
    parsed = parse_cap(doc())
    assert parsed.problems == []
    assert parsed.alert.infos[0].areas[0].polygons[0].points[0] == (41.0, 113.0)
    assert parsed.raw.startswith(b"<?xml")


def test_str_input_with_foreign_encoding_declaration() -> None:
    text = doc().decode().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    assert parse_cap(text).alert.infos[0].event == "暴雨"


def test_size_limit_checked_before_parsing() -> None:
    problems = rejected(b"<" * 2000)
    assert pairs(problems) == {("/", "xml-wellformed", "error")}
    with pytest.raises(CapError) as caught:
        parse_cap(doc(), max_bytes=100)
    assert pairs(caught.value.problems) == {("/", "size-limit", "error")}


@pytest.mark.parametrize("garbage", [b"", b"\x00\xff\xfe garbage", b"<alert>", b"not xml at all"])
def test_garbage_bytes_rejected_as_not_well_formed(garbage: bytes) -> None:
    assert {p.rule for p in rejected(garbage)} == {"xml-wellformed"}


def test_wrong_root_or_namespace_rejected() -> None:
    assert pairs(rejected(b"<alert/>")) == {("/alert", "namespace", "error")}
    assert pairs(rejected(b'<feed xmlns="http://www.w3.org/2005/Atom"/>')) == {
        ("/feed", "namespace", "error")
    }


def test_misplaced_element_reported_with_path() -> None:
    head = HEAD.replace("<scope>Public</scope>", "") + "<code>x</code><scope>Public</scope>"
    assert ("/alert/scope", "element-order", "error") in pairs(rejected(doc(head)))


def test_stray_and_foreign_elements_rejected() -> None:
    found = pairs(rejected(doc(after_head="<colour>red</colour>")))
    assert ("/alert/colour", "unexpected-element", "error") in found
    found = pairs(rejected(doc(after_head='<note xmlns="urn:other">x</note>')))
    assert ("/alert/note", "unexpected-element", "error") in found


def test_attributes_and_stray_text_rejected() -> None:
    # The schema declares no attribute and no mixed content.
    found = pairs(rejected(doc(HEAD.replace("<status>", '<status lang="en">'))))
    assert ("/alert/status", "unexpected-attribute", "error") in found
    found = pairs(rejected(doc().replace(b"<event>", b"junk<event>")))
    assert ("/alert/info[1]", "unexpected-text", "error") in found
    found = pairs(rejected(doc().replace(b"<alert ", b'<alert id="1" ')))
    assert ("/alert", "unexpected-attribute", "error") in found


def test_a_size_in_other_digits_rejected() -> None:
    resource = (
        "<resource><resourceDesc>r</resourceDesc><mimeType>audio/ogg</mimeType>"
        "<size>\u0661\u0662\u0663</size></resource>"
    )
    found = pairs(rejected(doc(area=resource + AREA)))
    assert any(path.endswith("/size") for path, _, _ in found), found


def test_element_inside_plain_value_rejected() -> None:
    head = HEAD.replace("<status>Exercise</status>", "<status>Exercise<b>!</b></status>")
    assert ("/alert/status/b", "unexpected-element", "error") in pairs(rejected(doc(head)))


def test_repeated_singleton_rejected() -> None:
    head = HEAD + "<note>a</note><note>b</note>"
    assert ("/alert/note", "element-count", "error") in pairs(rejected(doc(head)))


def test_bad_enumeration_named_with_path() -> None:
    found = pairs(rejected(doc(certainty="Sure")))
    assert ("/alert/info[1]/certainty", "enumeration", "error") in found


def test_very_likely_is_a_cap11_warning_and_a_repairable_cap12_error() -> None:
    parsed = parse_cap(doc(certainty="VeryLikely", ns=NS11))
    assert parsed.alert.infos[0].certainty is Certainty.LIKELY
    assert ("/alert/info[1]/certainty", "deprecated-value", "warning") in pairs(parsed.problems)
    (error,) = rejected(doc(certainty="VeryLikely"))
    assert (error.path, error.rule, error.repairable) == (
        "/alert/info[1]/certainty",
        "enumeration",
        True,
    )
    repaired = parse_cap(doc(certainty="VeryLikely"), policy="repair")
    assert repaired.alert.infos[0].certainty is Certainty.LIKELY
    assert repaired.repairs == [error]


def test_cap11_resource_without_mime_type_converted_with_warning() -> None:
    area = "<resource><resourceDesc>map</resourceDesc><uri>http://x/m.png</uri></resource>" + AREA
    parsed = parse_cap(doc(area=area, ns=NS11))
    assert parsed.alert.infos[0].resources[0].mime_type == "application/octet-stream"
    assert ("/alert/info[1]/resource[1]/mimeType", "cap11-conversion", "warning") in pairs(
        parsed.problems
    )
    found = pairs(rejected(doc(area=area)))
    assert ("/alert/info[1]/resource[1]/mimeType", "required", "error") in found


@pytest.mark.parametrize(
    ("written", "repair"),
    [
        ("2024-07-01T00:00:00Z", "'Z' read as -00:00: 2024-07-01T00:00:00-00:00"),
        (
            "2024-07-01T00:00:00.5-00:00",
            "the fraction of a second dropped: 2024-07-01T00:00:00-00:00",
        ),
        (
            "2024-07-01T00:00:00.25Z",
            "'Z' read as -00:00 and the fraction of a second dropped: 2024-07-01T00:00:00-00:00",
        ),
    ],
)
def test_z_and_fraction_times_are_repairable_errors(written: str, repair: str) -> None:
    data = doc(HEAD.replace("2024-07-01T08:00:00+08:00", written))
    (error,) = rejected(data)
    assert (error.path, error.rule, error.severity, error.repair) == (
        "/alert/sent",
        "cap-time",
        "error",
        repair,
    )
    assert str(error).endswith(f"(repairable: {repair})")
    repaired = parse_cap(data, policy="repair")
    assert repaired.repairs == [error] and repaired.problems == []
    assert format_cap_time(repaired.alert.sent) == "2024-07-01T00:00:00-00:00"
    assert repaired.raw == data


def test_time_without_offset_is_an_unrepairable_error() -> None:
    data = doc(HEAD.replace("2024-07-01T08:00:00+08:00", "2024-07-01T00:00:00"))
    (error,) = rejected(data)
    assert (error.path, error.rule, error.repairable) == ("/alert/sent", "cap-time", False)
    assert str(error).endswith("(not repairable)")
    with pytest.raises(CapError):
        parse_cap(data, policy="repair")


def test_identifier_with_space_is_an_unrepairable_error() -> None:
    data = doc(HEAD.replace("ulanqab-2024-0001", "ulanqab 2024"))
    (error,) = rejected(data)
    assert (error.path, error.rule, error.repairable) == (
        "/alert/identifier",
        "identifier-chars",
        False,
    )
    with pytest.raises(CapError):
        parse_cap(data, policy="repair")


RING = "41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0"


def test_open_polygon_is_a_repairable_error_closed_on_repair() -> None:
    for ring in ("41.0,113.0 41.1,113.0 41.1,113.2 41.2,113.0", "41.0,113.0 41.1,113.0 41.1,113.2"):
        data = doc(area=AREA.replace(RING, ring))
        (error,) = rejected(data)
        assert (error.path, error.rule, error.repair) == (
            "/alert/info[1]/area[1]/polygon[1]",
            "polygon-closed",
            "closed by repeating the first pair 41.0,113.0",
        )
        repaired = parse_cap(data, policy="repair")
        points = repaired.alert.infos[0].areas[0].polygons[0].points
        assert points[0] == points[-1] == (41.0, 113.0)
        assert len(points) == len(ring.split()) + 1
        assert repaired.repairs == [error]


@pytest.mark.parametrize(
    ("ring", "rule"),
    [
        ("41.0,113.0 41.1,113.0 41.0,113.0", "polygon-min-points"),  # two distinct points
        ("41.0,113.0 41.0,113.0", "polygon-min-points"),
        ("41.0,113.0 41.1,113.1", "polygon-closed"),  # open, two points: closing gives no area
        ("41.0,113.0 41.1,113.1 41.2,113.2", "polygon-closed"),  # open, on one line
        ("41.0,113.0 41.1,113.1 41.2,113.2 41.0,113.0", "polygon-area"),  # closed, on one line
    ],
)
def test_polygon_without_area_is_an_unrepairable_error(ring: str, rule: str) -> None:
    data = doc(area=AREA.replace(RING, ring))
    (error,) = rejected(data)
    assert (error.path, error.rule, error.repairable) == (
        "/alert/info[1]/area[1]/polygon[1]",
        rule,
        False,
    )
    with pytest.raises(CapError):
        parse_cap(data, policy="repair")


def test_polygon_coordinates_in_wgs84_order() -> None:
    # GeoJSON order (lon,lat) puts "latitude" 113 out of range: an error, not a guess.
    swapped = AREA.replace(
        "41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0", "113.0,41.0 113.0,41.1 113.2,41.1 113.0,41.0"
    )
    found = pairs(rejected(doc(area=swapped)))
    assert ("/alert/info[1]/area[1]/polygon[1]", "coordinate-range", "error") in found


def test_circle_form() -> None:
    area = "<area><areaDesc>x</areaDesc><circle>41.0,113.0</circle></area>"
    found = pairs(rejected(doc(area=area)))
    assert ("/alert/info[1]/area[1]/circle[1]", "circle-form", "error") in found
    area = "<area><areaDesc>x</areaDesc><circle>41.0,113.0 -5</circle></area>"
    assert ("/alert/info[1]/area[1]/circle[1]", "circle-form", "error") in pairs(
        rejected(doc(area=area))
    )
    area = "<area><areaDesc>x</areaDesc><circle>41.0,113.0 50000</circle></area>"  # metres?
    assert ("/alert/info[1]/area[1]/circle[1]", "circle-form", "error") in pairs(
        rejected(doc(area=area))
    )
    area = "<area><areaDesc>x</areaDesc><circle>41.0,113.0 20000</circle></area>"
    assert parse_cap(doc(area=area)).alert.infos[0].areas[0].circles[0].radius_km == 20000


def test_update_needs_references_and_malformed_triplet_rejected() -> None:
    head = HEAD.replace("<msgType>Alert</msgType>", "<msgType>Cancel</msgType>")
    assert ("/alert/references", "references-required", "error") in pairs(rejected(doc(head)))
    bad = head + "<references>warn@x,only-two</references>"
    assert ("/alert/references", "references-form", "error") in pairs(rejected(doc(bad)))
    good = head + "<references>warn@x,id-1,2024-07-01T07:00:00+08:00</references>"
    assert parse_cap(doc(good)).alert.references[0].identifier == "id-1"
    same = head + (
        "<references>warn@ulanqab.example.cn,ulanqab-2024-0001,2024-07-01T07:00:00+08:00"
        "</references>"
    )
    assert ("/alert/references", "references-self", "error") in pairs(rejected(doc(same)))


def test_restricted_scope_without_restriction_is_an_error() -> None:
    head = HEAD.replace("<scope>Public</scope>", "<scope>Restricted</scope>")
    assert ("/alert/restriction", "restriction-required", "error") in pairs(rejected(doc(head)))


@pytest.mark.parametrize(
    ("effective", "expires"),
    [
        ("<effective>2024-07-01T10:00:00+08:00</effective>", "2024-07-01T09:00:00+08:00"),
        ("<effective>2024-07-01T10:00:00+08:00</effective>", "2024-07-01T10:00:00+08:00"),
        ("", "2024-07-01T07:00:00+08:00"),  # no effective: it takes effect when sent
    ],
)
def test_expires_not_after_effective_is_an_unrepairable_error(effective: str, expires: str) -> None:
    info = (
        "<info><category>Met</category><event>x</event><urgency>Expected</urgency>"
        f"<severity>Minor</severity><certainty>Possible</certainty>{effective}"
        f"<expires>{expires}</expires><instruction>x</instruction></info>"
    )
    (error,) = rejected(doc(info=info))
    assert (error.path, error.rule, error.repairable) == (
        "/alert/info[1]/expires",
        "expires-after-effective",
        False,
    )
    with pytest.raises(CapError):
        parse_cap(doc(info=info), policy="repair")


def test_missing_expires_and_instruction_are_only_warnings() -> None:
    info = (
        "<info><category>Met</category><event>x</event><urgency>Expected</urgency>"
        "<severity>Minor</severity><certainty>Possible</certainty></info>"
    )
    assert pairs(parse_cap(doc(info=info)).problems) == {
        ("/alert/info[1]/expires", "expires-recommended", "warning"),
        ("/alert/info[1]/instruction", "instruction-recommended", "warning"),
    }


def test_missing_category_and_event_reported_in_second_info() -> None:
    second = (
        "<info><urgency>Past</urgency><severity>Minor</severity>"
        "<certainty>Observed</certainty></info>"
    )
    data = doc().replace(b"</alert>", second.encode() + b"</alert>")
    found = pairs(rejected(data))
    assert ("/alert/info[2]/category[1]", "required", "error") in found
    assert ("/alert/info[2]/event", "required", "error") in found


def test_signature_must_be_last_child_of_alert() -> None:
    signature = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'
    parse_cap(doc().replace(b"</alert>", signature.encode() + b"</alert>"))
    found = pairs(rejected(doc(after_head=signature)))
    assert ("/alert/info[1]", "element-order", "error") in found
