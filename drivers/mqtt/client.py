"""``MqttClient``: one MQTT 3.1.1 session over one network connection, on ``asyncio.Protocol``.

Follows OASIS MQTT Version 3.1.1: 3.1 CONNECT and 3.2 CONNACK (session present, return codes),
3.3/3.4 PUBLISH and PUBACK at QoS 0 and 1 (4.3.1, 4.3.2), 3.8/3.9 SUBSCRIBE and SUBACK,
3.10/3.11 UNSUBSCRIBE and UNSUBACK, 3.12/3.13 PINGREQ and PINGRESP under the keep alive of
3.1.2.10, 3.14 DISCONNECT, 2.3.1 packet identifiers (1..65535, free again once acknowledged).

No threads, no task or packet object per message: each message goes from ``data_received``
to a synchronous ``on_message``; a read's PUBACKs follow all its messages (lost with the
connection, they leave the broker to send those again) and everything written in one turn of
the event loop leaves in one ``write``. Reconnecting is the caller's loop.

An incoming PUBLISH over ``max_packet_bytes`` does not end the session: its remaining length
(2.2.3) tells at once that it is too large, its bytes are read and discarded as they arrive,
never held, and once it is read it is acknowledged as its QoS requires (PUBACK at QoS 1, 4.3.2;
nothing at QoS 0, 4.3.1), logged, counted and not delivered. Dropping the connection instead
would not help: a broker keeping a persistent session sends an unacknowledged QoS 1 message
again on every reconnect (4.4), so one message too large would keep the client off the air.
A QoS 2 message is a protocol error at any size: this client subscribes at QoS 0 or 1 and a
broker sends no more than the granted QoS (3.8.4). Any other packet over the limit is a
protocol error too, and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import cast

from drivers.mqtt.decoder import DEFAULT_MAX_PACKET_BYTES, MqttDecoder
from drivers.mqtt.errors import (
    MqttConnectionError,
    MqttError,
    MqttProtocolError,
    MqttRefusedError,
    MqttUsageError,
)
from drivers.mqtt.inflight import PacketIdPool
from drivers.mqtt.oversized import OversizedPublish
from drivers.mqtt.packets import (
    DISCONNECT_BYTES,
    PINGREQ_BYTES,
    SUBACK_FAILURE,
    Connack,
    Connect,
    MqttWill,
    Packet,
    Pingresp,
    Puback,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    encode_puback,
    encode_publish,
)
from drivers.mqtt.topics import encode_topic_filter, encode_topic_name

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]


def _ignore_message(topic: str, payload: bytes, retain: bool) -> None:
    """The default ``on_message``: incoming messages are dropped."""


class MqttClient(asyncio.Protocol):
    """An MQTT 3.1.1 client for one connection to a broker (QoS 0 and 1).

    Bad settings (keep alive over 65535 s, a password without a user name, a bad will topic)
    raise MqttUsageError here, before anything touches the network.

    ``on_message(topic, payload, retain)`` runs on the event loop for every incoming PUBLISH,
    redeliveries (DUP) included; it must be quick. A QoS 1 message is acknowledged after it
    returns. A message over ``max_packet_bytes`` (the whole packet) is skipped without being
    held in memory: acknowledged, logged as a warning, counted in ``oversized_skipped``, never
    handed to ``on_message``. The ``asyncio.Protocol`` methods are the transport's interface,
    not the caller's.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        on_message: MessageHandler = _ignore_message,
        clean_session: bool = True,
        keepalive_s: int = 30,
        will: MqttWill | None = None,
        username: str | None = None,
        password: str | bytes | None = None,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    ) -> None:
        if isinstance(password, str):
            password = password.encode("utf-8")
        try:
            self._connect_packet = Connect(
                client_id, clean_session, keepalive_s, will, username, password
            ).encode()
        except MqttUsageError:
            raise
        except ValueError as exc:
            raise MqttUsageError(f"bad MQTT client setting: {exc}") from exc
        self.host, self.port, self.client_id = host, port, client_id
        self._on_message = on_message
        self._keepalive = float(keepalive_s)
        self._tls = tls_context
        self._connect_timeout = connect_timeout_s
        self._max_packet_bytes = max_packet_bytes
        self._decoder = MqttDecoder(max_packet_bytes, on_oversized=self._skip_oversized)
        self._oversized_skipped = 0
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._connected = False
        self._connack_seen = False
        self._closed = asyncio.Event()
        self._close_error: MqttError | None = None
        self._connack: asyncio.Future[Connack] | None = None
        self._in_flight = PacketIdPool()
        self._out: list[bytes] = []
        self._acks: list[bytes] = []
        self._last_sent = self._last_received = 0.0
        self._ping_outstanding = False
        self._keepalive_timer: asyncio.TimerHandle | None = None

    @property
    def is_connected(self) -> bool:
        """Whether CONNACK accepted the session and the connection is still up."""
        return self._connected

    @property
    def oversized_skipped(self) -> int:
        """How many incoming messages were over ``max_packet_bytes`` and skipped."""
        return self._oversized_skipped

    async def connect(self) -> bool:
        """Open the connection and send CONNECT; returns CONNACK's session-present flag.

        Raises MqttConnectionError (unreachable, TLS failure, no CONNACK within
        ``connect_timeout_s``, connection lost), MqttRefusedError (CONNACK return code) or
        MqttProtocolError (the peer answered something that is not a CONNACK).
        """
        if self._started:
            raise MqttConnectionError("this client was already connected once; make a new one")
        self._started = True
        loop = self._loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        # connect() raises what fails it; the future's own copy of the error is not news.
        self._connack.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: self,
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self.host if self._tls is not None else None,
                )
                connack = await self._connack
        except TimeoutError as exc:
            self._drop(MqttConnectionError("connect timed out"))
            raise MqttConnectionError(
                f"no CONNACK from {self.host}:{self.port} within {self._connect_timeout} s"
            ) from exc
        except OSError as exc:
            self._drop(MqttConnectionError(str(exc)))
            raise MqttConnectionError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        except MqttError:
            self._drop(None)
            raise
        except asyncio.CancelledError:
            self._drop(MqttConnectionError("connect cancelled"))
            raise
        if connack.return_code:
            error = MqttRefusedError.from_connack(connack.return_code)
            self._drop(error)
            raise error
        if not self._connected:
            raise self._not_connected()
        if self._keepalive:
            self._keepalive_timer = loop.call_at(
                self._last_sent + self._keepalive, self._keepalive_tick
            )
        return connack.session_present

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Send a message; at QoS 1, returns once the broker's PUBACK arrives.

        Raises MqttTopicError (bad topic, nothing sent), MqttUsageError (QoS not 0 or 1) or
        MqttConnectionError (not connected, or the connection ends before the PUBACK).
        """
        raw_topic = encode_topic_name(topic)
        if not self._connected:
            raise self._not_connected()
        if qos == 0:
            self._send(encode_publish(raw_topic, payload, 0, retain, 0, False))
            return
        if qos != 1:
            raise MqttUsageError(f"QoS {qos} is not supported; use 0 or 1")
        packet_id, future = await self._in_flight.reserve()
        self._send(encode_publish(raw_topic, payload, 1, retain, packet_id, False))
        await future

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[int]:
        """Subscribe to ``(topic filter, max QoS)`` pairs; returns the granted QoS of each.

        Raises MqttTopicError (bad filter), MqttUsageError (no filter, QoS not 0 or 1),
        MqttRefusedError (the broker answered 0x80 for a filter) or MqttConnectionError.
        """
        if not filters:
            raise MqttUsageError("subscribe needs at least one topic filter")
        for topic_filter, qos in filters:
            encode_topic_filter(topic_filter)
            if qos not in (0, 1):
                raise MqttUsageError(f"QoS {qos} for {topic_filter!r} is not supported; use 0 or 1")
        if not self._connected:
            raise self._not_connected()
        packet_id, future = await self._in_flight.reserve()
        self._send(Subscribe(packet_id, tuple(filters)).encode())
        codes: tuple[int, ...] = await future
        if len(codes) != len(filters):
            error = MqttProtocolError(
                f"SUBACK has {len(codes)} return codes for {len(filters)} topic filters"
            )
            self._drop(error)
            raise error
        refused = [f for (f, _), code in zip(filters, codes, strict=True) if code == SUBACK_FAILURE]
        if refused:
            raise MqttRefusedError(
                f"broker refused the subscription to {', '.join(refused)} (SUBACK 0x80)",
                SUBACK_FAILURE,
            )
        return list(codes)

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """Unsubscribe from topic filters; returns once UNSUBACK arrives."""
        if not filters:
            raise MqttUsageError("unsubscribe needs at least one topic filter")
        for topic_filter in filters:
            encode_topic_filter(topic_filter)
        if not self._connected:
            raise self._not_connected()
        packet_id, future = await self._in_flight.reserve()
        self._send(Unsubscribe(packet_id, tuple(filters)).encode())
        await future

    async def disconnect(self) -> None:
        """Send DISCONNECT (the broker discards the will) and close; a no-op once closed."""
        transport = self._transport
        if transport is None and not self._closed.is_set():
            self._finish(None)
        if transport is None or transport.is_closing():
            await self._closed.wait()
            return
        self._connected = False
        self._out.append(DISCONNECT_BYTES)
        self._flush()
        transport.close()
        await self._closed.wait()

    def abort(self) -> None:
        """Drop the connection at once, without DISCONNECT: the broker publishes the will."""
        self._drop(MqttConnectionError("connection aborted by this client"), clean=True)

    async def wait_closed(self) -> None:
        """Wait until the connection ends; raises why if it was lost rather than closed.

        Returns after ``disconnect()`` or ``abort()``; raises MqttConnectionError when the
        connection was lost or timed out, MqttProtocolError when the peer sent garbage, and
        the MqttRefusedError of a refused ``connect()``.
        """
        await self._closed.wait()
        if self._close_error is not None:
            raise self._close_error

    def _not_connected(self) -> MqttConnectionError:
        reason = f": {self._close_error}" if self._close_error is not None else ""
        return MqttConnectionError(f"not connected to {self.host}:{self.port}{reason}")

    def _send(self, data: bytes) -> None:
        out = self._out
        out.append(data)
        if len(out) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        out = self._out
        if not out or self._transport is None or self._transport.is_closing():
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        assert self._loop is not None
        self._last_sent = self._loop.time()
        self._transport.write(data)

    def _keepalive_tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        keepalive = self._keepalive
        silent_for = now - self._last_received
        if silent_for >= keepalive * 1.5:
            self._drop(
                MqttConnectionError(
                    f"no packet from the broker for {silent_for:.1f} s (keep alive {keepalive:g} s)"
                )
            )
            return
        if not self._ping_outstanding and (
            now - self._last_sent >= keepalive or silent_for >= keepalive
        ):
            self._ping_outstanding = True
            self._send(PINGREQ_BYTES)
            self._last_sent = now
        deadline = self._last_received + keepalive * 1.5
        if not self._ping_outstanding:
            deadline = min(deadline, self._last_received + keepalive)
        deadline = max(min(deadline, self._last_sent + keepalive), now + 0.01)
        self._keepalive_timer = self._loop.call_at(deadline, self._keepalive_tick)

    def _drop(self, error: MqttError | None, *, clean: bool = False) -> None:
        """Close the transport at once; ``error`` is what pending requests and wait_closed get."""
        if self._close_error is None and not clean:
            self._close_error = error
        self._connected = False
        if self._transport is not None:
            self._transport.abort()
        elif not self._closed.is_set():
            self._finish(error)

    def _finish(self, error: MqttError | None) -> None:
        self._connected = False
        self._transport = None
        self._out.clear()
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        lost = MqttConnectionError(
            f"connection to {self.host}:{self.port} closed"
            + (f": {error}" if error is not None else "")
        )
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error if error is not None else lost)
        self._in_flight.fail_all(lost)
        self._closed.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert self._loop is not None
        stream = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's
        self._transport = stream
        self._last_sent = self._last_received = self._loop.time()
        stream.write(self._connect_packet)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_error is None and self._connected:
            reason = str(exc) if exc is not None else "closed by the broker"
            self._close_error = MqttConnectionError(
                f"connection to {self.host}:{self.port} lost: {reason}"
            )
        elif self._close_error is None and self._connack is not None and not self._connack.done():
            self._close_error = MqttConnectionError(
                f"{self.host}:{self.port} closed the connection before CONNACK"
            )
        self._finish(self._close_error)

    def data_received(self, data: bytes) -> None:
        assert self._loop is not None
        self._last_received = self._loop.time()
        acks = self._acks
        try:
            self._decoder.feed_into(data, self._deliver, self._dispatch)
        except MqttProtocolError as exc:
            logger.warning("%s: closing the connection: %s", self.client_id, exc)
            self._drop(exc)
        if acks:  # the PUBACKs of every message this read handed over, in one write
            self._send(b"".join(acks))
            acks.clear()

    def _dispatch(self, packet: Packet) -> None:
        kind = type(packet)
        if not self._connack_seen and kind is not Connack:
            raise MqttProtocolError(f"the broker sent {kind.__name__.upper()} before CONNACK")
        if kind is Puback:
            assert isinstance(packet, Puback)
            self._acknowledge(packet.packet_id, None)
        elif kind is Pingresp:
            self._ping_outstanding = False
        elif kind is Suback:
            assert isinstance(packet, Suback)
            self._acknowledge(packet.packet_id, packet.return_codes)
        elif kind is Unsuback:
            assert isinstance(packet, Unsuback)
            self._acknowledge(packet.packet_id, None)
        elif kind is Connack and not self._connack_seen and self._connack is not None:
            assert isinstance(packet, Connack)
            self._connack_seen = True
            # Queued messages may follow CONNACK in the same read; their callbacks may publish.
            self._connected = packet.return_code == 0
            if not self._connack.done():
                self._connack.set_result(packet)
        else:
            raise MqttProtocolError(f"the broker sent an unexpected {kind.__name__.upper()}")

    def _acknowledge(self, packet_id: int, result: object) -> None:
        if not self._in_flight.complete(packet_id, result):
            logger.debug("%s: acknowledgement for unknown packet id %d", self.client_id, packet_id)

    def _deliver(self, topic: str, payload: bytes, flags: int, packet_id: int) -> None:
        """One incoming PUBLISH: handed to ``on_message``; at QoS 1 its PUBACK is queued for
        the end of the read, so none leaves before its message was handed over."""
        if not self._connack_seen:
            raise MqttProtocolError("the broker sent PUBLISH before CONNACK")
        if flags & 4:
            raise MqttProtocolError("the broker sent a QoS 2 PUBLISH; this client asks for ≤ 1")
        if not self._connected:  # dropped earlier in this read: the broker sends it again
            return
        try:
            self._on_message(topic, payload, bool(flags & 1))
        except Exception:
            logger.exception("%s: on_message failed for %r", self.client_id, topic)
        if packet_id:
            self._acks.append(encode_puback(packet_id))

    def _skip_oversized(self, message: OversizedPublish) -> None:
        """One incoming PUBLISH over the maximum packet size, already read past: acknowledged
        like a delivered one (MQTT 3.1.1 section 4.3.2: PUBACK at QoS 1, at the end of the
        read) so the broker does not send it again, but not handed to ``on_message``."""
        if not self._connack_seen:
            raise MqttProtocolError("the broker sent PUBLISH before CONNACK")
        if message.qos == 2:
            raise MqttProtocolError("the broker sent a QoS 2 PUBLISH; this client asks for ≤ 1")
        if not self._connected:  # dropped earlier in this read: the broker sends it again
            return
        self._oversized_skipped += 1
        logger.warning(
            "%s: skipped a message on %r of %d bytes, over the maximum packet size of %d bytes "
            "(QoS %d; acknowledged, not delivered)",
            self.client_id,
            message.topic,
            message.size,
            self._max_packet_bytes,
            message.qos,
        )
        if message.packet_id:
            self._acks.append(encode_puback(message.packet_id))
