"""The county side of "state reported upward": each relayed alert's delivery summary, pushed to
the node it came from until that node has taken the final one.

An alert came from a node when it arrived through the API token named in ``[[node.report_to]]``
(``client``), or when that node relayed it after another source (the region's feed) had
brought it first (``relayed_alerts``). For each such alert the reporter posts its summary
(:func:`~broadcaster.federation.reports.delivery_summary`) as JSON to
``<url>/api/v1/alerts/<id>/reports`` with that entry's bearer token, whenever it differs from
the last one the node acknowledged (2xx), on every change of delivery state and at least every
``report_interval_seconds``. A node that cannot be reached, or answers 408, 429 or 5xx, is asked
again on the next round; another refusal (the alert or the token unknown there) is logged and
the alert no longer reported. The alert id is the same on both nodes: it is derived from the
CAP sender, identifier and sent time (:func:`broadcaster.intake.alert_id_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import aiohttp

from broadcaster.federation.reports import ReportTables, delivery_summary
from broadcaster.federationconfig import NodeConfig, NodeReportConfig
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from broadcaster.tasks import TaskSet

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429})
_LOOKBACK_SECONDS = 7 * 86400
_BATCH = 500


class UpwardReporter:
    """Pushes the summaries of relayed alerts to the nodes they came from."""

    def __init__(
        self,
        node: NodeConfig,
        database: Database,
        confirming: Callable[[], Collection[str]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.database = database
        self.tables = ReportTables(database)
        self.outbox = Outbox(database)
        self.confirming = confirming
        self.clock = clock
        self._by_client: dict[str, NodeReportConfig] = {
            entry.client: entry for entry in node.report_to
        }
        self._changed = asyncio.Event()
        self._tasks = TaskSet("reporter")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self._by_client:
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks.spawn(self._loop(), name="reporter")

    async def stop(self) -> None:
        await self._tasks.close()
        if self._session is not None:
            await self._session.close()

    async def relayed(self, alert_id: str, client: str) -> None:
        """``client`` sent ``alert_id`` here after another source had brought it: report its
        state to that node as to one it came from."""
        if client in self._by_client:
            await self.database.run(self.tables.record_relayed, alert_id, client, self.clock())
            self.changed()

    def changed(self) -> None:
        """Delivery state may have changed: report without waiting for the interval."""
        self._changed.set()

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            try:
                await self.report_once()
            except Exception:
                log.exception("reporting delivery state upward failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait(), timeout=self.node.report_interval_seconds
                )
            # Deliveries change in bursts: gather them into one report per alert.
            await asyncio.sleep(0.2)

    async def report_once(self) -> int:
        """Report every relayed alert whose summary changed; how many were taken."""
        since = self.clock() - _LOOKBACK_SECONDS
        ids = await self.database.run(self.tables.unreported, list(self._by_client), since, _BATCH)
        taken = 0
        for alert_id in ids:
            taken += await self._report(alert_id)
        return taken

    async def _report(self, alert_id: str) -> int:
        clients = await self.database.run(self.tables.relayed_by, alert_id)
        entry = next((self._by_client[c] for c in clients if c in self._by_client), None)
        if entry is None:
            return 0
        counts = await self.database.run(self.outbox.summary, alert_id)
        summary, complete = delivery_summary(counts, self.confirming())
        complete = complete and not await self.database.run(self.tables.held, alert_id)
        report = {"summary": summary, "complete": complete}
        if await self.database.run(self.tables.acknowledged, alert_id) == report:
            return 0
        body = {"node": self.node.division, **report}
        if not await self._post(entry, alert_id, body):
            return 0
        await self.database.run(
            self.tables.record_acknowledged, alert_id, summary, complete, self.clock()
        )
        return 1

    async def _post(self, entry: NodeReportConfig, alert_id: str, body: Mapping[str, Any]) -> bool:
        """Whether the node took the report; a refusal for good is logged and marked taken."""
        assert self._session is not None
        url = f"{entry.url.rstrip('/')}/api/v1/alerts/{alert_id}/reports"
        headers = {
            "Authorization": f"Bearer {entry.token.reveal()}",
            "Content-Type": "application/json",
        }
        try:
            async with self._session.post(url, data=json.dumps(body), headers=headers) as r:
                status = r.status
                answer = (await r.text())[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("report on %s to %s not delivered: %s", alert_id, entry.client, exc)
            return False
        if 200 <= status < 300:
            return True
        if status in _RETRY_STATUSES or status >= 500:
            log.info("report on %s: %s answered HTTP %d", alert_id, entry.client, status)
            return False
        log.error(
            "report on %s refused by %s (HTTP %d: %s); not reporting it again",
            alert_id,
            entry.client,
            status,
            answer,
        )
        await self.database.run(
            self.tables.record_acknowledged, alert_id, {"refused": status}, True, self.clock()
        )
        return False
