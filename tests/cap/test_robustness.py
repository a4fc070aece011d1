"""Garbage in: parse_cap, from_json and verify_signature answer with CapError or a report,
never with another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.cap import from_json, parse_cap, to_json, verify_signature
from broadcaster.errors import CapError
from tests.conftest import CAP_SAMPLES

SEED = (CAP_SAMPLES / "valid" / "google_thunderstorm.xml").read_bytes()
SIGNED = (CAP_SAMPLES / "signed" / "wmo_tg_valid.xml").read_bytes()
FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 40))]
        else:
            data[position:position] = draw(
                st.sampled_from([b"<", b"&amp;", b"<x/>", b"</info>", b"\x00", b"]]>", b"&#0;"])
            )
        if not data:
            break
    return bytes(data)


@FUZZ
@given(mutated(SEED))
def test_mutated_documents_accepted_or_rejected_cleanly(data: bytes) -> None:
    try:
        parsed = parse_cap(data)
    except CapError as exc:
        assert exc.problems and all(p.path.startswith("/") for p in exc.problems)
    else:
        assert parsed.alert.identifier


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
ALERT_KEYS = ["identifier", "sender", "sent", "status", "msgType", "scope", "info", "references"]


@FUZZ
@given(st.dictionaries(st.sampled_from(ALERT_KEYS), json_values))
def test_random_json_rejected_cleanly(document: dict[str, Any]) -> None:
    try:
        from_json(document)
    except CapError as exc:
        assert exc.problems


@FUZZ
@given(st.data())
def test_json_of_sample_with_one_value_replaced_rejected_cleanly(data: st.DataObject) -> None:
    document = to_json(parse_cap(SEED).alert)
    info = document["info"][0]
    key = data.draw(st.sampled_from(sorted(info)))
    info[key] = data.draw(json_values)
    try:
        from_json(document)
    except CapError as exc:
        assert all(p.path.startswith("/alert") for p in exc.problems)


@FUZZ
@given(mutated(SIGNED))
def test_mutated_signed_documents_get_a_report(data: bytes) -> None:
    report = verify_signature(data)
    assert report.status in {"unsigned", "valid", "tampered", "malformed"}
