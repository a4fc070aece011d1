"""Speech script: templates per language and the test/exercise marker that cannot be dropped."""

from __future__ import annotations

import dataclasses

import pytest

from audio.errors import SpeechTextError
from audio.speechtext import Level, MarkerKind, SpeechText, Status, build_script, parse_level


def _text(**fields: object) -> SpeechText:
    base: dict[str, object] = {
        "language": "zh-CN",
        "status": "Actual",
        "event": "暴雪",
        "sender_name": "乌兰察布市气象台",
        "level": "red",
        "description": "预计21:29起降雪量10mm以上。",
        "instruction": "减少户外活动",
    }
    base.update(fields)
    return SpeechText(**base)  # type: ignore[arg-type]


def test_chinese_template_without_headline_names_sender_event_and_level() -> None:
    script = build_script(_text())
    assert (
        script.body == "乌兰察布市气象台发布暴雪红色预警。预计21时29分起降雪量10毫米以上。"
        "防御指引：减少户外活动。"
    )
    assert script.marker is None and script.closing == "播报完毕"


def test_headline_replaces_the_generated_intro() -> None:
    script = build_script(_text(headline="内蒙古发布寒潮蓝色预警"))
    assert script.body.startswith("内蒙古发布寒潮蓝色预警。")


def test_english_template() -> None:
    script = build_script(
        _text(
            language="en",
            event="Blizzard",
            sender_name="Ulanqab Met Office",
            level="orange",
            description="Snow 10mm.",
            instruction="Stay indoors",
        )
    )
    assert script.body == (
        "Blizzard warning, level orange, issued by Ulanqab Met Office. Snow 10 millimetres. "
        "Instructions: Stay indoors."
    )
    assert script.closing == "End of message"


@pytest.mark.parametrize(
    ("status", "language", "marker"),
    [
        ("Exercise", "zh-CN", "这是一次演练"),
        ("Test", "zh-CN", "这是一次测试"),
        ("Exercise", "en", "This is an exercise"),
        ("Test", "en", "This is a test"),
        ("System", "zh-CN", "这是一次测试"),
        ("Draft", "zh-CN", "这是一次测试"),
        ("Rehearsal", "zh-CN", "这是一次测试"),
    ],
)
def test_every_status_but_actual_carries_a_marker(status: str, language: str, marker: str) -> None:
    script = build_script(_text(status=status, language=language))
    assert script.marker == marker


def test_the_marker_has_no_switch() -> None:
    fields = {f.name for f in dataclasses.fields(SpeechText)}
    assert fields == {
        "language",
        "status",
        "event",
        "headline",
        "description",
        "instruction",
        "sender_name",
        "level",
    }
    assert build_script(_text(status=Status.EXERCISE)).marker_kind is MarkerKind.EXERCISE


def test_empty_text_is_rejected() -> None:
    with pytest.raises(SpeechTextError, match="nothing to speak"):
        build_script(SpeechText(language="en", status="Actual", event="", sender_name=""))


def test_unknown_language_and_level_are_rejected() -> None:
    with pytest.raises(SpeechTextError, match="no speech template"):
        build_script(_text(language="fr"))
    with pytest.raises(SpeechTextError, match="unknown warning level"):
        build_script(_text(level="purple"))


@pytest.mark.parametrize(
    ("given", "level"),
    [
        ("red", Level.RED),
        ("红色", Level.RED),
        ("Severe", Level.ORANGE),
        ("Minor", Level.BLUE),
        ("", Level.NONE),
        ("Unknown", Level.NONE),
        (Level.YELLOW, Level.YELLOW),
    ],
)
def test_levels_are_read_from_colours_and_cap_severities(given: str, level: Level) -> None:
    assert parse_level(given) is level
