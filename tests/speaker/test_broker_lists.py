"""Several brokers named in box links, box configurations and the loudspeaker channel's settings:
what is accepted, what is refused with which message, and the order brokers are tried in."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from channels.loudspeaker.config import LoudspeakerChannelConfig
from drivers.mqtt import MqttUsageError
from drivers.mqtt.brokers import BrokerRotation, parse_broker_url
from drivers.speaker.agent_config import parse_agent_config
from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.link_url import parse_link_url

KEY = "ab" * 16


def test_one_link_url_names_every_node_of_a_cluster() -> None:
    link = parse_link_url("mqtt://mq1:1884,mq2,10.0.0.3:1999/warn")
    assert link.brokers == (("mq1", 1884), ("mq2", 1883), ("10.0.0.3", 1999))
    assert (link.scheme, link.prefix) == ("mqtt", "warn")
    assert parse_link_url("mqtts://a,b").brokers == (("a", 8883), ("b", 8883))
    assert parse_link_url("mqtt://single").brokers == (("single", 1883),)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://a:1,b:2", "only MQTT links"),
        ("mqtt://a:1,b:x", "invalid port"),
        ("mqtt://a:1,,b", "expected host"),
        ("mqtt://a,user@b", "expected host"),
    ],
)
def test_bad_broker_lists_are_refused_by_name(url: str, message: str) -> None:
    with pytest.raises(SpeakerConfigError, match=message):
        parse_link_url(url)


def agent(link: Any) -> dict[str, Any]:
    return {"box_id": "b1", "key": KEY, "link": link}


def test_box_configuration_takes_a_list_of_broker_urls_or_one_url() -> None:
    config = parse_agent_config(agent(["mqtt://a:1/p", "mqtt://b:2/p", "mqtt://c,d/p"]))
    assert config.link.brokers == (("a", 1), ("b", 2), ("c", 1883), ("d", 1883))
    assert config.link.prefix == "p"
    assert parse_agent_config(agent("mqtt://a:1")).link.brokers == (("a", 1),)
    for link, message in [
        (["mqtt://a/p", "mqtt://b/q"], "same scheme and prefix"),
        (["mqtt://a", "mqtts://b"], "same scheme and prefix"),
        (["tcp://a:1", "tcp://b:1"], "only MQTT links"),
        ([], "names no URL"),
        ([1, 2], "a list of URLs"),
    ]:
        with pytest.raises(SpeakerConfigError, match=message):
            parse_agent_config(agent(link))


def test_box_configuration_sets_the_qos_of_its_command_subscriptions() -> None:
    assert parse_agent_config(agent("mqtt://a:1")).mqtt_command_qos == 1
    config = parse_agent_config(agent("mqtt://a,b,c") | {"mqtt_command_qos": 0})
    assert config.mqtt_command_qos == 0 and config.dump()["mqtt_command_qos"] == 0
    for link, qos, message in [
        ("mqtt://a", 2, "must be 0 or 1"),
        ("mqtt://a", "0", "expected int"),
        ("mqtt://a", True, "expected int"),
        ("tcp://a:1", 0, "the link is tcp, not MQTT"),
    ]:
        with pytest.raises(SpeakerConfigError, match=message):
            parse_agent_config(agent(link) | {"mqtt_command_qos": qos})


def test_rotation_moves_on_after_each_failure_and_wraps() -> None:
    rotation = BrokerRotation([("a", 1), ("b", 2), ("c", 3)], start=1)
    assert rotation.current == ("b", 2)
    assert [rotation.advance() for _ in range(3)] == [("c", 3), ("a", 1), ("b", 2)]
    with pytest.raises(MqttUsageError):
        BrokerRotation([])
    assert parse_broker_url("mqtt://a:1,b") == [("a", 1), ("b", 1883)]
    for bad in ("tcp://a:1", "mqtt://a/prefix", "a:1883"):
        with pytest.raises(MqttUsageError):
            parse_broker_url(bad)


def channel(mqtt: dict[str, Any]) -> LoudspeakerChannelConfig:
    return LoudspeakerChannelConfig.model_validate(
        {"type": "loudspeaker", "master_secret": "s" * 20, "mqtt": mqtt}
    )


def test_channel_settings_take_broker_urls_and_publishing_sessions() -> None:
    hub = channel(
        {"brokers": ["mqtt://mq1:1883", "mqtt://mq2:1884", "mqtt://mq3"], "publish_sessions": 8}
    ).hub_config()
    assert hub.mqtt is not None
    assert (hub.mqtt.host, hub.mqtt.port) == ("mq1", 1883)
    assert hub.mqtt.failover == (("mq2", 1884), ("mq3", 1883))
    assert hub.mqtt.publish_sessions == 8
    single = channel({"host": "broker", "port": 1999}).hub_config().mqtt
    assert single is not None
    assert (single.host, single.port, single.failover, single.publish_sessions) == (
        "broker",
        1999,
        (),
        0,
    )


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"host": "a", "brokers": ["mqtt://b"]}, "either host and port or brokers"),
        ({"brokers": ["mqtts://b"]}, "expected mqtt://host:port"),
        ({"brokers": ["mqtt://b:port"]}, "invalid port"),
        ({"brokers": ["mqtt://b"], "publish_sessions": 1000}, "less than or equal to 256"),
    ],
)
def test_bad_channel_broker_settings_are_refused_by_name(
    mqtt: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        channel(mqtt)
