"""The dispatcher when the store fails just as an idle worker looks for the next due time: a
real PostgreSQL server frozen (SIGSTOP) at that moment, so the look times out; the worker waits
a poll instead of ending, and once the server runs again an alert submitted then is delivered."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import psycopg
import pytest

from broadcaster.config import Secret, StoreConfig
from broadcaster.errors import StoreUnavailableError
from broadcaster.intake import IntakeResult
from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from tests.core.support import (
    RecordingChannel,
    make_alert,
    make_config,
    running,
    village_targets,
    wait_until_complete,
)


async def submitted_once_the_store_answers(service: BroadcasterService) -> IntakeResult:
    deadline = time.monotonic() + 15
    while True:
        try:
            return await service.submit(make_alert("after-the-freeze"), origin="test")
        except StoreUnavailableError:  # reconnecting: the store answers again shortly
            assert time.monotonic() < deadline, "the store never answered again"
            await asyncio.sleep(0.2)


async def test_a_store_failing_at_the_idle_look_leaves_the_dispatcher_running(
    tmp_path: Path, own_pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingChannel.sent = []
    url = own_pg_server.tcp_url(own_pg_server.fresh())
    config = make_config(
        tmp_path,
        {"rec": {"type": "tests.core.support:RecordingChannel"}},
        village_targets("rec", 3),
    )
    store = StoreConfig(url=Secret(url), node="a", statement_timeout_seconds=1)
    config = config.model_copy(update={"store": store})
    async with running(config) as service:
        outbox = service.dispatcher.outbox
        look = outbox.next_due_at
        failures: list[BaseException] = []
        looked = threading.Event()

        def frozen_at_the_look(channel: str, now: float) -> float | None:
            if looked.is_set():
                return look(channel, now)
            own_pg_server.freeze()  # the server stops answering at this very call
            try:
                return look(channel, now)
            except BaseException as exc:
                failures.append(exc)
                raise
            finally:
                looked.set()

        monkeypatch.setattr(outbox, "next_due_at", frozen_at_the_look)
        try:
            assert await asyncio.to_thread(looked.wait, 30)
        finally:
            own_pg_server.thaw()
        assert len(failures) == 1 and isinstance(failures[0], psycopg.OperationalError)
        result = await submitted_once_the_store_answers(service)
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
    assert summary == {"rec": {"confirmed": 3}}
    assert len(RecordingChannel.sent) == 3
