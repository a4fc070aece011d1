"""Sealed audio on the box: a ``play_url`` without ``sha256`` is fetched with its ``to`` and
played only when the answer's SHA-256 and seal match under the key that verified the command;
the attention clip starts at once and the audio follows from the sealed speech start."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from multidict import CIMultiDict

from drivers.speaker import download_retry
from drivers.speaker.codec import encode_command
from drivers.speaker.messages import AckStage, PlayUrl, Stop
from drivers.speaker.player import CommandPlayer
from drivers.speaker.seal import SEAL_HEADER, SHA256_HEADER, SPEECH_START_HEADER
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.store import JournalEntry, MediaFetcher, PlayJournal
from drivers.speaker.testing import SealedMediaServer, free_port, play_url_command
from tests.speaker import agent_rig
from tests.speaker.agent_rig import AREA_KEY, KEY

AUDIO = b"rendered warning audio" * 200
TONE = b"stored attention signal"
SPEECH_START_MS = 4250
KEYS = {"box:b1": KEY, "area:150902": AREA_KEY}


class Box(agent_rig.Box):
    """The agent rig's box with its attention clip, playing through a real process that
    notes the file and start it was given in ``played.txt``, then plays for ``play_s``."""

    def __init__(self, tmp_path: Path, server: SealedMediaServer, play_s: float = 0.0) -> None:
        self.played_file = tmp_path / "played.txt"
        script = f'echo "$0 $1" >> {self.played_file}; sleep {play_s}'
        player = CommandPlayer(["sh", "-c", script, "{path}", "{start}"])
        super().__init__(tmp_path, server, player=player)
        (tmp_path / "clips" / "attention").write_bytes(TONE)

    async def __aenter__(self) -> Box:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self.fetcher.aclose()

    def played(self) -> list[tuple[str, str]]:
        """(file name, start in seconds) of every playback, in order."""
        if not self.played_file.exists():
            return []
        lines = self.played_file.read_text().splitlines()
        return [(Path(path).name, start) for path, start in (line.split() for line in lines)]

    async def send_sealed(self, command: PlayUrl, target: str = "box:b1") -> None:
        await self.send(command, KEY if target == "box:b1" else AREA_KEY, target)


def sealed(url: str, cmd_id: str = "c1", attention: bool = True) -> PlayUrl:
    """A play command whose audio is sealed, with the attention clip or without."""
    plain = play_url_command(cmd_id, "alert-1", url, AUDIO)
    return replace(plain, sha256=None, attention_clip="attention" if attention else None)


AUDIO_SHA = hashlib.sha256(AUDIO).hexdigest()


@pytest.fixture
async def server() -> AsyncIterator[SealedMediaServer]:
    files = {"w.opus": AUDIO}
    async with SealedMediaServer(files, KEYS, {"w.opus": SPEECH_START_MS}) as media:
        yield media


async def test_a_good_seal_plays_the_audio_from_its_speech_start_after_the_clip(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus")))
        await box.wait_ack("c1", AckStage.FINISHED)
    assert box.said("c1") == [
        (AckStage.ACCEPTED, None, None),
        (AckStage.STARTED, None, "attention:attention"),
        (AckStage.FINISHED, None, "url"),
    ]
    assert box.played() == [("attention", "0.000"), (AUDIO_SHA, f"{SPEECH_START_MS / 1000:.3f}")]
    assert server.targets == ["box:b1"]
    assert (tmp_path / "cache" / AUDIO_SHA).read_bytes() == AUDIO


async def test_an_area_command_is_fetched_for_the_area_and_checked_with_its_key(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus"), attention=False), target="area:150902")
        await box.wait_ack("c1", AckStage.FINISHED)
    assert server.targets == ["area:150902"]
    assert box.played() == [(AUDIO_SHA, "0.000")]
    assert (AckStage.STARTED, None, "url") in box.said("c1")


async def test_a_box_without_the_clip_plays_the_sealed_audio_whole(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    box = Box(tmp_path, server)
    (tmp_path / "clips" / "attention").unlink()
    async with box:
        await box.send_sealed(sealed(server.url("w.opus")))
        await box.wait_ack("c1", AckStage.FINISHED)
    assert box.said("c1")[1:] == [
        (AckStage.STARTED, None, "url"),
        (AckStage.FINISHED, None, "url"),
    ]
    assert box.played() == [(AUDIO_SHA, "0.000")]


def _set(name: str, value: str) -> Callable[[CIMultiDict[str], bytes], bytes]:
    def tamper(headers: CIMultiDict[str], body: bytes) -> bytes:
        headers[name] = value
        return body

    return tamper


def _drop(name: str) -> Callable[[CIMultiDict[str], bytes], bytes]:
    def tamper(headers: CIMultiDict[str], body: bytes) -> bytes:
        del headers[name]
        return body

    return tamper


def _twice(name: str) -> Callable[[CIMultiDict[str], bytes], bytes]:
    def tamper(headers: CIMultiDict[str], body: bytes) -> bytes:
        headers.add(name, headers[name])
        return body

    return tamper


def _other_body(headers: CIMultiDict[str], body: bytes) -> bytes:
    return body[:-1] + b"!"


BROKEN_ANSWERS: dict[str, Callable[[CIMultiDict[str], bytes], bytes]] = {
    "wrong seal": _set(SEAL_HEADER, "0" * 64),
    "body not matching its hash": _other_body,
    "no seal": _drop(SEAL_HEADER),
    "no hash": _drop(SHA256_HEADER),
    "seal given twice": _twice(SEAL_HEADER),
    "upper-case hash": lambda h, b: _set(SHA256_HEADER, h[SHA256_HEADER].upper())(h, b),
    "short seal": lambda h, b: _set(SEAL_HEADER, h[SEAL_HEADER][:63])(h, b),
    "speech start with a unit": _set(SPEECH_START_HEADER, f"{SPEECH_START_MS}ms"),
    "speech start with a leading zero": _set(SPEECH_START_HEADER, f"0{SPEECH_START_MS}"),
    "speech start beyond 60 s": _set(SPEECH_START_HEADER, "60001"),
    "speech start changed": _set(SPEECH_START_HEADER, "0"),
}


@pytest.mark.parametrize("breakage", list(BROKEN_ANSWERS))
async def test_a_broken_answer_plays_the_fallback_as_a_hash_mismatch(
    tmp_path: Path, server: SealedMediaServer, breakage: str
) -> None:
    server.tamper = BROKEN_ANSWERS[breakage]
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus"), attention=False))
        await box.wait_ack("c1", AckStage.FINISHED)
    assert box.said("c1")[1:] == [
        (AckStage.STARTED, "hash_mismatch", "fallback:generic"),
        (AckStage.FINISHED, "hash_mismatch", "fallback:generic"),
    ]
    assert box.played() == [("generic", "0.000")]
    assert not (tmp_path / "cache").exists()


async def test_a_seal_under_another_target_s_key_is_refused(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    server.keys = {"box:b1": AREA_KEY}  # the server seals the box's audio with the area's key
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus")))
        await box.wait_ack("c1", AckStage.FINISHED)
    assert box.said("c1")[1:] == [
        (AckStage.STARTED, None, "attention:attention"),
        (AckStage.FINISHED, "hash_mismatch", "fallback:generic"),
    ]
    assert box.played() == [("attention", "0.000"), ("generic", "0.000")]


@pytest.mark.parametrize("where", ["missing", "refused"])
async def test_a_failed_download_plays_the_fallback(
    tmp_path: Path, server: SealedMediaServer, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_retry, "WAITS_S", (0.01, 0.01, 0.01))  # a refusal is retried
    url = server.missing_url if where == "missing" else f"http://127.0.0.1:{free_port()}/w.opus"
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(url, attention=False))
        await box.wait_ack("c1", AckStage.FINISHED)
    assert box.said("c1")[1] == (AckStage.STARTED, "download_failed", "fallback:generic")
    assert box.played() == [("generic", "0.000")]


async def test_the_clip_starts_while_the_server_holds_the_answer(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    server.hold_s = 1.0  # the audio is still being rendered
    async with Box(tmp_path, server, play_s=0.2) as box:
        await box.send_sealed(sealed(server.url("w.opus")))
        await box.wait_ack("c1", AckStage.STARTED)
        assert box.said("c1")[-1] == (AckStage.STARTED, None, "attention:attention")
        assert server.answered == 0
        async with asyncio.timeout(2):
            while len(box.played()) < 1:
                await asyncio.sleep(0.01)
        assert box.played() == [("attention", "0.000")]
        await box.wait_ack("c1", AckStage.FINISHED)
    assert server.answered == 1
    assert box.played()[1:] == [(AUDIO_SHA, f"{SPEECH_START_MS / 1000:.3f}")]


async def test_the_same_sealed_audio_is_downloaded_once(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus"), "c1", attention=False))
        await box.wait_ack("c1", AckStage.FINISHED)
        await box.send_sealed(sealed(server.url("w.opus"), "c2", attention=False))
        await box.wait_ack("c2", AckStage.FINISHED)
        await box.send_sealed(sealed(server.url("w.opus"), "c3", attention=False), "area:150902")
        await box.wait_ack("c3", AckStage.FINISHED)
    assert server.targets == ["box:b1", "area:150902"]
    assert box.played() == [(AUDIO_SHA, "0.000")] * 3


async def test_concurrent_sealed_fetches_share_one_download(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    server.hold_s = 0.2
    fetcher = MediaFetcher(tmp_path / "cache")
    to = CommandTarget("area:150902", AREA_KEY)
    try:
        got = await asyncio.gather(*(fetcher.fetch_sealed(server.url("w.opus"), to) for _ in "abc"))
        # Audio that came sealed serves a later command naming its hash, from the cache.
        again = await fetcher.fetch(server.url("w.opus"), AUDIO_SHA)
    finally:
        await fetcher.aclose()
    assert got == [(tmp_path / "cache" / AUDIO_SHA, SPEECH_START_MS)] * 3
    assert again == tmp_path / "cache" / AUDIO_SHA
    assert server.requests == 1


async def test_a_restarted_box_fetches_a_resumed_command_for_its_target(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    server.gate = asyncio.Event()  # the first box never gets its answer
    async with Box(tmp_path, server) as box:
        await box.send_sealed(sealed(server.url("w.opus"), attention=False), target="area:150902")
        async with asyncio.timeout(5):
            while not server.targets:
                await asyncio.sleep(0.01)
    server.gate.set()
    async with Box(tmp_path, server) as box:
        await box.wait_ack("c1", AckStage.FINISHED)
    assert server.targets == ["area:150902", "area:150902"]
    assert box.said("c1") == [
        (AckStage.STARTED, None, "url"),
        (AckStage.FINISHED, None, "url"),
    ]
    assert box.played() == [(AUDIO_SHA, "0.000")]


async def _journal_cut_off(path: Path, url: str) -> None:
    """The journal a crash leaves: c1 accepted (its download under way), then the stop of
    alert-2 carried out, then c2 of alert-2 accepted before it (the crash came before the
    box failed c2)."""
    journal = PlayJournal(path)
    now = datetime.now(UTC)
    c1 = sealed(url, "c1", attention=False)
    c2 = replace(sealed(url, "c2", attention=False), alert_id="alert-2")
    stop = Stop(cmd_id="s1", alert_id="alert-2", issued_at=now, expires_at=c2.expires_at)
    for command, stage in (
        (c1, AckStage.ACCEPTED),
        (stop, AckStage.FINISHED),
        (c2, AckStage.ACCEPTED),
    ):
        wire = encode_command(command, "box:b1", KEY).decode()
        entry = JournalEntry(
            command.cmd_id, command.alert_id, command.kind, stage, command.expires_at, wire
        )
        await journal.record(entry, now)


async def test_a_box_stopped_while_it_resumes_leaves_no_download_behind(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    server.gate = asyncio.Event()  # no answer, to any box
    left: dict[int, int] = {}
    for steps in range(60):  # a stop at every point of the start
        await _journal_cut_off(tmp_path / "journal.json", server.url("w.opus"))
        box = Box(tmp_path, server)
        box.start()
        for _ in range(steps):
            await asyncio.sleep(0)
        await box.stop()
        running = [t for t in asyncio.all_tasks() if "_prefetch" in t.get_coro().__qualname__]
        if running:
            left[steps] = len(running)
            for task in running:
                task.cancel()
        await box.fetcher.aclose()
    server.gate.set()
    assert left == {}
    # Some stops came while resuming: after c1's download began, as c2 was failed.
    assert server.targets
