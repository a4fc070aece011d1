"""Channel faults: unexpected exceptions of running channel plugins, kept per channel and point.

A channel plugin is someone else's code. The core calls it at a few points (``send``,
``cancel``, ``probe``, ``preview``, ``health``, ``housekeeping``, ``resume``,
``confirmations``, ``web_app``) and catches, at each, any exception outside the documented tree
(:class:`~broadcaster.errors.ChannelError`): the call is answered for that channel alone (a
failed health, a retryable send, an empty preview) and the fault is recorded here, with its
traceback logged once per call. ``plan`` is held to its promise as well
(:func:`plan_deliveries`). ``/healthz``, ``/metrics`` and the console show what is
recorded; the other channels never notice.

Failures to import, configure, construct or start a plugin are not faults of a running channel:
they keep the channel from running at all and are :class:`~broadcaster.plugins.PluginFailure` s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broadcaster.channel import AlertMessage, Channel, PlannedDelivery
from broadcaster.delivery import Target

log = logging.getLogger(__name__)

RECENT_SECONDS = 900.0
"""A channel with a fault this recent makes ``/healthz`` report the service degraded."""


@dataclass(slots=True)
class ChannelFault:
    """Unexpected exceptions of one channel at one point: how many, and the last one."""

    channel: str
    point: str
    count: int
    error: str
    last_at: float


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for logs, delivery errors and health pages."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ChannelFaults:
    """Every fault recorded since the service started."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._faults: dict[tuple[str, str], ChannelFault] = {}

    def record(self, channel: str, point: str, exc: BaseException) -> str:
        """Log ``exc`` (with its traceback) as a bug of ``channel`` at ``point``; returns its
        description."""
        error = describe(exc)
        log.error(
            "channel %s: unexpected %s from %s", channel, type(exc).__name__, point, exc_info=exc
        )
        fault = self._faults.get((channel, point))
        if fault is None:
            self._faults[(channel, point)] = ChannelFault(channel, point, 1, error, self.clock())
        else:
            fault.count += 1
            fault.error = error
            fault.last_at = self.clock()
        return error

    def all(self) -> list[ChannelFault]:
        return sorted(self._faults.values(), key=lambda f: (f.channel, f.point))

    def recent(self, seconds: float = RECENT_SECONDS) -> list[ChannelFault]:
        since = self.clock() - seconds
        return [f for f in self.all() if f.last_at >= since]


async def plan_deliveries(
    name: str,
    channel: Channel,
    message: AlertMessage,
    candidates: Sequence[Target],
    faults: ChannelFaults,
) -> list[PlannedDelivery]:
    """``channel.plan`` kept to its candidates, each (target, part) once.

    If ``plan`` raises, every candidate gets one delivery (the default plan): a warning reaches
    the targets in its area even through a channel whose planning is broken. Planned targets
    that were not candidates, and repeats, are dropped. Each of these is recorded as a fault.
    """
    try:
        planned = list(await channel.plan(message, candidates))
    except Exception as exc:
        faults.record(name, "plan", exc)
        return [PlannedDelivery(target=t) for t in candidates]
    allowed = {t.id for t in candidates}
    seen: set[tuple[str, int]] = set()
    kept = []
    for item in planned:
        if not isinstance(item, PlannedDelivery) or item.target.id not in allowed:
            faults.record(name, "plan", ValueError(f"planned {item!r}, not one of its candidates"))
            continue
        if (item.target.id, item.part) in seen:
            faults.record(
                name, "plan", ValueError(f"planned {item.target.id} part {item.part} twice")
            )
            continue
        seen.add((item.target.id, item.part))
        kept.append(item)
    return kept
