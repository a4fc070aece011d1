"""A box's TCP hello is good for one connection (docs/protocols/speaker.md, section 4.1): the
hub refuses a hello whose nonce it has seen, or one older than the box's last accepted hello,
so a captured hello replayed within the clock skew window cannot take the box's connection;
with a state file, also after the hub restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.speaker import hello_replay
from drivers.speaker.codec import encode_box_message
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.hello_replay import HelloReplayGuard
from drivers.speaker.hub import BoxRegistration, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.messages import BoxHello, BoxState, BoxStatus, Stop
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


def hello(at: dt.datetime | None = None, nonce: str | None = None, box_id: str = "b1") -> BoxHello:
    return BoxHello(
        box_id=box_id,
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


# -- across restarts: the state file

SKEW = dt.timedelta(seconds=300)


def state_hub(state_file: Path, boxes: int = 1) -> SpeakerHub:
    """A hub keeping its hello state in ``state_file``, with boxes b1, b2, ..."""
    listen = TcpListenConfig(host="127.0.0.1", port=0, hello_state_file=state_file)
    registrations = [
        BoxRegistration(box_id=f"b{n}", key=KEY, transport="tcp") for n in range(1, boxes + 1)
    ]
    return SpeakerHub(SpeakerHubConfig(tcp=listen), registrations)


async def refused(hub: SpeakerHub, first_line: bytes) -> bool:
    connection = await Connection.open(hub, first_line)
    try:
        return await connection.closed_by_hub()
    finally:
        await connection.close()


async def goes_online(hub: SpeakerHub, first_line: bytes, cmd_id: str) -> bool:
    """The box connects with ``first_line``, comes online and receives a command."""
    recorder = HubEventRecorder(hub)
    connection = await Connection.open(hub, first_line)
    try:
        await recorder.wait_for(lambda: hub.online_count == 1)
        return await command_reaches(hub, connection, cmd_id)
    finally:
        await connection.close()
        await recorder.close()


async def test_a_hello_accepted_before_a_restart_is_refused_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "channel" / "tcp-hellos.json"
    async with state_hub(state) as before:
        first_line = encode_box_message(hello(), KEY)
        assert await goes_online(before, first_line, "before-restart")
    async with state_hub(state) as after:
        assert await refused(after, first_line)
        assert "not later than its last accepted one before the restart" in caplog.text
        assert after.online_count == 0
        assert await goes_online(after, encode_box_message(hello(), KEY), "after-restart")


async def test_a_box_counts_as_connected_only_once_its_hello_is_on_disk(tmp_path: Path) -> None:
    state = tmp_path / "tcp-hellos.json"
    crashed = tmp_path / "crashed" / "tcp-hellos.json"
    async with state_hub(state) as hub:
        first_line = encode_box_message(hello(), KEY)
        recorder = HubEventRecorder(hub)
        box = await Connection.open(hub, first_line)
        try:
            await recorder.wait_for(lambda: hub.online_count == 1)
            crashed.parent.mkdir()
            shutil.copy(state, crashed)  # what the server would leave if it died now
        finally:
            await box.close()
            await recorder.close()
    async with state_hub(crashed) as after:
        assert await refused(after, first_line)
        assert await goes_online(after, encode_box_message(hello(), KEY), "after-crash")


async def test_what_a_box_sends_with_its_hello_arrives_once_the_hello_is_written(
    tmp_path: Path,
) -> None:
    now = dt.datetime.now(dt.UTC)
    statuses = [
        encode_box_message(
            BoxStatus(
                box_id="b1", at=now, state=BoxState.IDLE, volume=80, uptime_s=n, firmware="f"
            ),
            KEY,
        )
        for n in range(3)
    ]
    async with state_hub(tmp_path / "tcp-hellos.json") as hub:
        recorder = HubEventRecorder(hub)
        box = await Connection.open(hub, b"\n".join([encode_box_message(hello(), KEY), *statuses]))
        try:
            await recorder.wait_for(
                lambda: sum(isinstance(e, BoxStatus) for e in recorder.events) == 3
            )
            uptimes = [e.uptime_s for e in recorder.events if isinstance(e, BoxStatus)]
            assert uptimes == [0, 1, 2] and recorder.presence("b1") == [True]
        finally:
            await box.close()
            await recorder.close()


UNUSABLE_STATES = {
    "not json": b"{not json",
    "nested": b"[" * 100_000,
    "another version": json.dumps({"version": 2, "floor": "", "boxes": {}}).encode(),
    "a bad box id": json.dumps(
        {"version": 1, "floor": "2026-01-01T00:00:00+00:00", "boxes": {"b 1": "x"}}
    ).encode(),
    "a hello from the far future": json.dumps(
        {"version": 1, "floor": "2026-01-01T00:00:00+00:00", "boxes": {"b1": "9999-01-01T00:00"}}
    ).encode(),
    "a floor in the future": json.dumps(
        {"version": 1, "floor": "9999-01-01T00:00:00+00:00", "boxes": {}}
    ).encode(),
    "no utc offset": json.dumps(
        {"version": 1, "floor": "2026-01-01T00:00:00", "boxes": {}}
    ).encode(),
}


@pytest.mark.parametrize("content", UNUSABLE_STATES.values(), ids=UNUSABLE_STATES.keys())
async def test_an_unusable_state_file_is_logged_and_hellos_from_before_the_start_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    state = tmp_path / "tcp-hellos.json"
    state.write_bytes(content)
    captured_earlier = encode_box_message(hello(dt.datetime.now(dt.UTC) - SKEW / 5), KEY)
    async with state_hub(state) as hub:
        assert "cannot be used" in caplog.text and "starting without it" in caplog.text
        assert await refused(hub, captured_earlier)
        assert await goes_online(hub, encode_box_message(hello(), KEY), "fresh")
    assert set(json.loads(state.read_bytes())["boxes"]) == {"b1"}


async def test_a_state_file_that_cannot_be_written_does_not_keep_boxes_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    async with state_hub(tmp_path / "a-file" / "tcp-hellos.json") as hub:
        assert await goes_online(hub, encode_box_message(hello(), KEY), "unwritten")
        assert "cannot write the hello state" in caplog.text


async def test_many_boxes_saying_hello_at_once_cost_a_few_writes_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []
    write_state = hello_replay._write_state

    def counted(*args: object) -> None:
        writers.append(threading.current_thread().name)
        write_state(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(hello_replay, "_write_state", counted)
    waves, per_wave = 8, 25
    boxes = waves * per_wave
    connections: list[Connection] = []
    async with state_hub(tmp_path / "tcp-hellos.json", boxes) as hub:
        recorder = HubEventRecorder(hub)
        try:
            for wave in range(waves):  # a wave every 0.15 s: 1.2 s of boxes reconnecting
                numbers = range(wave * per_wave + 1, (wave + 1) * per_wave + 1)
                lines = [encode_box_message(hello(box_id=f"b{n}"), KEY) for n in numbers]
                connections += await asyncio.gather(*(Connection.open(hub, x) for x in lines))
                await asyncio.sleep(0.15)
            await recorder.wait_for(lambda: hub.online_count == boxes, 10)
        finally:
            await asyncio.gather(*(c.close() for c in connections))
            await recorder.close()
    assert 1 <= len(writers) <= 3  # one at the first hello, then at most one a second
    assert threading.main_thread().name not in writers
    assert len(json.loads((tmp_path / "tcp-hellos.json").read_bytes())["boxes"]) == boxes


async def test_the_state_keeps_only_hellos_the_clock_check_would_let_through(
    tmp_path: Path,
) -> None:
    now = dt.datetime.now(dt.UTC)
    state = tmp_path / "tcp-hellos.json"
    last_b1 = now - dt.timedelta(seconds=10)
    old = {"b1": last_b1.isoformat(), "gone": (now - 3 * SKEW).isoformat()}
    floor = now - 4 * SKEW
    state.write_text(json.dumps({"version": 1, "floor": floor.isoformat(), "boxes": old}))
    guard = HelloReplayGuard(SKEW, state)
    await guard.open()
    try:
        with pytest.raises(SpeakerProtocolError, match="before the restart"):
            guard.admit(hello(last_b1, "another nonce"), now)
        guard.admit(hello(now, box_id="b2"), now)
        written = guard.written()
        assert written is not None
        await written
    finally:
        await guard.close()
    kept = json.loads(state.read_bytes())
    assert set(kept["boxes"]) == {"b1", "b2"}
    assert now - SKEW <= dt.datetime.fromisoformat(kept["floor"]) <= dt.datetime.now(dt.UTC)
    again = HelloReplayGuard(SKEW, state)
    await again.open()
    try:
        with pytest.raises(SpeakerProtocolError, match="dated before"):
            again.admit(hello(now - 2 * SKEW, box_id="gone"), now)
        again.admit(hello(now + dt.timedelta(milliseconds=1)), now)
    finally:
        await again.close()


def test_without_a_state_file_nothing_waits_for_a_write() -> None:
    guard = HelloReplayGuard(SKEW)
    now = dt.datetime.now(dt.UTC)
    guard.admit(hello(now), now)
    assert guard.written() is None
