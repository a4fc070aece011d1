"""One transmitter's RDS encoder: one alert on air at a time, and never TA left up.

A :class:`TransmitterLink` owns one :class:`~drivers.rds.RdsEncoderClient` for the life of
the channel (the same object across reconnections, so a pending restore survives) and runs
alerts on it with :class:`~drivers.rds.AlertSequence` (EBU SPB 490 elements TA/TP, PTY, PS,
RT, each acknowledged): raise TA+TP and PTY 31/30, show PS and RT, play, drop TA and put the
station's normal state back.

Serialisation: one sequence per encoder. While one runs, another alert of the same or lower
:func:`~channels.fm.onair.priority` is refused with a retryable "busy" error whose
``retry_after`` is the time left of the one on air (at most ``busy_retry_seconds``), so the
core queues it again; a strictly higher one (a real warning over a test, a more severe over
a less severe) stops the running sequence first (it is restored, then its delivery is
reported "preempted": a real alert is sent again once the transmitter is free, until it
expires; a test or exercise fails) unless ``preempt`` is off.

If a sequence ends without the encoder restored (the link stayed down through every
reconnection attempt), a background task retries every ``restore_retry_seconds`` until the
encoder takes the normal state back; the next alert's connection applies it first too. The
:class:`~channels.fm.restore.OnAirJournal` keeps the same promise across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from broadcaster.channel import Confirmation, ConfirmationOutcome, OutgoingDelivery
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from channels.fm.restore import EncoderRestorer, OnAirJournal
from drivers.rds import (
    AlertContent,
    AlertSequence,
    AlertStep,
    EncoderState,
    Pty,
    RdsEncoderClient,
    RdsError,
    RdsRejectedError,
    RdsTimeoutError,
    RdsUnsupportedError,
    RdsValueError,
)

_log = logging.getLogger(__name__)

Report = Callable[[Confirmation], None]
Play = Callable[[], Awaitable[None]]


def channel_error(error: RdsError, where: str) -> ChannelError:
    """The core's error for a driver error, retryable exactly when the driver says so."""
    message = f"{where}: {error}"
    if isinstance(error, RdsTimeoutError):
        return DeviceTimeoutError(message)
    if error.retryable:
        return DeviceUnavailableError(message)
    if isinstance(error, RdsUnsupportedError | RdsValueError):
        return UnsupportedError(message)
    if isinstance(error, RdsRejectedError):
        return TargetRejectedError(message)
    return PermanentError(message)


@dataclass(slots=True)
class LinkSettings:
    """How a link reconnects and retries its restore."""

    reconnect_attempts: int = 3
    reconnect_delay: float = 0.5
    restore_retry: float = 5.0
    busy_retry: float = 5.0
    preempt: bool = True


@dataclass(slots=True)
class Airing:
    """One alert on one transmitter."""

    delivery: OutgoingDelivery
    priority: tuple[int, int, int]
    expected_s: float
    started_at: float = field(default_factory=time.monotonic)
    on_air: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    stopped_as_asked: bool = False
    preempted: bool = False
    steps: list[str] = field(default_factory=list)


class TransmitterLink:
    """One encoder and the alert on it; see the module docstring."""

    def __init__(
        self,
        name: str,
        url: str,
        client: RdsEncoderClient,
        settings: LinkSettings,
        report: Report,
        journal: OnAirJournal | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.config = settings
        self._report = report
        self._airing: Airing | None = None
        self._begin_lock = asyncio.Lock()
        self._restorer = EncoderRestorer(name, url, client, settings.restore_retry, journal)
        self._last_task: asyncio.Task[None] | None = None
        self._normal: EncoderState | None = None
        self.last_error = ""

    async def air(
        self,
        delivery: OutgoingDelivery,
        content: AlertContent,
        play: Play,
        *,
        priority: tuple[int, int, int],
        expected_s: float,
        wanted: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Start the alert and return once it is on air (TA up, PS and RT shown, each
        acknowledged); playback and restore go on in the background and end in a
        confirmation. False if this delivery is already on air. ``wanted`` is asked last
        before anything is sent (a Cancel may have come meanwhile), once the on-air journal
        is written, with nothing awaited between that answer and the alert becoming the one
        :meth:`stop` finds. Raises ChannelError."""
        async with self._begin_lock:
            current = self._airing
            if current is not None:
                if current.delivery.idempotency_key == delivery.idempotency_key:
                    return False
                await self._make_room(current, delivery, priority)
            await self._restorer.stop()
            try:
                await self.connect()
                normal = await self._normal_state()
            except ChannelError:
                if self.client.pending_restore is not None:
                    self._restorer.start()  # keep restoring once this alert gives up
                raise
            if not wanted():
                raise RetryableError(f"delivery {delivery.id} was stopped before airing")
            await self._restorer.remember(normal, delivery.message.alert.identifier)
            if not wanted():  # a Cancel that came while the journal was written
                await self._settle_restore()
                raise RetryableError(f"delivery {delivery.id} was stopped before airing")
            loop = asyncio.get_running_loop()
            airing = Airing(delivery, priority, expected_s, on_air=loop.create_future())
            sequence = AlertSequence(
                self.client,
                content,
                normal=normal,
                reconnect_attempts=self.config.reconnect_attempts,
                reconnect_delay=self.config.reconnect_delay,
                on_step=lambda step: self._on_step(airing, step),
            )
            airing.task = asyncio.create_task(
                self._run(airing, sequence, play), name=f"fm-alert {self.name} {delivery.id}"
            )
            self._airing = airing
            self._last_task = airing.task
        assert airing.on_air is not None
        try:
            await asyncio.shield(airing.on_air)
        except asyncio.CancelledError:
            airing.task.cancel()
            raise
        return True

    async def _make_room(
        self, current: Airing, delivery: OutgoingDelivery, priority: tuple[int, int, int]
    ) -> None:
        if self.config.preempt and priority > current.priority:
            current.preempted = True
            reason = f"preempted by alert {delivery.message.alert.identifier}"
            await self.stop(current.delivery.id, reason)
            return
        left = max(1.0, current.expected_s - (time.monotonic() - current.started_at))
        raise RetryableError(
            f"transmitter {self.name} is airing alert {current.delivery.message.alert.identifier}"
            f" (about {left:.0f} s left)",
            retry_after=min(left, self.config.busy_retry),
        )

    async def stop(self, delivery_id: int, reason: str, *, as_asked: bool = False) -> bool:
        """Stop the alert of ``delivery_id`` if it is on air: audio killed, TA dropped and
        the normal state restored before this returns. False if it was not on air.
        ``as_asked`` (a Cancel) confirms the delivery as stopped; otherwise it fails."""
        airing = self._airing
        if airing is None or airing.delivery.id != delivery_id or airing.task is None:
            return False
        airing.stop_reason = reason
        airing.stopped_as_asked = as_asked
        airing.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(airing.task)
        if self._airing is airing:  # cancelled before its first step: nothing was sent
            self._airing = None
            self._stopped(airing, "nothing sent")
            await self._settle_restore()
        return True

    async def _on_step(self, airing: Airing, step: AlertStep) -> None:
        airing.steps.append(step.value)
        if step is AlertStep.TEXT and airing.on_air is not None and not airing.on_air.done():
            airing.on_air.set_result(None)
        if step is AlertStep.PLAYED:  # raised and shown are in the "accepted" detail
            detail = f"{self.name}: {step.value}"
            self._report(Confirmation(airing.delivery.id, ConfirmationOutcome.PROGRESS, detail))

    async def _run(self, airing: Airing, sequence: AlertSequence, play: Play) -> None:
        delivery_id = airing.delivery.id
        try:
            await sequence.run(play)
        except asyncio.CancelledError:
            restored = (
                "TA dropped, station restored"
                if AlertStep.RESTORED in sequence.steps_done
                else "restore pending: TA may still be up"
            )
            self._stopped(airing, restored)
        except RdsError as error:
            self.last_error = str(error)
            self._finish(
                airing,
                channel_error(error, f"transmitter {self.name}"),
                Confirmation(
                    delivery_id,
                    ConfirmationOutcome.FAILED,
                    f"{self.name}: {error} (steps done: {', '.join(airing.steps) or 'none'})",
                ),
            )
        except ChannelError as error:
            self._finish(
                airing,
                error,
                Confirmation(delivery_id, ConfirmationOutcome.FAILED, f"{self.name}: {error}"),
            )
        else:
            self.last_error = ""
            self._finish(
                airing,
                None,
                Confirmation(
                    delivery_id,
                    ConfirmationOutcome.CONFIRMED,
                    f"{self.name}: TA raised, PS/RT shown, audio played"
                    f" ({self._elapsed(airing)}), normal state restored",
                ),
            )
        finally:
            if self._airing is airing:
                self._airing = None
            await self._settle_restore()

    async def _settle_restore(self) -> None:
        """Keep restoring in the background while a restore is pending; otherwise the
        encoder is back to normal and its on-air journal entry goes."""
        if self.client.pending_restore is not None:
            self._restorer.start()
        else:
            await self._restorer.forget()

    def _stopped(self, airing: Airing, restored: str) -> None:
        """Report a sequence stopped by :meth:`stop` (or the channel stopping)."""
        reason = airing.stop_reason or "channel stopped"
        self._finish(
            airing,
            RetryableError(f"{self.name}: stopped ({reason}) before going on air"),
            Confirmation(
                airing.delivery.id,
                self._stopped_outcome(airing),
                f"{self.name}: stopped ({reason}) after {self._elapsed(airing)}; {restored}",
                retry_after=self.config.busy_retry,
            ),
        )

    @staticmethod
    def _stopped_outcome(airing: Airing) -> ConfirmationOutcome:
        """A Cancel confirms the stop; a real alert cut off by a higher one is aired again
        after it (retried until it expires); anything else stopped fails."""
        if airing.stopped_as_asked:
            return ConfirmationOutcome.CONFIRMED
        if airing.preempted and not airing.delivery.message.is_test:
            return ConfirmationOutcome.RETRY
        return ConfirmationOutcome.FAILED

    def _finish(
        self, airing: Airing, before_air: ChannelError | None, after_air: Confirmation
    ) -> None:
        """Tell ``send`` (still waiting) or the core (through a confirmation) how it ended."""
        on_air = airing.on_air
        if on_air is not None and not on_air.done():
            if before_air is None:
                on_air.set_result(None)
            else:
                on_air.set_exception(before_air)
                on_air.exception()  # retrieved here too: ``send`` may be gone
            return
        self._report(after_air)

    @staticmethod
    def _elapsed(airing: Airing) -> str:
        return f"{time.monotonic() - airing.started_at:.1f} s"

    async def _normal_state(self) -> EncoderState:
        """The station's normal state: configured, completed by reading the encoder back
        (UECP) when the configuration leaves PS, RT or PTY out; learnt once per link."""
        if self._normal is not None:
            return self._normal
        state = self.client.config.normal_state
        if state.ps is None or state.rt is None or state.pty is None:
            try:
                read = await self.client.read_state()
            except RdsUnsupportedError:
                read = EncoderState()
            except RdsError as error:
                raise channel_error(error, f"transmitter {self.name}: reading PS/RT") from error
            if not read.ta and (read.pty or 0) < int(Pty.ALARM_TEST):
                state = read.merged(state)
        if state.ps is None:
            raise UnsupportedError(
                f"transmitter {self.name}: the station's normal PS is unknown; set"
                " channels.fm.station.ps or the encoder's own ps"
            )
        rt = "" if state.rt is None else state.rt
        self._normal = replace(state, ta=False, rt=rt, pty=state.pty or 0)
        return self._normal

    def recover(self, normal: EncoderState) -> None:
        """Restore ``normal`` in the background: an earlier run left an alert possibly up."""
        self._restorer.recover(normal)

    # -- lifecycle and checks ----------------------------------------------------------

    async def connect(self) -> None:
        """Open the link (applying a pending restore first); raise ChannelError."""
        try:
            await self.client.connect()
        except RdsError as error:
            self.last_error = str(error)
            raise channel_error(error, f"transmitter {self.name}") from error

    async def probe(self) -> str:
        """Check the encoder answers without changing anything on air; raise ChannelError."""
        await self.connect()
        try:
            await self.client.ping()
        except RdsUnsupportedError:
            self.last_error = ""
            return "connected (this dialect has no silent check command)"
        except RdsError as error:
            self.last_error = str(error)
            raise channel_error(error, f"transmitter {self.name}") from error
        self.last_error = ""
        return "encoder acknowledged"

    def status(self) -> dict[str, object]:
        """What the console shows of this transmitter."""
        airing = self._airing
        return {
            "url": self.client.config.url,
            "connected": self.client.connected,
            "on_air": airing.delivery.message.alert.identifier if airing else None,
            "restore_pending": self.client.pending_restore is not None,
            "last_error": self._restorer.last_error or self.last_error,
        }

    async def close(self) -> None:
        """Stop the alert on air (restoring the encoder), then close the link."""
        airing = self._airing
        if airing is not None:
            await self.stop(airing.delivery.id, "channel stopped")
        if self._last_task is not None:  # it may still be clearing its journal entry
            await asyncio.gather(self._last_task, return_exceptions=True)
        await self._restorer.stop()
        await self.client.close()
