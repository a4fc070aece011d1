"""The county side of "state reported upward": each relayed alert's delivery summary, pushed to
the node it came from until that node has taken the final one.

An alert came from a node when it arrived through the API token named in ``[[node.report_to]]``
(``client``), or when that node relayed it after another source (the region's feed) had
brought it first (``relayed_alerts``). For each such alert the reporter posts its summary
(:func:`~broadcaster.federation.reports.delivery_summary`) as JSON to
``<url>/api/v1/alerts/<id>/reports`` with that entry's bearer token, whenever it differs from
the last one the node acknowledged (2xx), on every change of delivery state and at least every
``report_interval_seconds``. A node that cannot be reached, or answers 408, 425, 429 or 5xx, is
asked again on the next round. 404 (the alert unknown there) is final: logged, and the alert no
longer reported. Any other answer (a redirect, never followed; a refusal of the token or of the
report, which a node's fix or a later report may turn) is logged and asked again after
``report_interval_seconds``, twice as long after each refusal in a row up to
:data:`MAX_BACKOFF_SECONDS`, until the alert expires; then the alert is no longer reported. At
most :data:`MAX_ANSWER_BYTES` of an answer is read (only its start is logged). The alert id is
the same on both nodes: it is derived from the CAP sender, identifier and sent time
(:func:`broadcaster.intake.alert_id_for`).
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
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from broadcaster.tasks import TaskSet

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429})
_FINAL_STATUSES = frozenset({404})
MAX_BACKOFF_SECONDS = 600.0
"""The longest wait before reporting again on an alert whose report was refused."""
MAX_ANSWER_BYTES = 4096
"""The most of the node's answer that is read: only its start is logged."""
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
        self.alerts = AlertTable(database)
        self.confirming = confirming
        self.clock = clock
        self._by_client: dict[str, NodeReportConfig] = {
            entry.client: entry for entry in node.report_to
        }
        self._refused: dict[str, tuple[int, float]] = {}
        """Alerts whose report was refused: id → (refusals in a row, when to report again)."""
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
        held = self._refused.get(alert_id)
        if held is not None and self.clock() < held[1]:
            return 0
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
            async with self._session.post(
                url, data=json.dumps(body), headers=headers, allow_redirects=False
            ) as r:
                status = r.status
                try:
                    raw = await r.content.readexactly(MAX_ANSWER_BYTES)
                except asyncio.IncompleteReadError as short:
                    raw = short.partial  # the whole answer: it ended before the limit
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("report on %s to %s not delivered: %s", alert_id, entry.client, exc)
            return False
        if 200 <= status < 300:
            self._refused.pop(alert_id, None)
            return True
        if status in _RETRY_STATUSES or status >= 500:
            log.info("report on %s: %s answered HTTP %d", alert_id, entry.client, status)
            return False
        answer = raw.decode("utf-8", errors="replace")[:300]
        delay = None if status in _FINAL_STATUSES else await self._hold_back(alert_id)
        if delay is not None:
            log.warning(
                "report on %s refused by %s (HTTP %d: %s); trying again in %.0f s",
                alert_id,
                entry.client,
                status,
                answer,
                delay,
            )
            return False
        self._refused.pop(alert_id, None)
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

    async def _hold_back(self, alert_id: str) -> float | None:
        """Put off the next report on ``alert_id`` after a refusal, twice as long as after the
        last refusal in a row: the delay, or None once the alert has expired."""
        record = await self.database.run(self.alerts.get, alert_id)
        now = self.clock()
        if record is None or record["expires_at"] <= now:
            return None
        refusals = self._refused.get(alert_id, (0, now))[0] + 1
        delay = self.node.report_interval_seconds * 2.0 ** min(refusals - 1, 20)
        delay = min(delay, MAX_BACKOFF_SECONDS)
        self._refused[alert_id] = (refusals, now + delay)
        return delay
