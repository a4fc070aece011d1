"""parse_cap against the public conformance samples: accepted, rejected with path and rule."""

from __future__ import annotations

import pytest

from broadcaster.cap import Certainty, MsgType, parse_cap
from broadcaster.errors import CapError
from tests.conftest import CAP_SAMPLES


def _names(folder: str) -> list[str]:
    return sorted(path.name for path in (CAP_SAMPLES / folder).glob("*.xml"))


@pytest.mark.parametrize("name", _names("valid"))
def test_valid_samples_accepted_as_cap12(name: str) -> None:
    parsed = parse_cap((CAP_SAMPLES / "valid" / name).read_bytes())
    assert parsed.version == "1.2"
    assert parsed.alert.identifier and parsed.alert.sender
    assert all(problem.severity == "warning" for problem in parsed.problems)


@pytest.mark.parametrize("name", _names("cap11"))
def test_cap11_samples_accepted_and_converted(name: str) -> None:
    parsed = parse_cap((CAP_SAMPLES / "cap11" / name).read_bytes())
    assert parsed.version == "1.1"
    assert parsed.alert.sent.utcoffset() is not None
    assert all(problem.severity == "warning" for problem in parsed.problems)


@pytest.mark.parametrize("name", _names("signed"))
def test_signed_samples_parse_with_signature_ignored(name: str) -> None:
    parsed = parse_cap((CAP_SAMPLES / "signed" / name).read_bytes())
    assert parsed.alert.infos


# Each rejected sample with the (path, rule) pairs its rejection must name.
REJECTIONS = {
    "invalid/google_invalid.xml": {("/alert/scope", "required")},
    "invalid/google_update_with_empty_references.xml": {
        ("/alert/references", "references-form"),
        ("/alert/references", "references-required"),
    },
    "invalid/google_cap11_noaa_errors.xml": {
        ("/alert/references", "references-form"),
        ("/alert/info[1]/urgency", "required"),
        ("/alert/info[1]/severity", "required"),
        ("/alert/info[1]/certainty", "required"),
        ("/alert/info[1]/area[1]/polygon[1]", "polygon-form"),
        ("/alert/info[1]/area[1]/polygon[2]", "polygon-form"),
    },
    "invalid/wmo_tg_invalid_schema.xml": {("/alert/info[1]/certainty", "required")},
    "invalid/wmo_sc_invalid_schema.xml": {("/schema", "namespace")},
    "hostile/google_xee.xml": {("/", "xml-dtd-forbidden")},
}


def test_every_rejected_sample_has_an_expectation() -> None:
    files = {f"invalid/{name}" for name in _names("invalid")}
    files |= {f"hostile/{name}" for name in _names("hostile")}
    assert files == set(REJECTIONS)


@pytest.mark.parametrize("relative", sorted(REJECTIONS))
def test_rejected_sample_names_path_and_rule(relative: str) -> None:
    with pytest.raises(CapError) as caught:
        parse_cap((CAP_SAMPLES / relative).read_bytes())
    found = {(problem.path, problem.rule) for problem in caught.value.problems}
    assert REJECTIONS[relative] <= found, found
    errors = [problem for problem in caught.value.problems if problem.severity == "error"]
    assert errors
    for problem in errors:
        assert str(problem).startswith(f"error {problem.path} [{problem.rule}]: ")
        assert problem.message
    assert str(errors[0]) in str(caught.value)


def test_iso_8859_1_declaration_is_honoured() -> None:
    parsed = parse_cap((CAP_SAMPLES / "valid" / "google_earthquake-iso8859-1.xml").read_bytes())
    assert parsed.alert.infos[0].headline == (
        "EQ 4.6 Usulután, Usulután, El Salvador - PRELIMINARY REPORT"
    )


def test_chinese_bilingual_alert_keeps_both_languages_and_admin_code() -> None:
    parsed = parse_cap((CAP_SAMPLES / "valid" / "wmo_cn.xml").read_bytes())
    languages = [info.language for info in parsed.alert.infos]
    assert languages == ["en-US", "zh-CN"]
    geocode = parsed.alert.infos[1].areas[0].geocodes[0]
    assert geocode.value.isdigit() and len(geocode.value) == 12


def test_update_references_read_as_triplets_with_sent_verbatim() -> None:
    parsed = parse_cap((CAP_SAMPLES / "signed" / "google_canada_signed.xml").read_bytes())
    alert = parsed.alert
    assert alert.msg_type is MsgType.UPDATE
    assert len(alert.references) == 9
    first = alert.references[0]
    assert (first.sender, first.identifier, first.sent) == (
        "cap-pac@ec.gc.ca",
        "2.49.0.1.124.726d2331.2013",
        "2013-01-23T21:31:00-00:00",
    )
    assert alert.restriction is None and alert.addresses is None


def test_cap11_circle_and_parameters_converted() -> None:
    parsed = parse_cap((CAP_SAMPLES / "cap11" / "google_earthquake.xml").read_bytes())
    info = parsed.alert.infos[0]
    assert info.certainty is Certainty.LIKELY
    circle = info.areas[0].circles[0]
    assert (circle.lat, circle.lon, circle.radius_km) == (-16.053, -173.274, 0.0)
    assert [p.value_name for p in info.parameters][:2] == ["EventTime", "EventIDKey"]
    assert parsed.alert.codes == ["IPAWSv1.0"]


def test_empty_parameter_values_are_kept() -> None:
    parsed = parse_cap((CAP_SAMPLES / "cap11" / "google_weather.xml").read_bytes())
    values = {p.value_name: p.value for p in parsed.alert.infos[0].parameters}
    assert values["WMOHEADER"] == ""
    assert values["UGC"] == "MTZ014"
