"""Link checks: each channel's links probed on their own interval; lasting failures raise notices.

Every ``interval_seconds`` (per channel, ``[scheduler.linkcheck.channels.<name>]``), the checker
asks the channel's ``health()`` (stored as target ``*``) and, for channels that implement
``probe`` (unless ``probe_targets = false``), probes each of its registry targets (modem
answers and has signal, encoder acknowledges, box heartbeat age, push service reachable). The
results go to ``link_status``.

A target that fails ``unhealthy_after`` checks in a row opens a ``link`` notice, shown by the
API and console, and the officers are told through the notify channel (one message per channel
and round, however many targets went down together). When it passes again the notice is
resolved and, with ``on_recovery``, the officers are told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from broadcaster.channel import Channel, ProbeResult
from broadcaster.delivery import Target
from broadcaster.faults import ChannelFaults
from broadcaster.plugins import PluginFailure
from broadcaster.scheduler.config import LinkCheckConfig
from broadcaster.scheduler.notify import OfficerNotifier
from broadcaster.store.interface import Store
from broadcaster.tasks import TaskSet

log = logging.getLogger(__name__)

CHANNEL_SUBJECT = "*"
"""The target id under which a channel's own ``health()`` is recorded."""


def probes_each_target(channel: Channel) -> bool:
    """False when the channel keeps the default ``probe``, which only repeats ``health()``."""
    return type(channel).probe is not Channel.probe


async def _probe(
    channel: Channel, target: Target, limit: float, faults: ChannelFaults
) -> ProbeResult:
    try:
        async with asyncio.timeout(limit):
            result = await channel.probe(target)
        if not isinstance(result, ProbeResult):
            raise TypeError(f"probe returned {type(result).__name__}, not a ProbeResult")
    except TimeoutError:
        return ProbeResult(ok=False, detail=f"no answer within {limit:g} s")
    except Exception as exc:
        return ProbeResult(
            ok=False, detail=f"probe failed: {faults.record(channel.name, 'probe', exc)}"
        )
    return result


async def probe_targets(
    channel: Channel,
    targets: Sequence[Target],
    *,
    concurrency: int,
    time_limit: float,
    faults: ChannelFaults | None = None,
) -> list[tuple[Target, ProbeResult]]:
    """Probe every target silently, ``concurrency`` at a time, each within ``time_limit`` s.

    A channel with the default ``probe`` is asked once and its answer stands for every target.
    A probe that raises is a failed probe and a fault of the channel (``faults``).
    """
    faults = faults or ChannelFaults()
    if not targets:
        return []
    if not probes_each_target(channel):
        shared = await _probe(channel, targets[0], time_limit, faults)
        return [(t, shared) for t in targets]
    limit = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> tuple[Target, ProbeResult]:
        async with limit:
            return target, await _probe(channel, target, time_limit, faults)

    return list(await asyncio.gather(*(one(t) for t in targets)))


class LinkChecker:
    """Runs the periodic link checks of every running channel."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        failures: Sequence[PluginFailure],
        faults: ChannelFaults,
        config: LinkCheckConfig,
        notifier: OfficerNotifier,
        clock: Callable[[], float],
        *,
        concurrency: int = 32,
    ) -> None:
        self.store = store.schedules
        self.targets = store.targets
        self.channels = channels
        self.failures = failures
        self.faults = faults
        self.config = config
        self.notifier = notifier
        self.clock = clock
        self.concurrency = concurrency
        self._tasks = TaskSet("linkcheck")
        self._checking: set[str] = set()

    def interval_of(self, name: str) -> float | None:
        """Seconds between checks of channel ``name``; None when its checks are off."""
        own = self.config.channels.get(name)
        if not self.config.enabled or (own is not None and not own.enabled):
            return None
        if own is not None and own.interval_seconds is not None:
            return own.interval_seconds
        return self.config.interval_seconds

    async def start(self, jobs: AsyncIOScheduler) -> None:
        """Raise notices for channels that failed to load or start, and add one interval job
        per checked channel to ``jobs``."""
        await self._failed_channels()
        for name in self.channels:
            interval = self.interval_of(name)
            if interval is not None:
                jobs.add_job(
                    self._spawn_check,
                    IntervalTrigger(seconds=interval),
                    args=[name],
                    id=f"linkcheck:{name}",
                    coalesce=True,
                    max_instances=1,
                )

    async def stop(self) -> None:
        """Stop the checks in progress (call after the jobs' scheduler is shut down)."""
        await self._tasks.close()

    async def _failed_channels(self) -> None:
        now = self.clock()
        running = [f"{name}/{CHANNEL_SUBJECT}" for name in self.channels]
        await self.store.resolve_notices("link", running, now)
        opened = []
        for failure in self.failures:
            subject = f"{failure.channel}/{CHANNEL_SUBJECT}"
            text = self.notifier.texts.channel_down(failure.channel, failure.error)
            notice = await self.store.open_notice("link", subject, text, now)
            if notice is not None:
                log.warning("channel %s is down: %s", failure.channel, failure.error)
                opened.append((notice, text))
        if opened:
            self._tasks.spawn(self._tell(opened), name="linkcheck:notify")

    async def _tell(self, opened: list[tuple[int, str]]) -> None:
        """Notify the officers of newly opened notices, in one message."""
        notified = await self.notifier.notify(self.notifier.texts.joined([t for _, t in opened]))
        for notice, _ in opened:
            await self.store.set_notified(notice, notified)

    async def _spawn_check(self, name: str) -> None:
        if name not in self._checking:
            self._tasks.spawn(self._check(name), name=f"linkcheck:{name}")

    async def _check(self, name: str) -> None:
        self._checking.add(name)
        try:
            await self.check_channel(name)
        finally:
            self._checking.discard(name)

    async def check_channel(self, name: str) -> dict[str, ProbeResult]:
        """Check channel ``name`` once: store each result, open and resolve notices."""
        channel = self.channels[name]
        try:
            async with asyncio.timeout(self.config.probe_timeout_seconds):
                health = await channel.health()
            results = {CHANNEL_SUBJECT: ProbeResult(ok=health.ok, detail=health.detail)}
        except TimeoutError:
            results = {CHANNEL_SUBJECT: ProbeResult(ok=False, detail="health check timed out")}
        except Exception as exc:
            error = self.faults.record(name, "health", exc)
            results = {CHANNEL_SUBJECT: ProbeResult(ok=False, detail=f"health check: {error}")}
        names = {CHANNEL_SUBJECT: f"{name} (channel)"}
        own = self.config.channels.get(name)
        if probes_each_target(channel) and (own is None or own.probe_targets):
            targets = await self.targets.for_channel(name)
            probed = await probe_targets(
                channel,
                targets[: self.config.max_targets],
                concurrency=self.concurrency,
                time_limit=self.config.probe_timeout_seconds,
                faults=self.faults,
            )
            for target, result in probed:
                results[target.id] = result
                names[target.id] = target.name
        await self._record(name, results, names)
        return results

    async def _record(
        self, name: str, results: dict[str, ProbeResult], names: dict[str, str]
    ) -> None:
        now = self.clock()
        rows = [(tid, r.ok, r.detail) for tid, r in results.items()]
        failures = await self.store.record_probes(name, rows, now)
        texts = self.notifier.texts
        healthy = {f"{name}/{tid}": tid for tid, r in results.items() if r.ok}
        resolved = await self.store.resolve_notices("link", list(healthy), now)
        up = [texts.link_up(name, names[healthy[subject]]) for subject in resolved]
        for subject in resolved:
            log.info("link %s is healthy again", subject)
        down: list[tuple[int, str]] = []
        for target_id, result in results.items():
            if result.ok or failures[target_id] < self.config.unhealthy_after:
                continue
            subject = f"{name}/{target_id}"
            text = texts.link_down(name, names[target_id], failures[target_id], result.detail)
            notice = await self.store.open_notice("link", subject, text, now)
            if notice is not None:
                log.warning("link %s unhealthy: %s", subject, result.detail)
                down.append((notice, text))
        if down:
            await self._tell(down)
        if up and self.notifier.config.on_recovery:
            await self.notifier.notify(texts.joined(up))
