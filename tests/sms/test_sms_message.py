"""The SMS text: signature, the marker that cannot be dropped, and the segment budget."""

from __future__ import annotations

import dataclasses

import pytest

from broadcaster.cap import MsgType, Status
from broadcaster.rendition import MessageText, render
from channels.sms import render_sms
from channels.smstext import DEFAULT_TEMPLATE, check_template
from drivers.gsm import segment_count
from tests.core.support import make_alert

SIGNATURE = "【乌兰察布市应急管理局】"


def zh_text(status: Status = Status.ACTUAL, **changes: str) -> MessageText:
    text = render(make_alert(status=status)).texts[0]
    return dataclasses.replace(text, **changes)


def test_a_short_warning_is_signed_and_whole() -> None:
    sms = render_sms(zh_text(), template=DEFAULT_TEMPLATE, signature=SIGNATURE, max_segments=3)
    assert sms.text == (
        "【乌兰察布市应急管理局】卓资县暴雪橙色预警\n"
        "预计未来12小时内降雪量将达10毫米以上。\n"
        "请减少外出，注意防寒保暖。"
    )
    assert (sms.segments, sms.encoding.name, sms.notes) == (1, "UCS2", ())


@pytest.mark.parametrize(
    ("status", "msg_type", "marker"),
    [
        (Status.TEST, MsgType.ALERT, "【测试】"),
        (Status.EXERCISE, MsgType.ALERT, "【演练】"),
        (Status.EXERCISE, MsgType.UPDATE, "【演练】【更新】"),
    ],
)
def test_the_marker_survives_any_template_and_any_cut(
    status: Status, msg_type: MsgType, marker: str
) -> None:
    text = render(make_alert(status=status, msg_type=msg_type)).texts[0]
    long = dataclasses.replace(text, description="很长的说明" * 200, instruction="请转移" * 100)
    for template in (DEFAULT_TEMPLATE, "{title}", "{description}{instruction}{title}"):
        sms = render_sms(long, template=template, signature=SIGNATURE, max_segments=1)
        assert f"{marker}卓资县暴雪橙色预警" in sms.text
        assert sms.segments == 1


def test_the_description_is_cut_to_whole_sentences_before_the_instruction() -> None:
    sentences = "".join(f"第{n}句说明内容较长较长较长较长较长。" for n in range(1, 30))
    text = zh_text(description=sentences, instruction="请立即转移到安全地带。")
    sms = render_sms(text, template=DEFAULT_TEMPLATE, signature=SIGNATURE, max_segments=3)
    headline, description, instruction = sms.text.split("\n")
    assert headline == f"{SIGNATURE}卓资县暴雪橙色预警"
    assert instruction == "请立即转移到安全地带。"
    assert description.endswith("较长。") and sentences.startswith(description)
    assert sms.segments == 3 == segment_count(sms.text)
    longer = description + sentences[len(description) :].split("。")[0] + "。"
    assert segment_count(f"{headline}\n{longer}\n{instruction}") > 3
    assert sms.notes == (
        f"description shortened from {len(sentences)} to {len(description)} characters"
        " to fit 3 segments",
    )


def test_without_sentence_ends_text_is_cut_with_an_ellipsis() -> None:
    text = zh_text(description="无标点的长说明" * 60, instruction="")
    sms = render_sms(text, template=DEFAULT_TEMPLATE, signature=SIGNATURE, max_segments=2)
    assert sms.text.endswith("…") and sms.segments == 2
    grown = sms.text[:-1] + "无…"
    assert segment_count(grown) > 2


def test_gsm7_text_is_cut_with_three_dots_and_stays_gsm7() -> None:
    text = dataclasses.replace(
        zh_text(),
        language="en",
        headline="Blizzard warning",
        description="snow " * 200,
        instruction="Stay indoors",
        marker="[TEST]",
    )
    sms = render_sms(text, template=DEFAULT_TEMPLATE, signature="", max_segments=2)
    assert sms.encoding.name == "GSM7" and sms.segments == 2
    assert sms.text.startswith("[TEST]Blizzard warning\n") and "..." in sms.text


def test_surrogate_pairs_are_counted_as_two_units() -> None:
    text = zh_text(headline="𠮷" * 30, description="𠮷" * 100, instruction="")
    sms = render_sms(text, template="{title}\n{description}", signature="", max_segments=2)
    assert sms.segments == 2 and sms.text.startswith("𠮷" * 30 + "\n")
    assert len(sms.text.encode("utf-16-be")) // 2 <= 2 * 67


def test_a_headline_over_budget_is_kept_whole_and_noted() -> None:
    text = zh_text(headline="超长标题" * 60)
    sms = render_sms(text, template=DEFAULT_TEMPLATE, signature=SIGNATURE, max_segments=1)
    assert sms.text == f"{SIGNATURE}{'超长标题' * 60}"
    assert sms.segments == 4
    assert "never cut" in sms.notes[-1]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{signature}{headline}", "must contain {title}"),
        ("{title}{phone}", "unknown placeholders ['phone']"),
        ("{title:.3}", "no format spec"),
        ("{title!r}", "no format spec"),
        ("{title", "not a valid template"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_template(template)
