"""What the scheduler needs from the running system, and nothing more.

:class:`SchedulerContext` hands the scheduled runs, the link checks and the notifier the
store, the channels, a way to submit an alert and to hear of delivery changes, and the clock;
the service builds it from its own parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from broadcaster.cap import Alert
from broadcaster.channel import Channel
from broadcaster.config import Config
from broadcaster.divisions import DivisionTree
from broadcaster.faults import ChannelFaults
from broadcaster.intake import IntakeResult
from broadcaster.plugins import PluginFailure
from broadcaster.store.interface import Store


class SubmitAlert(Protocol):
    """Accept an alert and start dispatching it (raises a BroadcasterError if refused)."""

    async def __call__(
        self, data: Alert, *, origin: str, channels: Sequence[str] | None = None
    ) -> IntakeResult: ...


Subscribe = Callable[[Callable[[], None]], Callable[[], None]]
"""Call a listener whenever delivery state may have changed; returns an unsubscribe."""


@dataclass(frozen=True, slots=True)
class SchedulerContext:
    """The parts of a running system the scheduler uses.

    ``channels`` and ``failures`` are the service's own (live) collections.
    """

    config: Config
    store: Store
    channels: Mapping[str, Channel]
    failures: Sequence[PluginFailure]
    faults: ChannelFaults
    divisions: DivisionTree | None
    submit: SubmitAlert
    subscribe: Subscribe
    clock: Callable[[], float]
