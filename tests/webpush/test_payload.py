"""The push payload: the subscriber's languages, the 3,993-byte limit, the warning colour."""

from __future__ import annotations

import json
from dataclasses import replace

from broadcaster.cap import Info, NamedValue, Severity
from broadcaster.channel import OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.rendition import render
from broadcaster.testing.contract import contract_delivery
from channels.webpush.ece import MAX_PLAINTEXT
from channels.webpush.payload import MAX_TITLE, ack_token, build_message, level_of, ttl_for

TARGET = Target(id="push-s1", channel="push", name="s1", languages=("mn-Cyrl", "zh-CN"))


def _with_infos(*infos: Info) -> OutgoingDelivery:
    delivery = contract_delivery(TARGET)
    alert = replace(delivery.message.alert, infos=list(infos))
    message = replace(delivery.message, alert=alert, rendition=render(alert))
    return replace(delivery, message=message)


def _build(delivery: OutgoingDelivery) -> dict[str, object]:
    message = build_message(
        delivery,
        public_url="https://x.example/",
        subscription_id="s1",
        secret="k",
        now=0,
    )
    assert len(message.payload) <= MAX_PLAINTEXT
    document: dict[str, object] = json.loads(message.payload)
    return document


def test_languages_of_the_subscriber_and_huge_texts_fit() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    zh = replace(base, description="暴雪" * 3000, instruction="请留在室内。" * 200)
    mn = replace(base, language="mn-Cyrl", headline="Цасан шуурга", description="Ц" * 5000)
    en = replace(base, language="en-US", headline="Blizzard")
    document = _build(_with_infos(zh, mn, en))
    texts = document["texts"]
    assert isinstance(texts, list)
    assert [t["lang"] for t in texts] == ["mn-Cyrl", "zh-CN"]
    assert texts[0]["title"] == "[ТУРШИЛТ]Цасан шуурга"
    assert texts[1]["body"].startswith("请留在室内。") and texts[1]["body"].endswith("…")
    assert document["url"] == "https://x.example/alerts/a-contract"


def test_a_huge_area_list_is_shortened_too() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    areas = [replace(base.areas[0], area_desc=f"村{n:04d}") for n in range(2000)]
    document = _build(_with_infos(replace(base, areas=areas)))
    texts = document["texts"]
    assert isinstance(texts, list) and texts[0]["area"].endswith("…")


def test_level_from_a_colour_parameter_or_the_severity() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    coloured = replace(base, parameters=[NamedValue("预警级别", "橙色")])
    delivery = _with_infos(coloured)
    assert level_of(delivery.message.alert) == "orange"
    for severity, colour in [(Severity.EXTREME, "red"), (Severity.MINOR, "blue")]:
        delivery = _with_infos(replace(base, severity=severity))
        assert level_of(delivery.message.alert) == colour
    delivery = _with_infos(replace(base, severity=Severity.UNKNOWN))
    assert level_of(delivery.message.alert) == "none"


def test_ttl_is_clamped() -> None:
    assert ttl_for(100.0, 200.0) == 0
    assert ttl_for(1000.5, 0.0) == 1000
    assert ttl_for(1e12, 0.0) == 28 * 24 * 3600


def test_traditional_mongolian_is_carried_as_it_is_written() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    headline = "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ ᠶᠢᠨ ᠤᠯᠠᠪᠳᠤᠷ ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ"
    mn = replace(base, language="mn-Mong", headline=headline, description="ᠴ" * 3000)
    delivery = _with_infos(base, mn)
    delivery = replace(delivery, target=replace(TARGET, languages=("mn", "zh-CN")))
    document = _build(delivery)
    texts = document["texts"]
    assert isinstance(texts, list)
    assert [t["lang"] for t in texts] == ["mn-Mong", "zh-CN"]
    assert texts[0]["title"] == "[ᠲᠤᠷᠰᠢᠯᠲᠠ]" + headline  # the contract alert is a Test
    assert texts[0]["body"].endswith("…")


def test_a_long_headline_is_cut_keeping_its_marker() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    zh = replace(base, headline="乌兰察布市气象台发布暴雪橙色预警信号，" * 70)
    mn = replace(base, language="mn-Cyrl", headline="Цасан шуурга " * 200)
    document = _build(_with_infos(zh, mn))
    texts = document["texts"]
    assert isinstance(texts, list)
    assert [t["lang"] for t in texts] == ["mn-Cyrl", "zh-CN"]
    assert texts[0]["title"].startswith("[ТУРШИЛТ]Цасан шуурга")
    assert texts[1]["title"].startswith("【测试】乌兰察布市气象台发布暴雪橙色预警信号")
    for text in texts:
        assert len(text["title"]) == MAX_TITLE and text["title"].endswith("…")


def test_when_no_language_fits_the_marked_title_alone_goes_out() -> None:
    base = contract_delivery(TARGET).message.alert.infos[0]
    delivery = _with_infos(replace(base, headline="乌兰察布市气象台发布暴雪橙色预警信号，" * 70))
    public_url = "https://x.example/" + "p" * 3500
    message = build_message(
        delivery, public_url=public_url, subscription_id="s1", secret="k", now=0
    )
    assert len(message.payload) <= MAX_PLAINTEXT
    document = json.loads(message.payload)
    [text] = document["texts"]
    assert text.keys() == {"lang", "title"}
    assert text["title"].startswith("【测试】乌兰察布") and text["title"].endswith("…")
    assert document["url"] == f"{public_url}/alerts/a-contract"
    assert document["ack"] == ack_token("k", delivery.id, "a-contract", "s1")
