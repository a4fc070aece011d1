"""The message forms of the preview against 3GPP TS 23.040 segment rules and RDS limits."""

from __future__ import annotations

import pytest

from broadcaster.cap import MsgType, Status
from broadcaster.console.preview import PUSH_BODY_LIMIT, push_form, rds_form, sms_form
from broadcaster.rendition import render
from tests.core.support import make_alert


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("暴" * 70, "UCS-2", 70, 1),
        ("暴" * 71, "UCS-2", 71, 2),
        ("暴" * 134, "UCS-2", 134, 2),
        ("暴" * 135, "UCS-2", 135, 3),
        ("𠮷" * 35, "UCS-2", 70, 1),  # outside the BMP: a surrogate pair each
        ("𠮷" * 36, "UCS-2", 72, 2),
        ("Alert é", "GSM-7", 7, 1),
        ("Alert ê", "UCS-2", 7, 1),  # ê is not in the GSM 7-bit default alphabet
    ],
)
def test_sms_segments(text: str, encoding: str, units: int, segments: int) -> None:
    form = sms_form(text)
    assert (form.encoding, form.units, form.segments) == (encoding, units, segments)


def test_rds_marks_tests_and_exercises_and_needs_latin_text() -> None:
    exercise = rds_form(render(make_alert(status=Status.EXERCISE)))
    assert exercise["ps"] == "EXERCISE"
    assert exercise["notes"] and "English" in exercise["notes"][0]
    test = rds_form(render(make_alert(status=Status.TEST)))
    assert test["ps"] == "TEST    "
    actual = rds_form(render(make_alert()))
    assert actual["ps"] == "ALERT   " and len(actual["rt"]) <= 64


def test_push_keeps_the_marker_and_cuts_long_bodies() -> None:
    alert = make_alert(status=Status.TEST, msg_type=MsgType.ALERT)
    alert.infos[0].description = "雪" * 400
    text = render(alert).texts[0]
    push = push_form(text)
    assert push["title"].startswith("【测试】")
    assert len(push["body"]) == PUSH_BODY_LIMIT and push["body"].endswith("…")
