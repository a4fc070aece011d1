"""Put a warning on air through an RDS encoder and always take TA down again.

:class:`AlertSequence` runs the on-air part of an FM alert:

1. ``RAISED``  - PTY 31 (alarm; 30 "alarm test" for test and exercise alerts) with TP and
   TA up, one acknowledged command (TA raised last within it);
2. ``TEXT``    - the alert PS and RT;
3. ``PLAYED``  - the caller's play hook (the spoken warning into the transmitter);
4. ``RESTORED`` - TA down first, then the station's normal PS, RT and PTY.

Every step is acknowledged by the encoder before the next starts; an optional ``on_step``
hook is awaited after each one (tests use it to check the encoder after every step), and
``steps_done`` lists the steps completed, so a caller can tell "aired but not restored"
from "never aired" when ``run`` raises.

Whatever happens after TA went up (the play hook fails, the task is cancelled, the link
drops) the restore still runs, shielded from further cancellation. If the link is down it
reconnects, up to ``reconnect_attempts`` times ``reconnect_delay`` apart; the client keeps
the restore as ``pending_restore`` so any later reconnection applies it first. So TA is
never left up once the encoder can be reached. Values that RDS cannot carry are refused
before anything is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from drivers.rds.client import RdsEncoderClient
from drivers.rds.errors import RdsConfigError, RdsError, RdsLinkError
from drivers.rds.state import EncoderState, Pty

_log = logging.getLogger(__name__)


class AlertStep(StrEnum):
    """The steps of an alert sequence, in order."""

    RAISED = "raised"
    TEXT = "text"
    PLAYED = "played"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class AlertContent:
    """What the alert shows: PS (≤ 8), RT (≤ 64, RDS character set), test flag."""

    ps: str
    rt: str
    test: bool = False

    @property
    def pty(self) -> int:
        """31 for a real alarm, 30 for a test or exercise."""
        return int(Pty.ALARM_TEST if self.test else Pty.ALARM)


class AlertSequence:
    """Raise, show, play, restore; see the module docstring for the guarantees."""

    def __init__(
        self,
        client: RdsEncoderClient,
        content: AlertContent,
        *,
        normal: EncoderState | None = None,
        reconnect_attempts: int = 3,
        reconnect_delay: float = 0.5,
        on_step: Callable[[AlertStep], Awaitable[None]] | None = None,
    ) -> None:
        if reconnect_attempts < 0 or reconnect_delay < 0:
            raise RdsConfigError(
                f"reconnect_attempts {reconnect_attempts} and reconnect_delay "
                f"{reconnect_delay} must not be negative"
            )
        self._client = client
        self._content = content
        self._normal = normal
        self._reconnect_attempts = reconnect_attempts
        self._reconnect_delay = reconnect_delay
        self._on_step = on_step
        self._restore_task: asyncio.Task[None] | None = None
        self.steps_done: list[AlertStep] = []

    async def _step(self, step: AlertStep) -> None:
        self.steps_done.append(step)
        _log.info("RDS alert on %s: %s", self._client.config.url, step)
        if self._on_step is not None:
            await self._on_step(step)

    async def run(self, play: Callable[[], Awaitable[None]]) -> None:
        """Run the whole sequence; raise what failed after the restore has been attempted."""
        raised = EncoderState(pty=self._content.pty, tp=True, ta=True).validate()
        text = EncoderState(ps=self._content.ps, rt=self._content.rt).validate()
        normal = replace(self._normal or self._client.snapshot(), ta=False)
        await self._client.connect()
        self._client.expect_restore(normal)
        try:
            await self._client.apply(raised)
            await self._step(AlertStep.RAISED)
            await self._client.apply(text)
            await self._step(AlertStep.TEXT)
            await play()
            await self._step(AlertStep.PLAYED)
        except BaseException as failure:
            await self._restore_after(normal, failure)
            raise
        await self._shielded_restore(normal)
        await self._step(AlertStep.RESTORED)

    async def _restore_after(self, normal: EncoderState, failure: BaseException) -> None:
        try:
            await self._shielded_restore(normal)
            self.steps_done.append(AlertStep.RESTORED)
        except RdsError as error:
            failure.add_note(f"restoring the encoder failed too: {error}")
            _log.error("RDS alert on %s: restore failed: %s", self._client.config.url, error)

    async def _shielded_restore(self, normal: EncoderState) -> None:
        if self._restore_task is None or self._restore_task.done():
            self._restore_task = asyncio.create_task(self._restore(normal))
        await asyncio.shield(self._restore_task)

    async def _restore(self, normal: EncoderState) -> None:
        last: RdsLinkError | None = None
        for attempt in range(self._reconnect_attempts + 1):
            if attempt:
                await asyncio.sleep(self._reconnect_delay)
            try:
                if not self._client.connected:
                    await self._client.connect()  # applies the pending restore first
                if self._client.pending_restore is not None:
                    await self._client.restore(normal)
                return
            except RdsLinkError as error:
                last = error
                _log.warning("RDS restore on %s failed: %s", self._client.config.url, error)
                await self._client.close()
        raise last or RdsLinkError(f"restore on {self._client.config.url}: no attempt allowed")
