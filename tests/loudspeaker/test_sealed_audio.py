"""The audio a sealed ``play_url`` names (docs/protocols/speaker.md section 5.1), as the
channel's audio library serves it over real HTTP on loopback: a request is held until the
render ends, then answered with the file, its SHA-256, its speech start and a seal under the
key of the ``to`` the box names; a render that fails answers the held requests at once, and
the later ones until a render begins again, and the next render is served; the hold is
bounded in time and in requests; unknown targets and tokens learn nothing (not which exist);
the URL stays valid for a library started again over the same directory, and for as long as
the programme is published again, also when its file had been pruned meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from audio import AudioError
from broadcaster.channel import AlertMessage
from broadcaster.config import AudioConfig
from broadcaster.publisher import AudioPublisher
from broadcaster.rendition import render
from channels.loudspeaker import media
from channels.loudspeaker.media import AudioLibrary
from drivers.speaker import seal
from tests.core.support import make_alert
from tests.loudspeaker.conftest import HeldRender

BOX_KEY = bytes(range(32))
AREA_KEY = bytes(range(32, 64))
KEYS = {"box:box-1": BOX_KEY, "area:150902": AREA_KEY}
ALERT = make_alert("sealed")
MESSAGE = AlertMessage(id="7", alert=ALERT, rendition=render(ALERT), expires_at=9e9)


def held_publisher(directory: Path) -> tuple[AudioPublisher, HeldRender]:
    """An espeak-ng publisher whose renders wait for the gate of the other value."""
    publisher = AudioPublisher(directory, AudioConfig(engine_order=("espeak-ng",)))
    return publisher, HeldRender(publisher)


class Site:
    """A library served on 127.0.0.1, and a client asking it as a box would."""

    def __init__(self, library: AudioLibrary, server: TestServer) -> None:
        self.library = library
        self.server = server

    async def get(
        self, url: str, target: str | None = "box:box-1"
    ) -> tuple[int, dict[str, str], bytes]:
        path = url.split("/channels/loudspeaker", 1)[1]
        headers = {} if target is None else {seal.TARGET_HEADER: target}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.server.make_url(path), headers=headers) as response,
        ):
            return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    library = library_in(tmp_path)
    server = TestServer(library.web_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(library, server)
    finally:
        await server.close()


def library_in(tmp_path: Path) -> AudioLibrary:
    base = "https://warn.example.org/channels/loudspeaker"
    return AudioLibrary(tmp_path / "audio", base, "mp3", KEYS.get)


def assert_sealed(url: str, target: str, key: bytes, headers: dict[str, str], body: bytes) -> None:
    sha256 = hashlib.sha256(body).hexdigest()
    assert headers[seal.SHA256_HEADER] == sha256
    start = int(headers[seal.SPEECH_START_HEADER])
    assert 0 < start < 60_000
    given = headers[seal.SEAL_HEADER]
    assert seal.seal_matches(key, url, target, sha256, start, given)
    # The seal binds the URL, the target, the audio and its speech start.
    assert not seal.seal_matches(key, url + "x", target, sha256, start, given)
    assert not seal.seal_matches(key, url, "box:box-2", sha256, start, given)
    assert not seal.seal_matches(key, url, target, "0" * 64, start, given)
    assert not seal.seal_matches(key, url, target, sha256, start + 1, given)
    assert not seal.seal_matches(bytes(32), url, target, sha256, start, given)


async def test_a_request_is_held_until_the_render_ends_then_sealed(
    site: Site, tmp_path: Path
) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    assert site.library.reserve(MESSAGE, ("zh-CN",)) == url
    assert site.library.reserve(MESSAGE, ("zh-CN", "mn")) != url
    rendering = asyncio.ensure_future(site.library.publish(publisher, MESSAGE, ("zh-CN",)))
    box = asyncio.ensure_future(site.get(url))
    area = asyncio.ensure_future(site.get(url, "area:150902"))
    await asyncio.sleep(0.3)
    assert not box.done() and not area.done()
    opened = time.monotonic()
    render.gate.set()
    published = await rendering
    status, headers, body = await box
    assert status == 200 and time.monotonic() - opened < 10
    assert headers[seal.SHA256_HEADER] == published.sha256
    assert int(headers[seal.SPEECH_START_HEADER]) == published.speech_start_ms
    assert "no-store" in headers["Cache-Control"]
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)
    status, headers, area_body = await area
    assert status == 200 and area_body == body
    assert_sealed(url, "area:150902", AREA_KEY, headers, body)
    # The published file itself is served as before, under its hash.
    status, _, same = await site.get(published.url, None)
    assert status == 200 and same == body


async def test_unknown_targets_and_tokens_are_refused_at_once(site: Site) -> None:
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    began = time.monotonic()
    for target in (None, "box:box-9", "area:999999", "box-1", "area:15090"):
        status, headers, _ = await site.get(url, target)
        assert status == 404 and seal.SEAL_HEADER not in headers
    # A made-up token is answered alike for a known target and an unknown one.
    made_up = url.rsplit("/", 1)[0] + "/" + "0" * 32
    assert {(await site.get(made_up, t))[0] for t in ("box:box-1", "box:box-9")} == {404}
    token = url.rsplit("/", 1)[1]
    for other in ("0" * 32, token.upper(), token + "0", "..%2f..%2fetc%2fpasswd"):
        status, headers, _ = await site.get(url.replace(token, other))
        assert status == 404 and seal.SEAL_HEADER not in headers
    assert time.monotonic() - began < 5


async def test_a_failed_render_answers_the_held_requests_and_the_next_one_serves(
    site: Site, tmp_path: Path
) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    render.fail = True
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    held = asyncio.ensure_future(site.get(url))
    await asyncio.sleep(0.2)
    render.gate.set()
    with pytest.raises(AudioError):
        await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    async with asyncio.timeout(5):
        status, headers, _ = await held
    # Not 503: a box asks again after that, and this box is to play its fallback clip now.
    assert status == 404 and seal.SEAL_HEADER not in headers
    began = time.monotonic()  # a box that asks later is not held: nothing renders it now
    status, _, _ = await site.get(url)
    assert status == 404 and time.monotonic() - began < 2
    render.fail = False
    await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    status, headers, body = await site.get(url)
    assert status == 200
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)


async def test_the_hold_is_bounded(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "HOLD_S", 0.3)
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    began = time.monotonic()
    status, _, _ = await site.get(url)  # nothing renders it
    assert status == 503 and 0.25 < time.monotonic() - began < 5


async def test_the_url_outlives_a_restart(site: Site, tmp_path: Path) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    render.gate.set()
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    again = library_in(tmp_path)
    server = TestServer(again.web_app(), host="127.0.0.1")
    await server.start_server()
    try:
        status, headers, body = await Site(again, server).get(url, "area:150902")
        assert status == 200
        assert_sealed(url, "area:150902", AREA_KEY, headers, body)
        # Pruned with the audio it names: then the URL is gone.
        assert await again.prune(-1) >= 2
        status, _, _ = await Site(again, server).get(url, "area:150902")
        assert status == 404
    finally:
        await server.close()
    # The library that published it answers from memory until it prunes the file itself.
    status, headers, body = await site.get(url, "area:150902")
    assert status == 200
    assert_sealed(url, "area:150902", AREA_KEY, headers, body)
    await site.library.prune(-1)
    status, _, _ = await site.get(url)
    assert status == 404


async def test_only_the_newest_audio_is_answered_from_memory(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``KEPT_BYTES`` the older programme is answered from its file (gone from disk, it
    is gone), the newest from memory; both sealed alike."""
    publisher, held = held_publisher(tmp_path / "cache")
    held.gate.set()
    alert = make_alert("other", headline="凉城县大风蓝色预警")
    other = AlertMessage(id="8", alert=alert, rendition=render(alert), expires_at=9e9)
    older_url = site.library.reserve(MESSAGE, ("zh-CN",))
    older = await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    monkeypatch.setattr(media, "KEPT_BYTES", 1)  # room for the newest file alone
    newer_url = site.library.reserve(other, ("zh-CN",))
    newer = await site.library.publish(publisher, other, ("zh-CN",))
    assert newer.sha256 != older.sha256
    for url, audio in ((older_url, older), (newer_url, newer)):
        status, headers, body = await site.get(url)
        assert status == 200 and headers[seal.SHA256_HEADER] == audio.sha256
        assert_sealed(url, "box:box-1", BOX_KEY, headers, body)
    for audio in (older, newer):
        (site.library.directory / audio.url.rsplit("/", 1)[1]).unlink()
    status, _, _ = await site.get(older_url)
    assert status == 404
    status, headers, body = await site.get(newer_url)
    assert status == 200
    assert headers[seal.SHA256_HEADER] == newer.sha256
    assert_sealed(newer_url, "box:box-1", BOX_KEY, headers, body)


async def test_concurrent_publishes_of_one_programme_all_succeed(
    site: Site, tmp_path: Path
) -> None:
    """Batches of one alert publish its programme at the same moment, and languages that come
    out the same audio publish one file: each writes its files whole, none fails."""
    publisher, held = held_publisher(tmp_path / "cache")
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    site.library.reserve(MESSAGE, ("zh-CN", "mn"))  # no Mongolian voice: the same audio
    publishes = [
        site.library.publish(publisher, MESSAGE, languages)
        for _ in range(8)
        for languages in (("zh-CN",), ("zh-CN", "mn"))
    ]
    rendering = asyncio.gather(*publishes)
    await asyncio.sleep(0.1)
    held.gate.set()
    published = await rendering
    assert len({audio.sha256 for audio in published}) == 1
    assert not list(site.library.directory.glob("*.part"))
    status, headers, body = await site.get(url)
    assert status == 200
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)


async def test_requests_held_at_once_are_bounded(tmp_path: Path) -> None:
    library = AudioLibrary(
        tmp_path / "audio", "http://x/channels/loudspeaker", "mp3", KEYS.get, lambda: 3
    )
    server = TestServer(library.web_app(), host="127.0.0.1")
    await server.start_server()
    try:
        site = Site(library, server)
        publisher, render = held_publisher(tmp_path / "cache")
        url = library.reserve(MESSAGE, ("zh-CN",))
        held = [asyncio.ensure_future(site.get(url)) for _ in range(3)]
        await asyncio.sleep(0.3)
        status, headers, _ = await site.get(url)  # the fourth at once: come back in a second
        assert status == 503 and headers["Retry-After"] == "1"
        render.gate.set()
        await library.publish(publisher, MESSAGE, ("zh-CN",))
        assert [status for status, _, _ in await asyncio.gather(*held)] == [200] * 3
        status, _, _ = await site.get(url)  # published: answered at once, none held
        assert status == 200
    finally:
        await server.close()


async def test_a_programme_published_again_is_kept_and_served(site: Site, tmp_path: Path) -> None:
    """A publish answered from the render in memory marks the file published again, so
    ``prune`` keeps it; when the file was pruned all the same, it is published afresh."""
    publisher, render = held_publisher(tmp_path / "cache")
    render.gate.set()
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    published = await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    old = time.time() - 3600
    names = [published.url.rsplit("/", 1)[1], url.rsplit("/", 1)[1] + ".next"]
    for name in names:
        os.utime(site.library.directory / name, (old, old))
    await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    assert await site.library.prune(1800) == 0
    assert all((site.library.directory / name).is_file() for name in names)
    await site.library.prune(-1)
    again = await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    assert again.sha256 == published.sha256
    status, headers, body = await site.get(url)
    assert status == 200
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)
    status, _, same = await site.get(published.url, None)
    assert status == 200 and same == body


async def test_a_note_that_cannot_be_written_does_not_hold_the_boxes(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(token: str, published: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(site.library, "_write_token", disk_full)
    publisher, render = held_publisher(tmp_path / "cache")
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    held = asyncio.ensure_future(site.get(url))
    await asyncio.sleep(0.2)
    render.gate.set()
    await site.library.publish(publisher, MESSAGE, ("zh-CN",))
    async with asyncio.timeout(5):
        status, headers, body = await held
    assert status == 200
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)


async def test_a_send_cancelled_while_it_renders_leaves_the_others_a_render(
    site: Site, tmp_path: Path
) -> None:
    """Batches of one alert share its render; when the send that began it is cancelled (past
    the dispatcher's deadline), the others render it themselves and the boxes get it."""
    publisher, render = held_publisher(tmp_path / "cache")
    url = site.library.reserve(MESSAGE, ("zh-CN",))
    first = asyncio.ensure_future(site.library.publish(publisher, MESSAGE, ("zh-CN",)))
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(site.library.publish(publisher, MESSAGE, ("zh-CN",)))
    held = asyncio.ensure_future(site.get(url))
    await asyncio.sleep(0.1)
    first.cancel()
    await asyncio.sleep(0.1)
    assert not second.done()
    render.gate.set()
    async with asyncio.timeout(30):
        published = await second
        status, headers, body = await held
    assert first.cancelled()
    assert status == 200 and headers[seal.SHA256_HEADER] == published.sha256
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)


async def test_a_url_awaiting_its_render_outlives_many_newer_ones(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "_REMEMBERED", 4)
    monkeypatch.setattr(media, "AWAITED_MOST", 12)
    library = site.library
    publisher, held = held_publisher(tmp_path / "cache")
    url = library.reserve(MESSAGE, ("zh-CN",))

    def reserve_others(numbers: range) -> list[str]:
        messages = [AlertMessage(str(n), ALERT, MESSAGE.rendition, 9e9) for n in numbers]
        return [library.reserve(m, ("zh-CN",)) for m in messages]

    reserve_others(range(10, 20))  # eleven renders awaited in all
    assert library.reserve(MESSAGE, ("zh-CN",)) == url  # still the one the boxes have
    rendering = asyncio.ensure_future(library.publish(publisher, MESSAGE, ("zh-CN",)))
    box = asyncio.ensure_future(site.get(url))
    await asyncio.sleep(0.1)
    held.gate.set()
    published = await rendering
    status, headers, body = await box
    assert status == 200 and headers[seal.SHA256_HEADER] == published.sha256
    assert_sealed(url, "box:box-1", BOX_KEY, headers, body)
    # Once published it is the first forgotten as newer ones come; its note answers its URL.
    reserve_others(range(20, 21))
    assert library.reserve(MESSAGE, ("zh-CN",)) != url
    status, _, again = await site.get(url)
    assert status == 200 and again == body
    # Renders reserved and never published are forgotten past AWAITED_MOST, the oldest first.
    first, *_ = reserve_others(range(30, 31))
    reserve_others(range(40, 60))
    assert len(library._tokens) == 12
    assert library.reserve(AlertMessage("30", ALERT, MESSAGE.rendition, 9e9), ("zh-CN",)) != first
