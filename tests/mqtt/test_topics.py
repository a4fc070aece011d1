"""Topic names and filters, MQTT 3.1.1 section 4.7: matching, ``$`` topics, validation."""

from __future__ import annotations

import pytest

from drivers.mqtt import MqttTopicError, encode_topic_filter, encode_topic_name, topic_matches


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("boxes/+/ack", "boxes/150902-001/ack", True),
        ("boxes/+/ack", "boxes/150902-001/status", False),
        ("警报/+", "警报/乌兰察布", True),
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),
        ("#", "$SYS/broker/uptime", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ],
)
def test_topic_matching_follows_section_4_7(topic_filter: str, topic: str, matches: bool) -> None:
    encode_topic_filter(topic_filter)
    encode_topic_name(topic)
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("topic", ["a/+", "a/#", "#", "", "a\x00b", "x" * 65536, "\ud800"])
def test_bad_topic_names_are_refused(topic: str) -> None:
    with pytest.raises(MqttTopicError):
        encode_topic_name(topic)


@pytest.mark.parametrize(
    "topic_filter", ["sport/tennis#", "sport/#/ranking", "sport+", "a/b+/c", ""]
)
def test_bad_topic_filters_are_refused(topic_filter: str) -> None:
    with pytest.raises(MqttTopicError, match="topic filter"):
        encode_topic_filter(topic_filter)


def test_the_longest_topic_is_accepted_in_bytes_not_characters() -> None:
    assert len(encode_topic_name("x" * 65535)) == 65535
    with pytest.raises(MqttTopicError, match="65538 bytes"):
        encode_topic_name("警" * 21846)
