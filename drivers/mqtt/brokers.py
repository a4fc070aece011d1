"""Several brokers of one cluster: their addresses, the order a client tries them in, and a pool
of publishing sessions spread over them.

A clustering broker keeps a persistent session (OASIS MQTT 3.1.1 section 3.1.2.4,
``clean_session=0``) on every node, so a client that loses its node connects to the next one
and carries on. Addresses are written ``host[:port]`` and may be listed in one URL authority,
``mqtt://a:1883,b:1883,c``; ``BrokerRotation`` cycles through them, one step per lost or
failed connection.

``MqttPublisherPool`` keeps ``sessions`` connections (clean sessions: a publisher needs no state
at the broker), started on different nodes, and publishes each message through the next one
that is up. Brokers that make every QoS 1 PUBLISH wait for a replicated write before its
PUBACK, and handle one connection's publishes in turn, carry a fan-out this way at the rate of
``sessions`` connections instead of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from drivers.mqtt.client import MqttClient
from drivers.mqtt.errors import MqttConnectionError, MqttError, MqttUsageError

log = logging.getLogger(__name__)

BrokerAddress = tuple[str, int]

FIRST_RETRY_S = 0.2
MAX_RETRY_S = 10.0


def parse_hosts(authority: str, default_port: int) -> list[BrokerAddress]:
    """``host[:port]`` entries separated by commas; raises MqttUsageError naming a bad one."""
    addresses: list[BrokerAddress] = []
    for entry in authority.split(","):
        parts = urlsplit(f"//{entry.strip()}")
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise MqttUsageError(f"broker {entry!r}: invalid port") from exc
        if not parts.hostname or parts.username is not None or parts.path:
            raise MqttUsageError(f"broker {entry!r}: expected host or host:port")
        addresses.append((parts.hostname, port))
    return addresses


def parse_broker_url(url: str, default_port: int = 1883) -> list[BrokerAddress]:
    """``mqtt://host[:port][,host[:port]...]``; raises MqttUsageError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "mqtt":
        raise MqttUsageError(f"broker {url!r}: expected mqtt://host:port")
    authority, _, path = rest.partition("/")
    if path:
        raise MqttUsageError(f"broker {url!r}: a broker URL has no path")
    return parse_hosts(authority, default_port)


class BrokerRotation:
    """The brokers a client tries, in order, moving on after each failure or loss."""

    def __init__(self, brokers: Sequence[BrokerAddress], start: int = 0) -> None:
        if not brokers:
            raise MqttUsageError("at least one broker is needed")
        self._brokers = list(brokers)
        self._index = start % len(self._brokers)

    def __len__(self) -> int:
        return len(self._brokers)

    @property
    def current(self) -> BrokerAddress:
        return self._brokers[self._index]

    def advance(self) -> BrokerAddress:
        """Move to the next broker and return it."""
        self._index = (self._index + 1) % len(self._brokers)
        return self.current


class MqttPublisherPool:
    """Publishing sessions over a broker cluster, each reconnecting to the next broker on loss.

    ``start`` connects every session (session ``i`` first tries broker ``i``) and raises
    MqttConnectionError when none could connect; the others keep trying in the background.
    """

    def __init__(
        self,
        brokers: Sequence[BrokerAddress],
        client_id_prefix: str,
        sessions: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
    ) -> None:
        if sessions < 1:
            raise MqttUsageError("a publisher pool needs at least one session")
        self._rotations = [BrokerRotation(brokers, i) for i in range(sessions)]
        self._prefix = client_id_prefix
        self._username, self._password = username, password
        self._tls = tls_context
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._clients: list[MqttClient | None] = [None] * sessions
        self._tasks: list[asyncio.Task[None]] = []
        self._next = 0

    def _client(self, index: int) -> MqttClient:
        host, port = self._rotations[index].current
        return MqttClient(
            host,
            port,
            f"{self._prefix}-pub{index}",
            clean_session=True,
            keepalive_s=self._keepalive_s,
            username=self._username,
            password=self._password,
            tls_context=self._tls,
            connect_timeout_s=self._connect_timeout_s,
        )

    async def _connect(self, index: int) -> MqttClient:
        """Connect session ``index``, trying each broker once; raises the last error."""
        rotation = self._rotations[index]
        error: MqttError = MqttConnectionError("no broker tried")
        for _ in range(len(rotation)):
            client = self._client(index)
            try:
                await client.connect()
            except MqttError as exc:
                client.abort()
                error = exc
                rotation.advance()
                continue
            self._clients[index] = client
            return client
        raise error

    async def start(self) -> None:
        results = await asyncio.gather(
            *(self._connect(i) for i in range(len(self._clients))), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            await self.stop()
            raise MqttConnectionError(f"no publishing session could connect: {errors[0]}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep(i)) for i in range(len(self._clients))]

    async def _keep(self, index: int) -> None:
        delay = FIRST_RETRY_S
        while True:
            client = self._clients[index]
            if client is not None:
                with contextlib.suppress(MqttError):
                    await client.wait_closed()
                self._clients[index] = None
                client.abort()
                self._rotations[index].advance()
            try:
                await self._connect(index)
                delay = FIRST_RETRY_S
            except MqttError as exc:
                log.info("publishing session %d: no broker reachable: %s", index, exc)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, MAX_RETRY_S)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish through the next connected session (``retain``: as the topic's retained
        message); raises MqttConnectionError when none is connected, or the errors of
        ``MqttClient.publish``."""
        count = len(self._clients)
        for step in range(count):
            client = self._clients[(self._next + step) % count]
            if client is not None and client.is_connected:
                self._next = (self._next + step + 1) % count
                await client.publish(topic, payload, qos=qos, retain=retain)
                return
        raise MqttConnectionError("no publishing session is connected to a broker")

    @property
    def connected(self) -> int:
        """How many sessions are connected now."""
        return sum(1 for c in self._clients if c is not None and c.is_connected)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for index, client in enumerate(self._clients):
            if client is not None:
                with contextlib.suppress(MqttError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await client.disconnect()
                client.abort()
                self._clients[index] = None
