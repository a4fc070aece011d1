"""A box tries its audio download again when the failure may pass (drivers/speaker/
download_retry.py, docs/protocols/speaker.md 5.1): a busy server (503 with Retry-After), an
overloaded gateway, a refused connection; not a missing file, nor four failures in a row; and
the agent then plays the warning itself, not its fallback clip. Real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from drivers.retry_after import retry_after_s
from drivers.speaker import download_retry
from drivers.speaker.errors import DownloadInterruptedError, MediaDownloadError
from drivers.speaker.messages import AckStage
from drivers.speaker.store import MediaFetcher
from drivers.speaker.testing import MediaServer, free_port, play_url_command
from tests.speaker.agent_rig import AUDIO, Box, sha


async def timed_failure(
    fetcher: MediaFetcher, url: str, error: type[Exception], match: str
) -> float:
    """Fetch ``url`` expecting ``error``, close the fetcher; how long the fetch took."""
    started = time.monotonic()
    try:
        with pytest.raises(error, match=match):
            await fetcher.fetch(url, sha(AUDIO))
    finally:
        await fetcher.aclose()
    return time.monotonic() - started


async def test_a_busy_server_is_asked_again_when_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_retry, "WAITS_S", (0.01, 0.01, 0.01))
    async with MediaServer({"a.wav": AUDIO}) as server:
        server.refusals = [(503, "0"), (429, "0"), (502, None)]  # the last says no wait
        fetcher = MediaFetcher(tmp_path)
        try:
            path = await fetcher.fetch(server.url("a.wav"), sha(AUDIO))
        finally:
            await fetcher.aclose()
    assert path.read_bytes() == AUDIO
    assert server.requests == 4


async def test_four_failures_in_a_row_give_up_with_the_last(tmp_path: Path) -> None:
    async with MediaServer({"a.wav": AUDIO}) as server:
        server.refusals = [(503, "0")] * 4
        fetcher = MediaFetcher(tmp_path)
        try:
            with pytest.raises(DownloadInterruptedError, match="HTTP 503"):
                await fetcher.fetch(server.url("a.wav"), sha(AUDIO))
        finally:
            await fetcher.aclose()
    assert server.requests == 4


async def test_a_missing_file_is_not_asked_for_again(tmp_path: Path) -> None:
    async with MediaServer({}) as server:
        fetcher = MediaFetcher(tmp_path)
        try:
            with pytest.raises(MediaDownloadError, match="HTTP 404") as failed:
                await fetcher.fetch(server.missing_url, sha(AUDIO))
        finally:
            await fetcher.aclose()
    assert not isinstance(failed.value, DownloadInterruptedError)
    assert server.requests == 1


async def test_a_refused_connection_is_tried_again_after_growing_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = (0.05, 0.1, 0.2)
    monkeypatch.setattr(download_retry, "WAITS_S", waits)
    port = free_port()  # a loopback port nothing listens on
    url = f"http://127.0.0.1:{port}/media/a.wav"
    took = await timed_failure(MediaFetcher(tmp_path), url, DownloadInterruptedError, "failed")
    assert sum(waits) <= took < sum(waits) + 5


async def test_the_box_plays_the_warning_after_a_busy_answer_not_its_fallback(
    tmp_path: Path,
) -> None:
    async with MediaServer({"a.wav": AUDIO}) as server:
        server.refusals = [(503, "1")]
        box = Box(tmp_path, server)
        box.start()
        try:
            await box.send(play_url_command("c1", "a1", server.url("a.wav"), AUDIO))
            await box.wait_ack("c1", AckStage.FINISHED, within_s=10)
        finally:
            await box.stop()
            await box.fetcher.aclose()
    assert [r.request.source for r in box.log.completed()] == ["url"]
    assert (AckStage.STARTED, None) in box.acks("c1")
    assert server.requests == 2


async def test_every_try_together_takes_no_longer_than_one_download_may(tmp_path: Path) -> None:
    async with MediaServer({"a.wav": AUDIO}) as server:
        server.refusals = [(503, "10"), (503, "10")]  # the server asks for 10 s each time
        fetcher = MediaFetcher(tmp_path, timeout_s=3.0)
        took = await timed_failure(
            fetcher, server.url("a.wav"), DownloadInterruptedError, "HTTP 503"
        )
    assert took < 3.0
    assert server.requests == 1  # a wait past the 3 s the download may take is not begun


async def test_a_server_that_never_answers_is_given_up_on_time(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fetcher = MediaFetcher(tmp_path, timeout_s=5.2)  # aiohttp would round 5 s and more up
    try:
        url = f"http://127.0.0.1:{port}/a.wav"
        took = await timed_failure(fetcher, url, MediaDownloadError, "TimeoutError")
    finally:
        server.close()
    assert 5.1 < took < 5.6


def test_retry_after_reads_seconds_and_dates() -> None:
    moment = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    now = moment.timestamp()
    assert retry_after_s("5") == 5.0
    assert retry_after_s(" 0 ") == 0.0
    assert retry_after_s(format_datetime(moment + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_s(format_datetime(moment - timedelta(seconds=30), usegmt=True), now) == 0.0
    for unreadable in (None, "", "soon", "-3", "1.5", "Mon, 99 Foo 2026", "²", "௫"):
        assert retry_after_s(unreadable, now) is None
