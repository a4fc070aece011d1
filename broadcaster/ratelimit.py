"""A token-bucket rate limit for one channel: ``rate`` sends a second, bursts of ``burst``."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    @property
    def limited(self) -> bool:
        """Whether sends are limited at all (a rate of 0 means no limit)."""
        return self.rate > 0

    async def acquire(self) -> None:
        """Wait until a send is allowed. A rate of 0 means no limit."""
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
