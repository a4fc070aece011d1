"""A box's TCP hello is good for one connection (docs/protocols/speaker.md, section 4.1): the
hub refuses a hello whose nonce it has seen, or one older than the box's last accepted hello,
so a captured hello replayed within the clock skew window cannot take the box's connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator

import pytest

from drivers.speaker.codec import encode_box_message
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.hub import BoxRegistration, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.hub_tcp import HelloReplayGuard
from drivers.speaker.messages import BoxHello, Stop
from drivers.speaker.testing import HubEventRecorder

KEY = b"k" * 32


@pytest.fixture
async def hub() -> AsyncIterator[SpeakerHub]:
    hub = SpeakerHub(
        SpeakerHubConfig(tcp=TcpListenConfig(host="127.0.0.1", port=0)),
        [BoxRegistration(box_id="b1", key=KEY, transport="tcp")],
    )
    async with hub:
        yield hub


def hello(at: dt.datetime | None = None, nonce: str | None = None) -> BoxHello:
    return BoxHello(
        box_id="b1",
        at=at or dt.datetime.now(dt.UTC),
        nonce=nonce or os.urandom(8).hex(),
        firmware="f",
    )


class Connection:
    """One TCP connection to the hub that opened with ``first_line``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, hub: SpeakerHub, first_line: bytes) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.tcp_port)
        writer.write(first_line + b"\n")
        await writer.drain()
        return cls(reader, writer)

    async def closed_by_hub(self) -> bool:
        async with asyncio.timeout(3):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def command_reaches(hub: SpeakerHub, connection: Connection, cmd_id: str) -> bool:
    now = dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(minutes=1)
    await hub.send_command(
        "b1", Stop(cmd_id=cmd_id, alert_id="*", issued_at=now, expires_at=expires)
    )
    async with asyncio.timeout(3):
        return cmd_id.encode() in await connection.reader.readline()


async def test_a_replayed_hello_cannot_take_over_the_box_connection(hub: SpeakerHub) -> None:
    recorder = HubEventRecorder(hub)
    first_line = encode_box_message(hello(), KEY)
    box = await Connection.open(hub, first_line)
    try:
        await recorder.wait_for(lambda: hub.online_count == 1)
        replay = await Connection.open(hub, first_line)
        try:
            assert await replay.closed_by_hub()
        finally:
            await replay.close()
        assert await command_reaches(hub, box, "after-replay")
        assert recorder.presence("b1") == [True]
    finally:
        await box.close()
        await recorder.close()


async def test_a_hello_older_than_the_last_accepted_one_is_refused(hub: SpeakerHub) -> None:
    recorder = HubEventRecorder(hub)
    now = dt.datetime.now(dt.UTC)
    box = await Connection.open(hub, encode_box_message(hello(now), KEY))
    try:
        await recorder.wait_for(lambda: hub.online_count == 1)
        older = encode_box_message(hello(now - dt.timedelta(seconds=60)), KEY)
        replay = await Connection.open(hub, older)
        try:
            assert await replay.closed_by_hub()
        finally:
            await replay.close()
        assert await command_reaches(hub, box, "after-older")
    finally:
        await box.close()
        await recorder.close()


async def test_a_fresh_hello_still_replaces_the_old_connection(hub: SpeakerHub) -> None:
    recorder = HubEventRecorder(hub)
    old = await Connection.open(hub, encode_box_message(hello(), KEY))
    try:
        await recorder.wait_for(lambda: hub.online_count == 1)
        new = await Connection.open(hub, encode_box_message(hello(), KEY))
        try:
            assert await old.closed_by_hub()
            assert await command_reaches(hub, new, "after-reconnect")
        finally:
            await new.close()
    finally:
        await old.close()
        await recorder.close()


def test_hello_nonces_are_remembered_for_the_skew_window_only() -> None:
    guard = HelloReplayGuard(dt.timedelta(seconds=300))
    start = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
    guard.admit(hello(start, "n1"), start)
    with pytest.raises(SpeakerProtocolError, match="nonce"):
        guard.admit(hello(start + dt.timedelta(seconds=1), "n1"), start + dt.timedelta(seconds=1))
    with pytest.raises(SpeakerProtocolError, match="older"):
        guard.admit(hello(start - dt.timedelta(seconds=1), "n2"), start)
    later = start + dt.timedelta(seconds=301)
    guard.admit(hello(later, "n1"), later)
