"""A lean asyncio MQTT 3.1.1 client: codec, topic rules and one-connection sessions.

Follows OASIS MQTT Version 3.1.1 (QoS 0 and 1; the QoS 2 flow is not supported):

- ``MqttClient``: connect, publish, subscribe, unsubscribe, keep alive, disconnect, abort,
  on ``asyncio.Protocol`` without threads; reconnecting is the caller's loop.
- ``MqttDecoder`` and the packet dataclasses (``Connect`` ... ``Disconnect``): bytes <-> packets,
  usable on either side of the wire (brokers and simulators in tests reuse them); a PUBLISH over
  the maximum packet size can be skipped without being held (``OversizedPublish``).
- ``topic_matches``, ``encode_topic_name``, ``encode_topic_filter``: section 4.7.
- Errors: ``MqttError`` and its tree, drawn in ``drivers.mqtt.errors``.
"""

from drivers.mqtt.client import MqttClient
from drivers.mqtt.decoder import DEFAULT_MAX_PACKET_BYTES, MqttDecoder
from drivers.mqtt.errors import (
    MqttConnectionError,
    MqttError,
    MqttProtocolError,
    MqttRefusedError,
    MqttTopicError,
    MqttUsageError,
)
from drivers.mqtt.oversized import OversizedPublish
from drivers.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    MqttWill,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from drivers.mqtt.topics import encode_topic_filter, encode_topic_name, topic_matches

__all__ = [
    "DEFAULT_MAX_PACKET_BYTES",
    "Connack",
    "Connect",
    "Disconnect",
    "MqttClient",
    "MqttConnectionError",
    "MqttDecoder",
    "MqttError",
    "MqttProtocolError",
    "MqttRefusedError",
    "MqttTopicError",
    "MqttUsageError",
    "MqttWill",
    "OversizedPublish",
    "Packet",
    "Pingreq",
    "Pingresp",
    "Puback",
    "Publish",
    "Suback",
    "Subscribe",
    "Unsuback",
    "Unsubscribe",
    "encode_topic_filter",
    "encode_topic_name",
    "topic_matches",
]
