"""Box-side transports: how a box agent reaches the server (docs/protocols/speaker.md, section 4).

- ``TcpUplink``: the box connects out (through NAT and 4G routers), optionally over TLS, sends a
  signed hello, then exchanges newline-delimited JSON; it reconnects with jittered backoff.
- ``MqttUplink``: one MQTT session per box (``drivers.mqtt``; persistent session, QoS 1
  publishes) subscribed to its own command topic and its areas' topics at ``command_qos``; its
  signed hello is its retained presence and the broker's last will marks it offline. Given the
  nodes of a broker cluster, it moves to the next node whenever a connection fails or is lost;
  the cluster keeps the session, so commands queued meanwhile arrive on the new node. With
  ``command_qos`` 0 the broker keeps the subscriptions but queues nothing for the box (on NATS
  a QoS 1 subscription of a persistent session is a replicated JetStream consumer, a QoS 0 one
  a plain subscription): the server sends again what the box has not acknowledged when its
  new hello arrives. The session also carries the sealed audio commands retain under an
  ``audio_topic`` (:mod:`drivers.speaker.topic_audio`, offered to the agent): messages on
  those topics go there, the rest are commands.
- ``SerialBoxLine``: the box end of an RS-485 style line; answers the bus master's frames for
  one or more addresses on the same port, and repeats its latest acks when the master asks
  (SYNC).

Each uplink's ``run`` keeps the link up until it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.mqtt import MqttClient, MqttConnectionError, MqttError, MqttWill
from drivers.mqtt.brokers import BrokerAddress, BrokerRotation
from drivers.speaker.agent import BoxAgent
from drivers.speaker.errors import SpeakerConnectionError
from drivers.speaker.serial_frames import FrameKind, SerialFrame, SerialFrameDecoder, encode_frame
from drivers.speaker.serial_port import SerialPortStream
from drivers.speaker.tcp_options import enable_keepalive
from drivers.speaker.topic_audio import MAX_PACKET_BYTES, TopicAudio
from drivers.speaker.topics import OFFLINE, SpeakerTopics

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024


class _Backoff:
    """Exponential reconnect delay with full jitter."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self._first, self._max, self._next = first_s, max_s, first_s

    def reset(self) -> None:
        self._next = self._first

    async def wait(self) -> None:
        await asyncio.sleep(random.uniform(self._next / 2, self._next))
        self._next = min(self._next * 2, self._max)


class TcpUplink:
    """Keeps one TCP (or TLS) connection from the box to the hub."""

    def __init__(
        self,
        agent: BoxAgent,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        reconnect_s: tuple[float, float] = (0.2, 30.0),
    ) -> None:
        self._agent = agent
        self._host, self._port = host, port
        self._ssl = ssl_context
        self._backoff = _Backoff(*reconnect_s)
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, exchange messages, and reconnect whenever the link drops."""
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=MAX_LINE
                )
            except OSError as exc:
                log.info(
                    "box %s: cannot reach %s:%s: %s",
                    self._agent.box_id,
                    self._host,
                    self._port,
                    exc,
                )
                await self._backoff.wait()
                continue
            self._backoff.reset()
            try:
                await self._session(reader, writer)
            except* (OSError, ValueError, EOFError) as group:
                why = group.exceptions[0]
                log.info("box %s: link to %s lost: %s", self._agent.box_id, self._host, why)
            finally:
                self.connected.clear()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await self._backoff.wait()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        enable_keepalive(writer.get_extra_info("socket"))
        writer.write(self._agent.hello() + b"\n")
        self._agent.link_up()
        self.connected.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_forever(writer))
            await self._receive_forever(reader)
            raise EOFError("server closed the connection")

    async def _receive_forever(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if line.endswith(b"\n"):
                await self._agent.handle_command(line[:-1])

    async def _send_forever(self, writer: asyncio.StreamWriter) -> None:
        while True:
            lines = [await self._agent.next_outgoing()]
            while (more := self._agent.take_outgoing()) is not None:
                lines.append(more)
            writer.write(b"\n".join(lines) + b"\n")
            await writer.drain()


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    """A box's login at the broker."""

    username: str
    password: str = field(repr=False)


class MqttUplink:
    """Keeps one MQTT session for the box: commands in, acks and heartbeats out, and the
    sealed audio retained for its commands (offered to the agent at once).

    The retained presence is the box's signed hello while connected and ``offline`` (the last
    will, or published before a deliberate disconnect) otherwise.
    """

    def __init__(
        self,
        agent: BoxAgent,
        host: str,
        port: int,
        topics: SpeakerTopics,
        tls_context: ssl.SSLContext | None = None,
        keepalive_s: int = 30,
        reconnect_s: tuple[float, float] = (0.2, 30.0),
        timeout_s: float = 30.0,
        credentials: MqttCredentials | None = None,
        failover: Sequence[BrokerAddress] = (),
        command_qos: int = 1,
    ) -> None:
        self._agent = agent
        self._credentials = credentials
        self._command_qos = command_qos
        self._timeout_s = timeout_s
        self._brokers = BrokerRotation([(host, port), *failover])
        self._topics = topics
        self._tls = tls_context
        self._keepalive = keepalive_s
        self._backoff = _Backoff(*reconnect_s)
        self._audio = TopicAudio()
        agent.use_audio_topics(self._audio)
        self.connected = asyncio.Event()

    def _client(self, commands: asyncio.Queue[bytes]) -> MqttClient:
        box = self._agent.box_id
        credentials = self._credentials
        route_audio = self._audio.route

        def on_message(topic: str, payload: bytes, retain: bool) -> None:
            if not route_audio(topic, payload):
                commands.put_nowait(payload)

        host, port = self._brokers.current
        return MqttClient(
            host,
            port,
            f"box-{box}",
            on_message=on_message,
            clean_session=False,
            keepalive_s=self._keepalive,
            will=MqttWill(self._topics.presence(box), OFFLINE, qos=1, retain=True),
            tls_context=self._tls,
            connect_timeout_s=self._timeout_s,
            username=credentials.username if credentials else None,
            password=credentials.password if credentials else None,
            max_packet_bytes=MAX_PACKET_BYTES,
        )

    async def run(self) -> None:
        """Connect, exchange messages, and reconnect whenever the broker is lost.

        Commands are handled by one task that outlives the sessions: a command the broker
        delivered (and got its PUBACK for) is carried out even if the connection drops while
        it is being handled.
        """
        box = self._agent.box_id
        commands: asyncio.Queue[bytes] = asyncio.Queue()
        handler = asyncio.get_running_loop().create_task(self._handle_forever(commands))
        try:
            while True:
                client = self._client(commands)
                try:
                    await client.connect()
                    self._audio.attach(client)
                    self._backoff.reset()
                    await self._session(client)
                except* MqttError as group:
                    log.info("box %s: MQTT link lost: %s", box, group.exceptions[0])
                finally:
                    self.connected.clear()
                    await self._audio.detach()
                    await self._leave(client)
                self._brokers.advance()
                await self._backoff.wait()
        finally:
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handler

    async def _leave(self, client: MqttClient) -> None:
        """Say ``offline`` and disconnect, when the session is still up (a deliberate stop)."""
        if client.is_connected:
            with contextlib.suppress(MqttError, TimeoutError):
                async with asyncio.timeout(1.0):
                    presence = self._topics.presence(self._agent.box_id)
                    await client.publish(presence, OFFLINE, qos=1, retain=True)
                    await client.disconnect()
        client.abort()

    async def _session(self, client: MqttClient) -> None:
        box = self._agent.box_id
        qos = self._command_qos
        subscriptions = [(self._topics.box_commands(box), qos)] + [
            (self._topics.area_commands(code), qos) for code in self._agent.identity.area_keys
        ]
        await client.subscribe(subscriptions)
        await client.publish(self._topics.presence(box), self._agent.hello(), qos=1, retain=True)
        self._agent.link_up()
        self.connected.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_forever(client))
            await client.wait_closed()
            raise MqttConnectionError("the broker closed the session")

    async def _handle_forever(self, commands: asyncio.Queue[bytes]) -> None:
        """Commands in arrival order (the broker acknowledged each on receipt). A command the
        agent fails on is logged and the next one handled: one bad message must not leave the
        box deaf while it stays connected."""
        while True:
            data = await commands.get()
            try:
                await self._agent.handle_command(data)
            except Exception:
                log.exception("box %s: a command could not be handled", self._agent.box_id)

    async def _send_forever(self, client: MqttClient) -> None:
        up = self._topics.box_messages(self._agent.box_id)
        while True:
            message = await self._agent.next_outgoing()
            more = self._agent.take_outgoing()
            if more is None:
                await client.publish(up, message, qos=1)
                continue
            # Publish everything waiting at once: QoS 1 keeps their order, and an ack does not
            # wait for the previous one's PUBACK.
            batch = [message, more]
            while (more := self._agent.take_outgoing()) is not None:
                batch.append(more)
            await asyncio.gather(*(client.publish(up, m, qos=1) for m in batch))


class SerialBoxLine:
    """The box end of a serial line: answers the master for every address in ``agents``.

    Each master frame gets exactly one reply echoing its sequence number: the oldest waiting
    message (``MESSAGE``, or ``MESSAGE_MORE`` when more wait) or ``IDLE``. A SYNC first queues
    the latest ack of every live command and a heartbeat (``BoxAgent.link_up``). A repeated sequence
    number is a retransmission: the previous reply is sent again and nothing is executed twice.
    """

    def __init__(self, url: str, agents: Mapping[int, BoxAgent], baudrate: int = 115200) -> None:
        self._agents = dict(agents)
        self._url = url
        self._decoder = SerialFrameDecoder()
        self._stream = SerialPortStream(url, baudrate, self._on_bytes, self._on_gap)
        self._last_reply: dict[int, tuple[int, bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def replace_agent(self, address: int, agent: BoxAgent) -> None:
        """Put a new agent at ``address`` (after a simulated restart)."""
        self._agents[address] = agent
        self._last_reply.pop(address, None)
        agent.link_up()

    async def run(self) -> None:
        """Open the port and answer frames until cancelled.

        Raises SpeakerConnectionError when the port fails, so a supervisor can restart the box.
        """
        await self._stream.open()
        for agent in self._agents.values():
            agent.link_up()
        try:
            await self._stream.failed.wait()
            raise SpeakerConnectionError(f"serial line {self._url} failed")
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)
            await self._stream.close()

    def _on_gap(self) -> None:
        if self._decoder.pending:
            self._decoder.discard_partial()

    def _on_bytes(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            self._on_frame(frame)

    def _on_frame(self, frame: SerialFrame) -> None:
        agent = self._agents.get(frame.address)
        if agent is None or frame.kind not in (FrameKind.COMMAND, FrameKind.POLL, FrameKind.SYNC):
            return
        last = self._last_reply.get(frame.address)
        if last is not None and last[0] == frame.sequence:
            self._spawn(self._stream.write(last[1]))
            return
        if frame.kind is FrameKind.COMMAND:
            agent.submit_command(frame.payload)
        elif frame.kind is FrameKind.SYNC:
            agent.link_up()
        message = agent.take_outgoing()
        if message is None:
            reply = SerialFrame(frame.address, frame.sequence, FrameKind.IDLE)
        else:
            kind = FrameKind.MESSAGE_MORE if agent.outgoing_count else FrameKind.MESSAGE
            reply = SerialFrame(frame.address, frame.sequence, kind, message)
        data = encode_frame(reply)
        self._last_reply[frame.address] = (frame.sequence, data)
        self._spawn(self._stream.write(data))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
