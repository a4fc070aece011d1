"""The lean fleet's sealed downloads: a real HTTP server on 127.0.0.1 answers, the lean box
takes only what the full box's check takes, and plays (reports ``finished``) only after its
audio is verified."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from drivers.speaker.codec import area_target, box_target, encode_command
from drivers.speaker.errors import MediaDownloadError, MediaIntegrityError
from drivers.speaker.hub import BoxRegistration, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.lean_download import Downloads
from drivers.speaker.messages import AckStage
from drivers.speaker.seal import SEAL_HEADER, SHA256_HEADER
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio
from drivers.speaker.simulator import area_key, box_key
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig
from drivers.speaker.testing import (
    HubEventRecorder,
    SealedMediaServer,
    free_port,
    play_url_command,
)

SECRET = b"lean-download-secret-0123456789abcdef"
AUDIO = b"sealed warning audio" * 500
AREA = "150902"
IDS = [f"sim-{n:05d}" for n in range(5)]
KEYS = {box_target(b): box_key(SECRET, b) for b in IDS} | {
    area_target(AREA): area_key(SECRET, AREA)
}
TO = CommandTarget(box_target(IDS[0]), KEYS[box_target(IDS[0])])


@pytest.fixture
async def server() -> AsyncIterator[SealedMediaServer]:
    async with SealedMediaServer({"w.mp3": AUDIO}, KEYS, {"w.mp3": 3250}) as media:
        yield media


async def test_a_sealed_answer_is_verified_and_counted(server: SealedMediaServer) -> None:
    downloads = Downloads()
    sealed = await downloads.fetch_sealed(server.url("w.mp3"), TO)
    assert sealed == SealedAudio(hashlib.sha256(AUDIO).hexdigest(), 3250)
    assert server.targets == [TO.target] and downloads.bytes == len(AUDIO)


def _set(name: str, value: str) -> Callable[[CIMultiDict[str], bytes], bytes]:
    def tamper(headers: CIMultiDict[str], body: bytes) -> bytes:
        headers[name] = value
        return body

    return tamper


@pytest.mark.parametrize(
    "tamper",
    [
        _set(SEAL_HEADER, "0" * 64),
        _set(SHA256_HEADER, "1" * 64),
        lambda headers, body: body[:-1] + b"!",
    ],
    ids=["wrong seal", "another hash", "another body"],
)
async def test_a_broken_answer_is_refused(
    server: SealedMediaServer, tamper: Callable[[CIMultiDict[str], bytes], bytes]
) -> None:
    server.tamper = tamper
    with pytest.raises(MediaIntegrityError):
        await Downloads().fetch_sealed(server.url("w.mp3"), TO)


async def test_a_seal_under_another_key_is_refused(server: SealedMediaServer) -> None:
    with pytest.raises(MediaIntegrityError, match="seal"):
        await Downloads().fetch_sealed(server.url("w.mp3"), replace(TO, key=bytes(32)))


async def test_missing_audio_and_no_server_are_download_errors(server: SealedMediaServer) -> None:
    with pytest.raises(MediaDownloadError, match="HTTP 404"):
        await Downloads().fetch_sealed(server.missing_url, TO)
    with pytest.raises(MediaDownloadError):
        await Downloads().fetch_sealed(f"http://127.0.0.1:{free_port()}/w.mp3", TO)
    with pytest.raises(MediaDownloadError, match="http://"):
        await Downloads().fetch_sealed("https://127.0.0.1/w.mp3", TO)


async def test_a_slow_answer_is_given_up(server: SealedMediaServer) -> None:
    server.hold_s = 2.0
    with pytest.raises(MediaDownloadError, match="no answer within"):
        await Downloads(timeout_s=0.3).fetch_sealed(server.url("w.mp3"), TO)


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody without a length",
        b"HTTP/1.1 200 OK\r\nbroken header\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 20_000,
    ],
    ids=["not http", "no length", "bad header", "too long", "cut short", "endless head"],
)
async def test_a_malformed_answer_is_a_download_error(answer: bytes) -> None:
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(MediaDownloadError):
            await Downloads(timeout_s=5).fetch_sealed(f"http://127.0.0.1:{port}/w.mp3", TO)
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize("area", [False, True])
async def test_lean_boxes_play_once_their_audio_is_verified(
    server: SealedMediaServer, area: bool
) -> None:
    """``started`` at once, ``finished`` once the held answer came and was verified; a box
    fetches with its command's ``to`` (its own, or its area's)."""
    server.hold_s = 0.5  # the audio is still being rendered
    regs = [BoxRegistration(b, box_key(SECRET, b), "tcp") for b in IDS]
    hub_config = SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0))
    async with SpeakerHub(hub_config, regs) as hub:
        recorder = HubEventRecorder(hub)
        link = f"tcp://127.0.0.1:{hub.tcp_port}"
        config = LeanFleetConfig(link, SECRET, boxes=5, areas=(AREA,), download=True)
        fleet = LeanFleet(config)
        await fleet.start()
        try:
            await recorder.wait_for(lambda: hub.online_count == 5)
            plain = play_url_command("play-1", "s,a", server.url("w.mp3"), AUDIO)
            command = replace(plain, sha256=None)
            sent = datetime.now(UTC)
            if area:
                data = encode_command(command, area_target(AREA), KEYS[area_target(AREA)])
                assert await hub.send_same(IDS, data) == [None] * 5
            else:
                for box_id in IDS:
                    await hub.send_command(box_id, command)
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.STARTED)) == 5
            )
            assert recorder.acked_boxes("play-1", AckStage.FINISHED) == set()
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.FINISHED)) == 5, within_s=10
            )
            for box_id in IDS:
                (finished,) = recorder.acks("play-1", AckStage.FINISHED, box_id)
                assert (finished.at - sent).total_seconds() >= 0.45
            expected = [area_target(AREA)] * 5 if area else [box_target(b) for b in IDS]
            assert sorted(server.targets) == sorted(expected)
            assert len(fleet.downloads()) == 5 and fleet.fetching is not None
            assert fleet.fetching.failures == 0
        finally:
            fleet.close()
            await recorder.close()


async def test_a_lean_box_whose_audio_fails_its_check_says_so(server: SealedMediaServer) -> None:
    server.tamper = _set(SEAL_HEADER, "0" * 64)
    regs = [BoxRegistration(IDS[0], box_key(SECRET, IDS[0]), "tcp")]
    async with SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)), regs) as hub:
        recorder = HubEventRecorder(hub)
        link = f"tcp://127.0.0.1:{hub.tcp_port}"
        fleet = LeanFleet(LeanFleetConfig(link, SECRET, boxes=1, download=True))
        await fleet.start()
        try:
            await recorder.wait_for(lambda: hub.online_count == 1)
            plain = play_url_command("play-1", "s,a", server.url("w.mp3"), AUDIO)
            await hub.send_command(IDS[0], replace(plain, sha256=None))
            await recorder.wait_for(lambda: recorder.acks("play-1", AckStage.FAILED) != [])
            (failed,) = recorder.acks("play-1", AckStage.FAILED)
            assert failed.reason == "hash_mismatch" and failed.source == "url"
            assert recorder.acks("play-1", AckStage.FINISHED) == []
            assert fleet.downloads() == [] and fleet.fetching is not None
            assert fleet.fetching.failures == 1
        finally:
            fleet.close()
            await recorder.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_fleet_command_reports_the_downloads(
    server: SealedMediaServer, loop: str
) -> None:
    """``simulator_lean_cli --download``: what a bench asks of a simulator process, on
    either event loop."""
    regs = [BoxRegistration(b, box_key(SECRET, b), "tcp") for b in IDS[:2]]
    async with SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)), regs) as hub:
        recorder = HubEventRecorder(hub)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "drivers.speaker.simulator_lean_cli",
            "--link", f"tcp://127.0.0.1:{hub.tcp_port}", "--fleet-secret", SECRET.hex(),
            "--boxes", "2", "--download", "--loop", loop,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            assert (await process.stdout.readline()).startswith(b"ready 2")
            await recorder.wait_for(lambda: hub.online_count == 2)
            plain = play_url_command("play-1", "s,a", server.url("w.mp3"), AUDIO)
            for box_id in IDS[:2]:
                await hub.send_command(box_id, replace(plain, sha256=None))
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.FINISHED)) == 2, within_s=10
            )
            process.stdin.write(b"arrivals\n")
            answer = json.loads(await process.stdout.readline())
            assert len(answer["arrivals"]) == len(answer["downloads"]) == 2
            assert min(answer["downloads"]) >= min(answer["arrivals"])
            assert answer["download_failures"] == 0
            assert answer["download_bytes"] == 2 * len(AUDIO)
            assert answer["loop"] == loop
        finally:
            process.stdin.close()
            await asyncio.wait_for(process.wait(), 30)
            await recorder.close()
