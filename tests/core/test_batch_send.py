"""Batch sends: a channel with ``sends_in_batches`` gets each claimed batch in one
``send_many`` call, and every delivery of it ends as a single ``send`` would have left it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.errors import PermanentError, RetryableError
from tests import bilingual
from tests.core.support import (
    make_alert,
    make_config,
    running,
    village_targets,
    wait_for_deliveries,
    wait_until_complete,
)


class BatchChannel(Channel):
    """Answers each delivery of a batch by its target's ``params``: ``permanent`` fails it for
    good, ``fail`` fails its first attempts (retryable); ``broken_calls`` whole calls raise
    a channel bug first. Records the size of every call."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    sends_in_batches = True
    calls: ClassVar[list[int]] = []
    broken_calls: ClassVar[int] = 0

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        raise AssertionError("a batching channel is sent to through send_many")

    async def send_many(
        self, deliveries: Sequence[OutgoingDelivery]
    ) -> Sequence[SendResult | Exception]:
        type(self).calls.append(len(deliveries))
        if type(self).broken_calls > 0:
            type(self).broken_calls -= 1
            raise RuntimeError("encoder table corrupt")
        return [self._answer(d) for d in deliveries]

    def _answer(self, delivery: OutgoingDelivery) -> SendResult | Exception:
        params = delivery.target.params
        if params.get("permanent"):
            return PermanentError("number does not exist")
        if delivery.attempt <= int(params.get("fail", 0)):
            return RetryableError("network busy")
        return SendResult(SendOutcome.CONFIRMED, provider_ref=f"batch-{delivery.id}")


async def test_one_call_per_batch_with_each_outcome_recorded(tmp_path: Path) -> None:
    targets = village_targets("batch", 40)
    targets[0]["params"] = {"permanent": True}
    targets[1]["params"] = {"fail": 2}
    channels = {"batch": {"type": "tests.core.test_batch_send:BatchChannel", "concurrency": 100}}
    BatchChannel.calls.clear()
    BatchChannel.broken_calls = 0
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"batch": {"confirmed": 39, "failed": 1}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        by_target = {r["target_id"]: r for r in rows}
        failed = by_target[targets[0]["id"]]
        assert failed["attempts"] == 1 and "does not exist" in failed["last_error"]
        retried = by_target[targets[1]["id"]]
        assert retried["state"] == "confirmed" and retried["attempts"] == 3
        assert retried["last_error"] == "network busy"
        events = await service.database.run(service.outbox.events, retried["id"])
        assert [e["to_state"] for e in events][-2:] == ["sending", "confirmed"]
        assert (
            by_target[targets[5]["id"]]["provider_ref"]
            == f"batch-{by_target[targets[5]['id']]['id']}"
        )
        assert service.dispatcher.sent_total["batch"] == 39
        assert service.dispatcher.failed_total["batch", "permanent"] == 1
        assert service.dispatcher.failed_total["batch", "retryable"] == 2
    assert BatchChannel.calls[0] == 40  # the first claim: every delivery in one call
    assert sum(BatchChannel.calls) == 40 + 2


async def test_an_error_of_the_whole_call_retries_every_delivery_once_recorded(
    tmp_path: Path,
) -> None:
    targets = village_targets("batch", 10)
    channels = {"batch": {"type": "tests.core.test_batch_send:BatchChannel", "concurrency": 100}}
    BatchChannel.calls.clear()
    BatchChannel.broken_calls = 1
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        assert await wait_until_complete(service, result.alert_id) == {"batch": {"confirmed": 10}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        assert all(r["attempts"] == 2 for r in rows)
        assert all(
            "channel bug: RuntimeError: encoder table corrupt" in r["last_error"] for r in rows
        )
        faults = service.dispatcher.faults.all()
        assert [(f.channel, f.point, f.count) for f in faults] == [("batch", "send", 1)]
    assert BatchChannel.calls[0] == 10 and sum(BatchChannel.calls) == 20  # retries are jittered


async def test_log_channel_retries_the_whole_batch_while_its_file_cannot_be_written(
    tmp_path: Path,
) -> None:
    channels = {"log": {"type": "log", "path": "out.jsonl"}}
    config = make_config(tmp_path, channels, village_targets("log", 30))
    out = tmp_path / "data" / "out.jsonl"
    async with running(config) as service:
        out.mkdir()  # a directory where the file should be: every write fails
        result = await service.submit(make_alert(), origin="test")
        # Between two attempts every delivery waits, queued, with the write's error (a moment
        # later the next attempt may have claimed some: they show as "sending" then).
        rows = await wait_for_deliveries(
            service,
            result.alert_id,
            lambda rows: all(
                "cannot write" in (r["last_error"] or "") and r["state"] != "sending" for r in rows
            ),
        )
        assert all(r["state"] == "queued" for r in rows)
        out.rmdir()
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"log": {"confirmed": 30}}
    lines = out.read_text(encoding="utf-8").splitlines()
    keys = [json.loads(line)["idempotency_key"] for line in lines]
    assert len(keys) == len(set(keys)) == 30


async def test_log_lines_of_one_batch_carry_each_target_s_own_languages(tmp_path: Path) -> None:
    targets = village_targets("log", 20)
    for target in targets[::2]:
        target["languages"] = ["mn-Mong"]
    channels = {"log": {"type": "log", "path": "out.jsonl"}}
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(bilingual.alert("batch-mn", "zh+mn"), origin="test")
        assert await wait_until_complete(service, result.alert_id) == {"log": {"confirmed": 20}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
    lines = (tmp_path / "data" / "out.jsonl").read_text(encoding="utf-8").splitlines()
    records = {json.loads(line)["target"]["id"]: json.loads(line) for line in lines}
    assert len(records) == 20
    mongolian = {t["id"] for t in targets[::2]}
    for target_id, record in records.items():
        language = "mn-Mong" if target_id in mongolian else "zh-CN"
        assert [t["language"] for t in record["texts"]] == [language]
        assert record["channel"] == "log" and record["alert"]["id"] == result.alert_id
        assert isinstance(record["at"], float)
    for row in rows:
        assert row["content"] == {"texts": records[row["target_id"]]["texts"]}
