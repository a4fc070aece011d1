"""The channel builds the command of an alert once for all its boxes: concurrent sends share
one build, a failed build is tried again, a programme is rebuilt once it is no longer fresh
(so ``issued_at`` stays close to the moment a command goes out), and its command is ready
before what it reports (the render) is; closing the cache stops the renders still running."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broadcaster.channel import AlertMessage, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.errors import RetryableError
from broadcaster.rendition import render
from channels.loudspeaker.programmes import Built, ProgrammeCache, Told
from drivers.speaker import Stop
from tests.core.support import make_alert

MESSAGE = AlertMessage(
    id="a1", alert=make_alert("a1"), rendition=render(make_alert("a1")), expires_at=9e9
)


def delivery(n: int, languages: tuple[str, ...] = ("zh-CN",)) -> OutgoingDelivery:
    target = Target(id=f"t{n}", channel="loudspeaker", name=f"村{n}", languages=languages)
    return OutgoingDelivery(n, MESSAGE, target, 0, 1, f"key-{n}", 9e9)


class Builder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.rendered = asyncio.Event()
        self.rendered.set()

    async def __call__(self, item: OutgoingDelivery) -> Built:
        self.calls.append(item.target.languages)
        await self.gate.wait()
        if self.fail:
            raise RetryableError("renderer busy")
        now = datetime.now(UTC)
        stop = Stop(
            cmd_id="stop-x", alert_id="s,a1", issued_at=now, expires_at=now + timedelta(hours=1)
        )
        content: dict[str, Any] = {"language": "+".join(item.target.languages)}
        return stop, self.told(content)

    async def told(self, content: dict[str, Any]) -> Told:
        await self.rendered.wait()
        return Told("stop", content, ())


async def test_concurrent_sends_share_one_build_per_set_of_languages() -> None:
    builder = Builder()
    builder.gate.clear()
    cache = ProgrammeCache(builder)
    waiting = [asyncio.ensure_future(cache.get(delivery(n))) for n in range(50)]
    mongolian = asyncio.ensure_future(cache.get(delivery(99, ("zh-CN", "mn"))))
    await asyncio.sleep(0)
    builder.gate.set()
    programmes = await asyncio.gather(*waiting)
    assert len({id(p) for p in programmes}) == 1
    assert (await (await mongolian).report()).content == {"language": "zh-CN+mn"}
    assert builder.calls == [("zh-CN",), ("zh-CN", "mn")]


async def test_a_failed_build_reaches_every_waiter_and_is_tried_again() -> None:
    builder = Builder()
    builder.fail = True
    cache = ProgrammeCache(builder)
    for _ in range(2):
        with pytest.raises(RetryableError):
            await cache.get(delivery(1))
    builder.fail = False
    assert (await (await cache.get(delivery(1))).report()).what == "stop"
    assert len(builder.calls) == 3


async def test_a_programme_is_rebuilt_once_it_is_no_longer_fresh() -> None:
    now = [100.0]
    builder = Builder()
    cache = ProgrammeCache(builder, fresh_s=1.0, clock=lambda: now[0])
    first = await cache.get(delivery(1))
    now[0] += 0.5
    assert await cache.get(delivery(2)) is first
    now[0] += 0.6
    assert await cache.get(delivery(3)) is not first
    assert len(builder.calls) == 2


async def test_the_command_is_ready_before_the_render_ends() -> None:
    builder = Builder()
    builder.rendered.clear()
    cache = ProgrammeCache(builder)
    programme = await cache.get(delivery(1))
    assert programme.template.sign("c-1", "box:b", b"k" * 16).startswith(b"{")
    report = asyncio.ensure_future(programme.report())
    await asyncio.sleep(0.05)
    assert not report.done()
    builder.rendered.set()
    assert (await report).what == "stop"


async def test_closing_stops_the_renders_still_running_and_forgets_the_programmes() -> None:
    builder = Builder()
    builder.rendered.clear()
    cache = ProgrammeCache(builder)
    programme = await cache.get(delivery(1))
    await asyncio.sleep(0)
    await cache.close()
    assert programme.told.cancelled()
    current = asyncio.current_task()
    assert not [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    builder.rendered.set()
    again = await cache.get(delivery(2))
    assert again is not programme and (await again.report()).what == "stop"
    await cache.close()
