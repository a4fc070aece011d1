"""Language tags: normalisation, implied scripts, RFC 4647 filtering and lookup, and their use
by the speech templates, clip library, engines, renditions and SMS tables."""

from __future__ import annotations

import pytest

from audio.engines.base import voice_for
from audio.errors import EngineUnavailableError, SpeechTextError
from audio.languages import LanguageTagError, canonical, filter_tags, lookup, matches, parse
from audio.speechtext import TEMPLATES, template_for
from broadcaster.cap import MsgType, Status
from broadcaster.rendition import marker_for


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("mn", "mn-Mong"),
        ("MN_cn", "mn-Mong-CN"),
        ("mn-MN", "mn-Cyrl-MN"),
        ("mn-Cyrl", "mn-Cyrl"),
        ("mn-mong", "mn-Mong"),
        ("khk", "mn-Mong"),
        ("zh", "zh-Hans"),
        ("zh-CN", "zh-Hans-CN"),
        ("cmn-Hans-CN", "zh-Hans-CN"),
        ("zh-TW", "zh-Hant-TW"),
        ("en-us", "en-US"),
        ("es-419", "es-419"),
        ("zh-CN-x-private", "zh-Hans-CN"),
    ],
)
def test_tags_are_normalised_with_their_implied_script(tag: str, expected: str) -> None:
    assert canonical(tag) == expected


@pytest.mark.parametrize("bad", ["", "-", "zh--CN", "123", "toolongtag-CN", "zh-ČN"])
def test_malformed_tags_are_refused_and_match_only_themselves(bad: str) -> None:
    with pytest.raises(LanguageTagError):
        parse(bad)
    assert canonical(bad) == bad
    assert not matches(bad, "zh-CN")


@pytest.mark.parametrize(
    ("wanted", "offered", "expected"),
    [
        ("mn", "mn-Mong", True),
        ("mn-Mong", "mn", True),
        ("mn", "mn-Mong-CN", True),
        ("mn", "mn-Cyrl", False),
        ("mn-MN", "mn-Cyrl", True),
        ("mn-MN", "mn", False),
        ("zh-CN", "zh-Hans", True),
        ("zh-Hans", "zh-CN", True),
        ("zh", "zh-CN", True),
        ("zh-CN", "zh-TW", False),
        ("zh-CN", "zh-SG", False),
        ("zh-Hant", "zh-TW", True),
        ("en", "en-US", True),
        ("en-GB", "en-US", False),
        ("en", "mn", False),
        ("*", "mn-Cyrl", True),
    ],
)
def test_matching(wanted: str, offered: str, expected: bool) -> None:
    assert matches(wanted, offered) is expected


def test_filtering_keeps_the_order_of_the_ranges_and_each_item_once() -> None:
    texts = ["mn-Mong", "zh-CN", "en-US", "mn-Cyrl"]
    assert filter_tags(["zh", "mn"], texts, str) == ["zh-CN", "mn-Mong"]
    assert filter_tags(["mn", "zh-Hans", "zh-CN"], texts, str) == ["mn-Mong", "zh-CN"]
    assert filter_tags(["mn-MN"], texts, str) == ["mn-Cyrl"]
    assert filter_tags(["fr"], texts, str) == []
    assert filter_tags(["*"], texts, str) == texts


def test_lookup_prefers_an_exact_match_and_earlier_ranges() -> None:
    assert lookup(["zh-CN"], ["zh", "zh-Hans-CN"]) == "zh-Hans-CN"
    assert lookup(["zh-CN"], ["zh-TW", "zh"]) == "zh"
    assert lookup(["mn-Cyrl", "zh"], ["zh", "mn-Mong"]) == "zh"
    assert lookup(["mn", "zh"], ["zh", "mn-Mong"]) == "mn-Mong"
    assert lookup(["fr"], ["zh", "en"]) is None


def test_speech_templates_follow_the_same_rules() -> None:
    assert template_for("zh-CN") is TEMPLATES["zh"]
    assert template_for("cmn-Hans") is TEMPLATES["zh"]
    assert template_for("en-AU") is TEMPLATES["en"]
    assert template_for("zh-TW") is TEMPLATES["zh-Hant"]
    assert template_for("mn") is template_for("mn-Mong-CN") is TEMPLATES["mn-Mong"]
    with pytest.raises(SpeechTextError, match="mn-Cyrl"):
        template_for("mn-Cyrl")
    with pytest.raises(SpeechTextError, match="fr-FR"):
        template_for("fr-FR")


def test_voices_follow_the_same_rules() -> None:
    voices = {"zh": "cmn-latn-pinyin", "en": "en-gb", "mn-Cyrl": "khalkha"}
    assert voice_for(voices, "zh-Hans-CN", "espeak-ng") == "cmn-latn-pinyin"
    assert voice_for(voices, "mn-MN", "espeak-ng") == "khalkha"
    with pytest.raises(EngineUnavailableError, match="mn-Mong"):
        voice_for(voices, "mn-Mong", "espeak-ng")


def test_markers_are_in_the_script_of_the_text() -> None:
    assert marker_for("mn", Status.TEST, MsgType.ALERT) == "[ᠲᠤᠷᠰᠢᠯᠲᠠ]"
    assert marker_for("mn-Mong", Status.TEST, MsgType.ALERT) == "[ᠲᠤᠷᠰᠢᠯᠲᠠ]"
    assert marker_for("mn-Cyrl", Status.TEST, MsgType.ALERT) == "[ТУРШИЛТ]"
    assert marker_for("zh-Hans", Status.EXERCISE, MsgType.ALERT) == "【演练】"
    assert marker_for("fr", Status.TEST, MsgType.ALERT) == "[TEST]"
    assert marker_for("zh-HK", Status.TEST, MsgType.CANCEL) == "【測試】【解除】"
