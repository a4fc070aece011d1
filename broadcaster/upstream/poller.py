"""The poller of one ``mode = "poll"`` source: fetch the feed, take its new entries, back off.

Each round fetches the feed conditionally (the validators of the last good round, kept in the
store so a restart does not refetch what did not change), reads its entries
(:func:`broadcaster.upstream.fetch.parse_entries`) and, for each entry not seen before,
fetches the CAP document it links to and passes it through the source's gate. An entry whose
link leaves the feed's host (and ``allowed_hosts``) is refused and recorded, never fetched. A
round that fails (the feed unreachable, too big, too slow, garbage, or a document that could
not be fetched) is a failure of the source: the next round waits ``interval_seconds ×
2^failures``, at most ``backoff_max_seconds``, and the validators are kept from the last good
round so nothing is missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from broadcaster.errors import DiskFullError
from broadcaster.store.db import Database
from broadcaster.upstream.fetch import (
    FeedEntry,
    Fetched,
    FetchError,
    RefusedUrlError,
    fetch,
    origin_of,
    parse_entries,
)
from broadcaster.upstream.gate import UpstreamGate
from broadcaster.upstream.state import UpstreamTable, Validators

log = logging.getLogger(__name__)


class SourcePoller:
    """Polls one source; :meth:`poll` is one round and returns the wait before the next."""

    def __init__(
        self,
        gate: UpstreamGate,
        database: Database,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
    ) -> None:
        config = gate.config
        if config.url is None:
            raise ValueError(f"upstream {config.name}: a polled source needs a url")
        self.gate = gate
        self.config = config
        self.url = config.url
        self.database = database
        self.table = UpstreamTable(database)
        self.session = session
        self.clock = clock
        self.origins = frozenset({origin_of(config.url)})
        self.hosts = frozenset(h.lower() for h in config.allowed_hosts)

    async def poll(self) -> float:
        """One round; the seconds to wait before the next (backed off after a failure)."""
        health = self.gate.health
        try:
            await self._round()
        except (FetchError, DiskFullError) as exc:
            health.failed(self.clock(), str(exc))
            log.warning("upstream %s: %s", self.config.name, exc)
            backoff = self.config.interval_seconds * 2.0 ** min(health.failures, 30)
            delay = min(self.config.backoff_max_seconds, backoff)
        else:
            health.succeeded(self.clock())
            delay = self.config.interval_seconds
        health.next_poll_at = self.clock() + delay
        health.polls += 1
        return delay

    async def _round(self) -> None:
        name = self.config.name
        old = await self.database.run(self.table.validators, name)
        fetched = await self._get(self.url, old)
        if fetched.not_modified:
            return
        entries = parse_entries(fetched.body, fetched.url, self.config.format)
        failed: list[str] = []
        for entry in entries:
            try:
                await self._entry(entry)
            except FetchError as exc:
                failed.append(f"entry {entry.id!r}: {exc}")
        if failed:
            raise FetchError("; ".join(failed[:3]) + (" …" if len(failed) > 3 else ""))
        new = fetched.validators
        if new.etag or new.last_modified:
            await self.database.run(self.table.save_validators, name, new)

    async def _get(self, url: str, validators: Validators | None = None) -> Fetched:
        return await fetch(
            self.session,
            url,
            max_bytes=self.config.max_bytes,
            time_limit=self.config.timeout_seconds,
            origins=self.origins,
            hosts=self.hosts,
            validators=validators,
            bearer=self.config.token.reveal() if self.config.token is not None else None,
        )

    async def _entry(self, entry: FeedEntry) -> None:
        name = self.config.name
        if await self.database.run(self.table.seen, name, entry.id, entry.updated):
            return
        now = self.clock()
        host = urlsplit(entry.url).hostname or ""
        try:
            fetched = await self._get(entry.url)
        except RefusedUrlError:
            self.gate.health.noted(now, f"entry {entry.id!r} links to {host!r}: refused")
            await self._record(entry, "refused-link", None, now)
            return
        outcome = await self.gate.ingest(fetched.body, now)
        await self._record(entry, outcome.outcome, outcome.alert_id, now)

    async def _record(
        self, entry: FeedEntry, outcome: str, alert_id: str | None, now: float
    ) -> None:
        """Remember the entry for good: it is not fetched again, also after a restart."""
        await self.database.run(
            self.table.record,
            self.config.name,
            entry.id,
            entry.updated,
            url=entry.url,
            outcome=outcome,
            alert_id=alert_id,
            now=now,
        )
