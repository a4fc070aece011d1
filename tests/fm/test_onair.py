"""What an alert shows on air: RT folded into the RDS set or a Latin fallback, cut to 64
characters, markers for tests and cancellations, priority, and a SAME header that the audio
package's own §11.31 parser accepts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from audio.same import parse_header
from broadcaster.cap import MsgType, NamedValue, Severity, Status
from broadcaster.channel import AlertMessage
from broadcaster.delivery import Target
from broadcaster.rendition import render
from broadcaster.testing.contract import channel_context
from channels.fm import FmChannelConfig
from channels.fm.channel import FmChannel
from channels.fm.onair import (
    FoldedText,
    cut_to,
    fold_to_rds,
    on_air_text,
    priority,
    same_header,
)
from drivers.rds.charset import is_rds_text
from tests.bilingual import alert
from tests.core.support import make_alert
from tests.fm.conftest import fm_table

TARGET = Target(id="fm-150921", channel="fm", name="tx", division="150921000000")


def _message(**alert: object) -> AlertMessage:
    cap = make_alert(**alert)  # type: ignore[arg-type]
    expires = cap.infos[0].expires
    assert expires is not None
    return AlertMessage(id="a1", alert=cap, rendition=render(cap), expires_at=expires.timestamp())


def _config(sink: Path, **settings: object) -> FmChannelConfig:
    return FmChannelConfig.model_validate(fm_table(sink, {}) | settings)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ＡＢＣ　１２３，ｏｋ", "ABC 123,ok"),
        ("“Snow” – 10 cm…", '"Snow" - 10 cm...'),
        ("Çağrı Ñandú ĉ", "Çağrı Ñandú c"),
        ("Warning\nline two\t end", "Warning line two end"),
        ("cost ~5$ ^ up", "cost -5$ ' up"),
        ("lows of −35 °C, gusts ≥ 20 m/s, ≤ 3‒4 h", "lows of -35 °C, gusts >= 20 m/s, <= 3-4 h"),
        ("Snow ☃ tonight", "Snow tonight"),
        ("暴雪橙色预警", None),
        ("Snow in 卓资", None),
        ("[ТУРШИЛТ] Цас", None),
        ("[ᠲᠤᠷᠰᠢᠯᠲᠠ] ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ", None),
    ],
)
def test_text_is_folded_into_the_rds_set_or_refused(text: str, folded: str | None) -> None:
    result = fold_to_rds(text)
    assert (None if result is None else result.text) == folded
    if result is not None:
        assert is_rds_text(result.text)


def test_a_symbol_left_out_is_named_once_and_warned_about(sink: Path) -> None:
    assert fold_to_rds("Snow ☃ tonight ☃\u200b") == FoldedText("Snow tonight", "☃")
    message = _message(headline="Snow ☃ tonight, −5 °C")
    text = on_air_text(message, TARGET, _config(sink))
    assert text.content.rt == "Snow tonight, -5 °C"
    assert text.warnings == ("RT leaves out what RDS cannot show: '☃' (U+2603)",)


def test_cut_keeps_whole_words_when_it_can() -> None:
    assert cut_to("short", 64) == "short"
    assert cut_to("alpha beta gamma", 12) == "alpha beta"
    assert cut_to("x" * 80, 64) == "x" * 64


def test_chinese_alert_gets_the_latin_fallback_with_markers(sink: Path) -> None:
    config = _config(sink)
    actual = on_air_text(_message(), TARGET, config)
    assert actual.source == "fallback"
    assert actual.content.rt == "SNOWSTORM WARNING ORANGE - LISTEN NOW"
    assert actual.content.ps == "ALERT" and actual.content.pty == 31
    test = on_air_text(_message(status=Status.TEST), TARGET, config)
    assert test.content.rt.startswith("TEST: SNOWSTORM") and test.content.pty == 30
    assert test.content.ps == "TEST"
    cancel = on_air_text(_message(msg_type=MsgType.CANCEL), TARGET, config)
    assert cancel.content.rt.startswith("CANCELLED: ")
    exercise = on_air_text(
        _message(status=Status.EXERCISE, msg_type=MsgType.UPDATE), TARGET, config
    )
    assert exercise.content.rt.startswith("EXERCISE UPDATE: ")


def test_configured_fallback_is_chosen_by_hazard_and_level(sink: Path) -> None:
    config = _config(
        sink,
        rt_fallback={
            "blizzard.red": "BLIZZARD RED - TUNE TO 95.1",
            "blizzard": "BLIZZARD - TUNE TO 95.1",
            "default": "EMERGENCY - TUNE TO 95.1",
        },
    )
    assert on_air_text(_message(), TARGET, config).content.rt == "BLIZZARD - TUNE TO 95.1"
    red = _message(severity=Severity.EXTREME)
    assert on_air_text(red, TARGET, config).content.rt == "BLIZZARD RED - TUNE TO 95.1"
    other = _message()
    other.alert.infos[0].event = "化工泄漏"
    other = AlertMessage("a2", other.alert, render(other.alert), other.expires_at)
    assert on_air_text(other, TARGET, config).content.rt == "EMERGENCY - TUNE TO 95.1"


def test_a_long_latin_headline_is_cut_and_noted(sink: Path) -> None:
    message = _message(headline="Heavy snow " * 10)
    text = on_air_text(message, TARGET, _config(sink))
    assert text.source == "headline (zh-CN)"
    assert len(text.content.rt) <= 64 and text.content.rt.startswith("Heavy snow Heavy")
    assert any("cut from" in note for note in text.notes)


def test_priority_puts_real_over_test_and_severe_over_mild() -> None:
    test = priority(_message(status=Status.TEST, severity=Severity.EXTREME))
    minor = priority(_message(severity=Severity.MINOR))
    extreme = priority(_message(severity=Severity.EXTREME))
    assert test < minor < extreme


def test_same_header_follows_section_11_31(sink: Path) -> None:
    assert same_header(_message(), TARGET, _config(sink)) is None
    config = _config(sink, same={"enabled": True, "station": "ULCB FM"})
    header = same_header(_message(), TARGET, config)
    assert header is not None
    parsed = parse_header(header)
    assert parsed.originator == "CIV" and parsed.event == "BZW"
    assert parsed.locations == ("150921",) and parsed.purge == "0100"
    assert parsed.station == "ULCB FM "
    test_header = same_header(_message(status=Status.TEST), TARGET, config)
    assert test_header is not None and parse_header(test_header).event == "RWT"
    custom = _config(sink, same={"enabled": True, "events": {"blizzard": "WSW"}})
    custom_header = same_header(_message(expires_in=100), TARGET, custom)
    assert custom_header is not None
    assert parse_header(custom_header).event == "WSW"
    assert parse_header(custom_header).purge == "0015"


async def test_preview_shows_ps_and_rt(tmp_path: Path, sink: Path) -> None:
    message = _message(status=Status.TEST)
    message.alert.infos[0].parameters.append(NamedValue("预警级别", "红色"))
    channel = FmChannel("fm", _config(sink), channel_context(tmp_path))
    preview = await channel.preview(message, [TARGET])
    rt = "TEST: SNOWSTORM WARNING RED - LISTEN NOW"
    assert preview.contents == ({"ps": "TEST", "rt": rt, "pty": 30},)
    assert (preview.targets, preview.unit) == (1, "transmitters")
    assert preview.notes and "Latin RT" in preview.notes[0]


def test_an_english_text_of_the_alert_is_used_before_the_fallback(sink: Path) -> None:
    cap = make_alert()
    english = replace(cap.infos[0], language="en-US", headline="Blizzard warning, orange")
    cap.infos.append(english)
    message = AlertMessage(id="a3", alert=cap, rendition=render(cap), expires_at=9e9)
    text = on_air_text(message, TARGET, _config(sink))
    assert text.source == "headline (en-US)"
    assert text.content.rt == "Blizzard warning, orange"


def test_a_mongolian_transmitter_shows_the_latin_fallback(sink: Path) -> None:
    cap = alert("fm-mn", "zh+mn")
    message = AlertMessage(id="a4", alert=cap, rendition=render(cap), expires_at=9e9)
    mongolian_first = replace(TARGET, languages=("mn", "zh-CN"))
    text = on_air_text(message, mongolian_first, _config(sink))
    assert fold_to_rds(cap.infos[1].headline or "") is None
    assert text.source == "fallback"
    assert text.content.rt == "SNOWSTORM WARNING ORANGE - LISTEN NOW"
