"""Test equipment for the MQTT client: a paho-mqtt peer bridged to asyncio, and a hostile TCP
peer that answers CONNECT with whatever a test scripts (the broker is
:class:`drivers.mqtt.testing.MosquittoBroker`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Self

import paho.mqtt.client as paho


class PahoPeer:
    """A paho-mqtt 3.1.1 client on its own network thread; its callbacks land on the loop."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue[tuple[str, bytes, bool, int]] = asyncio.Queue()
        self._connected: asyncio.Future[int] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self._loop.call_soon_threadsafe(self._connected.set_result, int(code.value))

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        item = (message.topic, bytes(message.payload), bool(message.retain), message.qos)
        self._loop.call_soon_threadsafe(self.messages.put_nowait, item)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        # The SUBACK can arrive before ``subscribe`` has filed its future: look it up on the
        # loop, which runs this only after ``subscribe`` (no await between send and filing).
        granted = [int(code.value) for code in codes]
        self._loop.call_soon_threadsafe(self._suback, mid, granted)

    def _suback(self, mid: int, granted: list[int]) -> None:
        self._subacks.pop(mid).set_result(granted)

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self._client.connect, self.host, self.port, 30)
        self._client.loop_start()
        assert await asyncio.wait_for(self._connected, 5) == 0
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        code, mid = self._client.subscribe(topic_filter, qos)
        assert code == paho.MQTT_ERR_SUCCESS
        future = self._subacks[mid] = self._loop.create_future()
        return await asyncio.wait_for(future, 5)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos, retain)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published()

    async def next_message(self, timeout_s: float = 5.0) -> tuple[str, bytes, bool, int]:
        return await asyncio.wait_for(self.messages.get(), timeout_s)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class HostilePeer:
    """A plain TCP server on 127.0.0.1 that runs ``script`` for each connection it accepts."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # Dropping the connections ends every script's reads; cancelling would make asyncio's
        # stream callback log the CancelledError.
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
