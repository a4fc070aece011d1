"""The one exception tree of the MQTT client, split by whether a retry makes sense.

::

    MqttError
    ├── MqttConnectionError    (also ConnectionError) broker unreachable, no CONNACK in time,
    │                          connection lost or closed; retry with a new connection
    ├── MqttRefusedError       the broker said no: a CONNACK return code (3.2.2.3) or a
    │                          SUBACK failure 0x80 (3.9.3); the same request gets the same answer
    ├── MqttProtocolError      (also ValueError) malformed bytes from the peer or a packet the
    │                          peer must not send; the connection is closed
    └── MqttUsageError         (also ValueError) a bad setting or argument from the caller
        │                      (keep alive out of range, QoS 2, password without user name);
        │                      nothing was sent
        └── MqttTopicError     a topic name or filter that breaks OASIS MQTT 3.1.1 section 4.7

Foreign errors (OSError, ssl.SSLError, TimeoutError) are mapped to ``MqttConnectionError`` at
the transport boundary with ``raise ... from``; nothing else escapes the package.
"""

from __future__ import annotations

CONNACK_MEANINGS: dict[int, str] = {
    0: "connection accepted",
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttError(Exception):
    """Base of every error raised by ``drivers.mqtt``."""


class MqttConnectionError(MqttError, ConnectionError):
    """The network connection to the broker could not be made, timed out or was lost."""


class MqttRefusedError(MqttError):
    """The broker refused a connection (CONNACK) or a subscription (SUBACK 0x80).

    ``return_code`` is the CONNACK return code, or 0x80 for a refused subscription.
    """

    def __init__(self, message: str, return_code: int) -> None:
        super().__init__(message)
        self.return_code = return_code

    @classmethod
    def from_connack(cls, return_code: int) -> MqttRefusedError:
        """The error for a CONNACK return code other than 0, with its meaning (3.2.2.3)."""
        meaning = CONNACK_MEANINGS.get(return_code, "reserved return code")
        return cls(f"broker refused the connection: {return_code} ({meaning})", return_code)


class MqttProtocolError(MqttError, ValueError):
    """The peer sent bytes that are not valid MQTT 3.1.1, or a packet it must not send."""


class MqttUsageError(MqttError, ValueError):
    """A setting or argument given by the caller is not valid; nothing was sent."""


class MqttTopicError(MqttUsageError):
    """A topic name or topic filter given by the caller is not valid (section 4.7)."""
