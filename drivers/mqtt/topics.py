"""Topic names and topic filters: validation and matching, OASIS MQTT 3.1.1 section 4.7.

- A topic name (PUBLISH) is 1..65535 bytes of UTF-8, without ``+``, ``#`` or NUL (4.7.3, 1.5.3).
- A topic filter (SUBSCRIBE) may hold ``+`` as a whole level and ``#`` as the whole last level
  (4.7.1.2, 4.7.1.3).
- Wildcards at the first level never match topics starting with ``$`` (4.7.2).
"""

from __future__ import annotations

from drivers.mqtt.errors import MqttTopicError

MAX_TOPIC_BYTES = 65535


def _encode(text: str, what: str) -> bytes:
    if not text:
        raise MqttTopicError(f"{what} is empty (MQTT 3.1.1 section 4.7.3)")
    if "\x00" in text:
        raise MqttTopicError(f"{what} {text!r} contains NUL (MQTT 3.1.1 section 1.5.3)")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MqttTopicError(f"{what} {text!r} is not valid UTF-8: {exc.reason}") from exc
    if len(raw) > MAX_TOPIC_BYTES:
        raise MqttTopicError(f"{what} is {len(raw)} bytes of UTF-8, over {MAX_TOPIC_BYTES}")
    return raw


def encode_topic_name(topic: str) -> bytes:
    """The UTF-8 bytes of a topic name fit for PUBLISH; MqttTopicError if it is not valid."""
    if "+" in topic or "#" in topic:
        raise MqttTopicError(
            f"topic name {topic!r} contains a wildcard (MQTT 3.1.1 section 3.3.2.1)"
        )
    return _encode(topic, "topic name")


def encode_topic_filter(topic_filter: str) -> bytes:
    """The UTF-8 bytes of a topic filter fit for SUBSCRIBE; MqttTopicError if it is not valid."""
    raw = _encode(topic_filter, "topic filter")
    if "+" in topic_filter or "#" in topic_filter:
        levels = topic_filter.split("/")
        last = len(levels) - 1
        for index, level in enumerate(levels):
            if level == "+" or (level == "#" and index == last):
                continue
            if "+" in level or "#" in level:
                raise MqttTopicError(
                    f"topic filter {topic_filter!r}: a wildcard must fill a whole level and "
                    "'#' must be the last one (MQTT 3.1.1 section 4.7.1)"
                )
    return raw


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` (a topic name) matches ``topic_filter`` under section 4.7.

    ``sport/#`` matches ``sport`` too (4.7.1.2); ``+`` matches one level, empty ones included.
    """
    filter_levels = topic_filter.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    count = len(topic_levels)
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= count:
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == count
