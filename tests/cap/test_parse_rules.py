"""parse_cap on hand-made documents: each rule reported with its element path and severity."""

from __future__ import annotations

import pytest

from broadcaster.cap import Certainty, parse_cap
from broadcaster.cap.problems import Problem
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
        f"<certainty>{certainty}</certainty>{area}</info>"
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


def test_element_inside_plain_value_rejected() -> None:
    head = HEAD.replace("<status>Exercise</status>", "<status>Exercise<b>!</b></status>")
    assert ("/alert/status/b", "unexpected-element", "error") in pairs(rejected(doc(head)))


def test_repeated_singleton_rejected() -> None:
    head = HEAD + "<note>a</note><note>b</note>"
    assert ("/alert/note", "element-count", "error") in pairs(rejected(doc(head)))


def test_bad_enumeration_named_with_path() -> None:
    found = pairs(rejected(doc(certainty="Sure")))
    assert ("/alert/info[1]/certainty", "enumeration", "error") in found


def test_very_likely_read_as_likely_with_warning() -> None:
    for ns in (NS11, NS12):
        parsed = parse_cap(doc(certainty="VeryLikely", ns=ns))
        assert parsed.alert.infos[0].certainty is Certainty.LIKELY
        assert ("/alert/info[1]/certainty", "deprecated-value", "warning") in pairs(parsed.problems)


def test_cap11_resource_without_mime_type_converted_with_warning() -> None:
    area = "<resource><resourceDesc>map</resourceDesc><uri>http://x/m.png</uri></resource>" + AREA
    parsed = parse_cap(doc(area=area, ns=NS11))
    assert parsed.alert.infos[0].resources[0].mime_type == "application/octet-stream"
    assert ("/alert/info[1]/resource[1]/mimeType", "cap11-conversion", "warning") in pairs(
        parsed.problems
    )
    found = pairs(rejected(doc(area=area)))
    assert ("/alert/info[1]/resource[1]/mimeType", "required", "error") in found


def test_z_and_fraction_times_are_warnings_missing_offset_is_error() -> None:
    head = HEAD.replace("2024-07-01T08:00:00+08:00", "2024-07-01T00:00:00Z")
    parsed = parse_cap(doc(head))
    assert pairs(parsed.problems) == {("/alert/sent", "cap-time", "warning")}
    head = HEAD.replace("2024-07-01T08:00:00+08:00", "2024-07-01T00:00:00.5-00:00")
    assert pairs(parse_cap(doc(head)).problems) == {("/alert/sent", "cap-time", "warning")}
    head = HEAD.replace("2024-07-01T08:00:00+08:00", "2024-07-01T00:00:00")
    assert ("/alert/sent", "cap-time", "error") in pairs(rejected(doc(head)))


def test_identifier_with_space_tolerated_as_warning() -> None:
    head = HEAD.replace("ulanqab-2024-0001", "ulanqab 2024")
    parsed = parse_cap(doc(head))
    assert ("/alert/identifier", "identifier-chars", "warning") in pairs(parsed.problems)


def test_polygon_shape_rules() -> None:
    open_ring = AREA.replace(
        "41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0", "41.0,113.0 41.1,113.0 41.1,113.2 41.2,113.0"
    )
    parsed = parse_cap(doc(area=open_ring))
    assert ("/alert/info[1]/area[1]/polygon[1]", "polygon-closed", "warning") in pairs(
        parsed.problems
    )
    short = AREA.replace("41.0,113.0 41.1,113.0 41.1,113.2 41.0,113.0", "41.0,113.0 41.0,113.0")
    assert ("/alert/info[1]/area[1]/polygon[1]", "polygon-min-points", "warning") in pairs(
        parse_cap(doc(area=short)).problems
    )
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
    assert ("/alert/references", "references-self", "warning") in pairs(
        parse_cap(doc(same)).problems
    )


def test_restricted_scope_without_restriction_is_warning() -> None:
    head = HEAD.replace("<scope>Public</scope>", "<scope>Restricted</scope>")
    assert ("/alert/restriction", "restriction-required", "warning") in pairs(
        parse_cap(doc(head)).problems
    )


def test_expires_before_effective_is_warning() -> None:
    info = (
        "<info><category>Met</category><event>x</event><urgency>Expected</urgency>"
        "<severity>Minor</severity><certainty>Possible</certainty>"
        "<effective>2024-07-01T10:00:00+08:00</effective>"
        "<expires>2024-07-01T09:00:00+08:00</expires></info>"
    )
    assert ("/alert/info[1]/expires", "expires-after-effective", "warning") in pairs(
        parse_cap(doc(info=info)).problems
    )


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
