"""One modem as the pool sees it: its worker thread, state, rate limit, health and counters.

The asyncio side of ``GsmModemClient``: every blocking call runs on the modem's own single
worker thread, so AT traffic of one modem is serialised and the event loop never blocks. The
connect and health steps follow TS 27.007 §7.2 and §8.5 through ``GsmModemClient``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from drivers.gsm.config import GsmModemConfig
from drivers.gsm.errors import GsmError, GsmPermanentError
from drivers.gsm.modem import GsmModemClient, ModemSignal
from drivers.gsm.results import ModemHealth, ModemState

log = logging.getLogger(__name__)
T = TypeVar("T")
_MAX_BACKOFF = 60.0


class PoolModem:
    """One modem of the pool; ``busy`` is true while it sends a message; ``on_state`` is
    called (on the event loop) after every change of ``state``."""

    def __init__(
        self,
        config: GsmModemConfig,
        client: GsmModemClient,
        on_state: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self._on_state = on_state
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"gsm-{config.name}")
        self.state = ModemState.CONNECTING
        self.busy = False
        self.attempted = asyncio.Event()
        self.entered = {state: asyncio.Event() for state in ModemState}
        self.entered[self.state].set()
        self.signal: ModemSignal | None = None
        self.next_send = 0.0
        self.checked_at = 0.0
        self.sent_segments = 0
        self.failures = 0
        self.failures_in_a_row = 0
        self.retry_at = 0.0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def set_state(self, state: ModemState) -> None:
        self.entered[self.state].clear()
        self.state = state
        self.entered[state].set()
        if self._on_state is not None:
            self._on_state()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking client call on this modem's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def health(self) -> ModemHealth:
        return ModemHealth(
            name=self.name,
            state=self.state,
            rssi=self.signal.rssi if self.signal else None,
            registered=bool(self.signal and self.signal.registered),
            busy=self.busy,
            sent_segments=self.sent_segments,
            failures=self.failures,
            unreadable_lines=self.client.garbage_lines,
            last_error=self.last_error,
        )

    def describe(self) -> str:
        """``m0 ready (busy)`` or ``m1 failed (+CMS ERROR: 330)``, for error messages."""
        described = f"{self.name} {self.state.value}"
        if self.state is ModemState.READY and self.busy:
            return f"{described} (busy)"
        if self.state is not ModemState.READY and self.last_error:
            return f"{described} ({self.last_error})"
        return described

    def health_due(self) -> float:
        """Seconds until the next health poll (0 or less: now)."""
        return self.checked_at + self.config.health_interval - time.monotonic()

    async def connect(self) -> bool:
        """Try to connect once; False if retrying cannot help (a wrong PIN must not be
        retried: the SIM would lock)."""
        delay = self.retry_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.set_state(ModemState.CONNECTING)
        try:
            self.signal = await self.call(self.client.connect)
        except GsmPermanentError as exc:
            log.error("modem %s: not usable until reconfigured: %s", self.name, exc)
            self.set_state(ModemState.FAILED)
            self.last_error = str(exc)
            self.attempted.set()
            return False
        except GsmError as exc:
            if self.last_error != str(exc):
                log.warning("modem %s: connect failed: %s", self.name, exc)
            self.set_state(ModemState.FAILED)
            self.last_error = str(exc)
        else:
            self.checked_at = time.monotonic()
            registered = self.signal.registered
            self.set_state(ModemState.READY if registered else ModemState.NO_SERVICE)
        self.attempted.set()
        if self.state is not ModemState.READY:
            await asyncio.sleep(self.config.reconnect_interval)
        return True

    async def check_health(self) -> GsmError | None:
        """Poll signal and registration; the error if the modem stopped answering."""
        try:
            self.signal = await self.call(self.client.signal)
        except GsmError as exc:
            return exc
        self.checked_at = time.monotonic()
        return None

    def fail(self, error: GsmError | None, state: ModemState) -> bool:
        """Leave READY for ``state``; False if the modem was not ready anyway."""
        if self.state is not ModemState.READY:
            return False
        self.set_state(state)
        self.failures += 1
        self.failures_in_a_row += 1
        # a modem that fails again right after reconnecting (a SIM without SMSC) backs off
        backoff = self.config.reconnect_interval * 2 ** (self.failures_in_a_row - 1)
        self.retry_at = time.monotonic() + min(backoff, _MAX_BACKOFF)
        if error is not None:
            self.last_error = str(error)
        log.warning("modem %s: %s (%s)", self.name, state.value, error)
        return True

    async def pace(self) -> None:
        """Wait until the rate limit allows the next ``AT+CMGS``."""
        delay = self.next_send - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def sent(self) -> None:
        self.sent_segments += 1
        self.failures_in_a_row = 0
        self.next_send = time.monotonic() + self.config.min_send_interval

    async def close(self) -> None:
        """Close the port and stop the worker thread."""
        self.set_state(ModemState.STOPPED)
        # close unblocks a command in flight; once the thread is idle, close again in case
        # a connect that was under way opened the port anew
        await asyncio.to_thread(self.client.close)
        await asyncio.to_thread(self.executor.shutdown)
        await asyncio.to_thread(self.client.close)
