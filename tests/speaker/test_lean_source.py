"""The lean fleet's source address: boxes of one simulator process connect from the loopback
address they are given, each from its own port below the ephemeral range, over TCP and MQTT
(a process per address is how the fan-out bench opens more connections than one address has
ports)."""

from __future__ import annotations

import asyncio

import pytest

from drivers.speaker.simulator_lean import LOCAL_PORTS, LeanFleet, LeanFleetConfig

SECRET = b"lean-fleet-secret-0123456789abcdef"
SOURCE = "127.0.0.7"


@pytest.mark.parametrize("scheme", ["tcp", "mqtt"])
async def test_boxes_connect_from_their_source_address_each_from_its_own_port(
    scheme: str,
) -> None:
    peers: list[tuple[str, int]] = []
    first_bytes: list[bytes] = []
    handlers: list[asyncio.Task[None] | None] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        peers.append(writer.get_extra_info("peername")[:2])
        first_bytes.append(await reader.read(1))
        if scheme == "mqtt":
            writer.write(bytes([0x20, 2, 0, 0]))  # CONNACK, accepted
        await reader.read()  # hold the connection until the box closes it
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"{scheme}://127.0.0.1:{port}"
    fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=30, source_host=SOURCE))
    try:
        async with asyncio.timeout(10):
            await fleet.start()
            while len(first_bytes) < 30:
                await asyncio.sleep(0.01)
        assert {host for host, _ in peers} == {SOURCE}
        assert len({port for _, port in peers}) == 30
        assert all(port in LOCAL_PORTS for _, port in peers)
        # a hello line ({"v":...}) over TCP, a CONNECT packet over MQTT
        assert set(first_bytes) == ({b"{"} if scheme == "tcp" else {b"\x10"})
    finally:
        fleet.close()
        async with asyncio.timeout(10):
            await asyncio.gather(*(h for h in handlers if h is not None))
        server.close()
        await server.wait_closed()
