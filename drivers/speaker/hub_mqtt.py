"""Server side of the MQTT transport (docs/protocols/speaker.md, section 4.3).

One persistent session to the broker (``drivers.mqtt.MqttClient``, clean session off, so acks
and heartbeats sent while the server is away wait at the broker) publishes commands (QoS 1) to
box and area topics and subscribes to every box's ``up`` and ``presence`` topics; ``retain``
leaves a retained message (sealed audio for the boxes, section 5.1). The broker holds QoS 1
commands for boxes whose persistent session is offline and publishes a box's last will
(``offline``) when it vanishes. A box's ``online`` presence is its signed hello, verified
like any box message; anything else on a presence topic is refused. The session reconnects on
its own; meanwhile its boxes count as offline (the retained hellos bring them back after the
resubscription) and ``send`` fails fast with SpeakerConnectionError.

Given the nodes of a broker cluster, the session moves to the next node whenever it fails or is
lost, and ``publish_sessions`` more connections (``drivers.mqtt.brokers.MqttPublisherPool``,
spread over the nodes) carry the commands, so a fan-out is not held to one connection's rate
and sending goes on while the receiving session fails over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence

from drivers.mqtt import MqttClient, MqttError
from drivers.mqtt.brokers import BrokerAddress, BrokerRotation, MqttPublisherPool
from drivers.speaker.errors import SpeakerConnectionError
from drivers.speaker.hub_link import HubLink, LinkSink
from drivers.speaker.topics import OFFLINE, SpeakerTopics

log = logging.getLogger(__name__)

TRANSPORT = "mqtt"
KEEPALIVE_S = 30
DISCONNECT_WITHIN_S = 1.0
_BOX_IDS_KEPT = 1 << 20
"""Box ids seen in topics and found well-formed; forgotten all at once past this many."""


class MqttHubLink(HubLink):
    """The hub's session with the MQTT broker."""

    name = TRANSPORT

    def __init__(
        self,
        sink: LinkSink,
        host: str,
        port: int,
        topics: SpeakerTopics,
        client_id: str,
        *,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 60.0,
        username: str | None = None,
        password: str | None = None,
        failover: Sequence[BrokerAddress] = (),
        publish_sessions: int = 0,
    ) -> None:
        self._sink = sink
        self._brokers = BrokerRotation([(host, port), *failover])
        self._topics = topics
        self._box_head = f"{topics.prefix}/box/"
        self._box_ids: set[str] = set()
        self._client_id = client_id
        self._tls = tls_context
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._username, self._password = username, password
        self._client: MqttClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._publishers = (
            MqttPublisherPool(
                [(host, port), *failover],
                client_id,
                publish_sessions,
                username=username,
                password=password,
                tls_context=tls_context,
                connect_timeout_s=connect_timeout_s,
                keepalive_s=KEEPALIVE_S,
            )
            if publish_sessions
            else None
        )

    async def start(self) -> None:
        """Connect, trying each broker once; raises SpeakerConnectionError when none can be
        reached or they refuse the login. Later losses are reconnected in the background."""
        for attempt in range(len(self._brokers)):
            client = self._new_client()
            try:
                await self._open(client)
                break
            except MqttError as exc:
                client.abort()
                if attempt == len(self._brokers) - 1:
                    raise SpeakerConnectionError(f"MQTT session cannot start: {exc}") from exc
                self._brokers.advance()
        if self._publishers is not None:
            try:
                await self._publishers.start()
            except MqttError as exc:
                await client.disconnect()
                raise SpeakerConnectionError(f"MQTT publishers cannot start: {exc}") from exc
        self._task = asyncio.get_running_loop().create_task(self._session_loop(client))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._publishers is not None:
            await self._publishers.stop()

    def _new_client(self) -> MqttClient:
        host, port = self._brokers.current
        return MqttClient(
            host,
            port,
            self._client_id,
            on_message=self._dispatch,
            clean_session=False,
            keepalive_s=KEEPALIVE_S,
            username=self._username,
            password=self._password,
            tls_context=self._tls,
            connect_timeout_s=self._connect_timeout_s,
        )

    async def _open(self, client: MqttClient) -> None:
        await client.connect()
        await client.subscribe([(self._topics.all_box_messages, 1), (self._topics.all_presence, 1)])
        self._client = client

    async def _session_loop(self, client: MqttClient) -> None:
        delay = 0.2
        while True:
            try:
                if self._client is not client:
                    await self._open(client)
                delay = 0.2
                await client.wait_closed()
            except MqttError as exc:
                log.warning("MQTT session to %s:%s lost: %s", client.host, client.port, exc)
            finally:
                if self._client is client:
                    # Boxes come back online as their retained hellos arrive on resubscribing.
                    self._sink.link_lost(TRANSPORT)
                self._client = None
                if client.is_connected:
                    with contextlib.suppress(MqttError, TimeoutError):
                        async with asyncio.timeout(DISCONNECT_WITHIN_S):
                            await client.disconnect()
                client.abort()
            self._brokers.advance()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            client = self._new_client()

    def _dispatch(self, topic: str, payload: bytes, retain: bool) -> None:
        head = self._box_head
        if not topic.startswith(head):
            return
        box_id, _, leaf = topic[len(head) :].partition("/")
        ids = self._box_ids
        if box_id not in ids:  # a box id is checked against the pattern once, not per message
            if self._topics.box_of(topic) is None:
                return
            if len(ids) >= _BOX_IDS_KEPT:
                ids.clear()
            ids.add(box_id)
        if leaf == "presence" and payload == OFFLINE:
            self._sink.presence(box_id, False, TRANSPORT)
        elif leaf == "up" or leaf == "presence":
            # Acks, heartbeats and the signed hello a box leaves as its presence: the hub
            # verifies them, and a verified message is what puts a box online.
            # A retained message (``retain`` set on delivery) is one the broker replays to
            # the hub's new subscription: not news of the box (MQTT 3.1.1 section 3.3.1.3).
            self._sink.receive(box_id, payload, TRANSPORT, retain)

    @property
    def topics(self) -> SpeakerTopics:
        """The topics under the link's prefix."""
        return self._topics

    async def _publish(self, topic: str, data: bytes, retain: bool = False) -> None:
        client = self._publishers or self._client
        if client is None:
            host, port = self._brokers.current
            raise SpeakerConnectionError(f"not connected to MQTT broker {host}:{port}")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await client.publish(topic, data, qos=1, retain=retain)
        except MqttError as exc:
            raise SpeakerConnectionError(f"MQTT publish to {topic} failed: {exc}") from exc
        except TimeoutError as exc:
            raise SpeakerConnectionError(
                f"MQTT publish to {topic}: no PUBACK within {self._publish_timeout_s:.0f} s"
            ) from exc

    async def send(self, box_id: str, data: bytes) -> None:
        """Publish to the box's command topic; returns once the broker has it (PUBACK)."""
        await self._publish(self._topics.box_commands(box_id), data)

    async def send_area(self, area_code: str, data: bytes) -> None:
        """Publish to an area's command topic; returns once the broker has it (PUBACK)."""
        await self._publish(self._topics.area_commands(area_code), data)

    async def retain(self, topic: str, data: bytes) -> None:
        """Publish ``data`` as ``topic``'s retained message (empty: delete it, MQTT 3.1.1
        section 3.3.1.3); returns once the broker has it (PUBACK)."""
        await self._publish(topic, data, retain=True)

    def drop(self, box_id: str) -> None:
        """Presence over MQTT is the broker's business; nothing to close here."""
