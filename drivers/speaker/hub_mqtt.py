"""Server side of the MQTT transport (docs/protocols/speaker.md, section 4.3).

One session to the broker publishes commands (QoS 1) to box and area topics and subscribes to
every box's ``up`` and ``presence`` topics. The broker holds QoS 1 commands for boxes whose
persistent session is offline and publishes a box's last will (``offline``) when it vanishes.
The session reconnects on its own; ``send`` fails fast with SpeakerConnectionError meanwhile.
``max_inflight`` 0 leaves paho's in-flight window to the broker's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid

import aiomqtt

from drivers.speaker.errors import SpeakerConnectionError
from drivers.speaker.hub_link import HubLink, LinkSink
from drivers.speaker.topics import SpeakerTopics

log = logging.getLogger(__name__)

TRANSPORT = "mqtt"
MAX_CONCURRENT_PUBLISHES = 64


class MqttHubLink(HubLink):
    """The hub's session with the MQTT broker."""

    name = TRANSPORT

    def __init__(
        self,
        sink: LinkSink,
        host: str,
        port: int,
        topics: SpeakerTopics,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 60.0,
        max_inflight: int = 0,
    ) -> None:
        self._sink = sink
        self._host, self._port = host, port
        self._topics = topics
        self._tls = tls_context
        self._connect_timeout_s = connect_timeout_s
        self._max_inflight = max_inflight
        self._publish_timeout_s = publish_timeout_s
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None

    async def start(self) -> None:
        """Connect; raises SpeakerConnectionError when the broker is not reachable in time."""
        self._task = asyncio.get_running_loop().create_task(self._session_loop())
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._connected.wait()
        except TimeoutError as exc:
            await self.stop()
            raise SpeakerConnectionError(
                f"MQTT broker {self._host}:{self._port} unreachable: {self._failure}"
            ) from exc

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _session_loop(self) -> None:
        delay = 0.2
        while True:
            client = aiomqtt.Client(
                self._host,
                self._port,
                identifier=f"broadcaster-hub-{uuid.uuid4().hex[:12]}",
                tls_context=self._tls,
                max_inflight_messages=self._max_inflight,
                timeout=self._publish_timeout_s,
                # aiomqtt scans every pending call on each new one: bounding them keeps a
                # fan-out to thousands of boxes linear instead of quadratic.
                max_concurrent_outgoing_calls=MAX_CONCURRENT_PUBLISHES,
            )
            client.pending_calls_threshold = MAX_CONCURRENT_PUBLISHES
            try:
                async with client:
                    await client.subscribe(
                        [(self._topics.all_box_messages, 1), (self._topics.all_presence, 1)]
                    )
                    self._client = client
                    self._connected.set()
                    delay = 0.2
                    async for message in client.messages:
                        self._dispatch(message.topic.value, message.payload)
            except aiomqtt.MqttError as exc:
                self._failure = exc
                log.warning("MQTT session to %s:%s lost: %s", self._host, self._port, exc)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _dispatch(self, topic: str, payload: object) -> None:
        parsed = self._topics.box_of(topic)
        if parsed is None or not isinstance(payload, bytes):
            return
        box_id, leaf = parsed
        if leaf == "up":
            self._sink.receive(box_id, payload, TRANSPORT)
        else:
            self._sink.presence(box_id, payload == b"online", TRANSPORT)

    async def _publish(self, topic: str, data: bytes) -> None:
        client = self._client
        if client is None:
            raise SpeakerConnectionError(f"not connected to MQTT broker {self._host}:{self._port}")
        try:
            await client.publish(topic, data, qos=1)
        except aiomqtt.MqttError as exc:
            raise SpeakerConnectionError(f"MQTT publish to {topic} failed: {exc}") from exc

    async def send(self, box_id: str, data: bytes) -> None:
        """Publish to the box's command topic; returns once the broker has it (PUBACK)."""
        await self._publish(self._topics.box_commands(box_id), data)

    async def send_area(self, area_code: str, data: bytes) -> None:
        """Publish to an area's command topic; returns once the broker has it (PUBACK)."""
        await self._publish(self._topics.area_commands(area_code), data)

    def drop(self, box_id: str) -> None:
        """Presence over MQTT is the broker's business; nothing to close here."""
