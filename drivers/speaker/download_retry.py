"""How a box tries its audio download again before it falls back to a stored clip
(docs/protocols/speaker.md section 5.1).

A box that heard nothing but its attention signal because one connection failed would be a
village left without the warning's words. A failure that may pass (the connection refused,
reset or lost before the answer, or HTTP 429, 500, 502, 503 or 504:
:class:`~drivers.speaker.errors.DownloadInterruptedError`) is tried again, four tries in all:
after :data:`WAITS_S`, or after the answer's ``Retry-After`` (:mod:`drivers.retry_after`) when
it gives one, never longer than :data:`LONGEST_WAIT_S`. All tries together take no longer than
one download may (the fetcher's timeout, 30 s): each gets what is left of it, so a box whose
server cannot answer plays its fallback clip no later than it did before it tried again. A
timeout, any other status, an answer too large or one that does not verify is not tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from drivers.speaker.errors import DownloadInterruptedError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses of a server that may answer a moment later."""
WAITS_S = (1.0, 2.0, 4.0)
"""The waits before the second, third and fourth try."""
LONGEST_WAIT_S = 10.0
"""The most a ``Retry-After`` makes a box wait before its next try."""


async def with_retries(attempt: Callable[[float], Awaitable[T]], url: str, within_s: float) -> T:
    """``attempt(seconds_left)``, tried again after each interrupted failure until four tries
    have failed or ``within_s`` seconds have passed since the first began (the last failure
    is raised); any other error is raised at once."""
    deadline = time.monotonic() + within_s
    waits = iter(WAITS_S)
    while True:
        try:
            return await attempt(deadline - time.monotonic())
        except DownloadInterruptedError as exc:
            wait = next(waits, None)
            if wait is None:
                raise
            delay = wait if exc.retry_after is None else min(exc.retry_after, LONGEST_WAIT_S)
            if time.monotonic() + delay >= deadline:
                raise
            log.info("download of %s failed (%s); trying again in %.1f s", url, exc, delay)
            await asyncio.sleep(delay)
