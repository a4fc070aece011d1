"""The ``log`` channel: appends every rendered message to a JSONL file and confirms it.

For development, demos, audits and benchmarks. Lines are written by one writer task in groups
(one write, flush and fsync per group, in a thread), and a delivery is confirmed only after its
line is on disk. The dispatcher hands it each claimed batch at once (one group entry, one
future, for the whole batch). Each line carries the idempotency key, so a reader can drop the
duplicates that at-least-once delivery allows after a crash.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    ChannelHealth,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
    texts_content,
)
from broadcaster.config import ChannelConfig
from broadcaster.errors import DeviceUnavailableError


class LogChannelConfig(ChannelConfig):
    path: Path = Field(Path("deliveries.jsonl"), description="relative to the data directory")
    fsync: bool = True
    concurrency: int = Field(1000, ge=1, le=10_000)


def delivery_record(delivery: OutgoingDelivery, channel: str) -> dict[str, Any]:
    """The JSON form of one delivery, as the log and webhook channels write it."""
    return delivery_head(delivery, channel) | texts_content(delivery.message, delivery.target)


def delivery_head(delivery: OutgoingDelivery, channel: str) -> dict[str, Any]:
    """:func:`delivery_record` without the texts (which many deliveries share)."""
    message = delivery.message
    return {
        "idempotency_key": delivery.idempotency_key,
        "delivery_id": delivery.id,
        "attempt": delivery.attempt,
        "channel": channel,
        "alert": {
            "id": message.id,
            "identifier": message.alert.identifier,
            "sender": message.alert.sender,
            "status": str(message.alert.status),
            "msgType": str(message.alert.msg_type),
            "test": message.is_test,
            "expires_at": message.expires_at,
        },
        "target": delivery.target.to_json(),
    }


class LogChannel(Channel[LogChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True, description="appends each message to a JSONL file"
    )
    config_model: ClassVar[type[ChannelConfig]] = LogChannelConfig

    async def start(self) -> None:
        path = self.config.path
        self.path = path if path.is_absolute() else self.context.data_dir / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[str, asyncio.Future[None]]] = []
        self._ready = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def stop(self) -> None:
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)

    sends_in_batches = True

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        (result,) = await self._write([delivery])
        return result

    async def send_many(self, deliveries: Sequence[OutgoingDelivery]) -> Sequence[SendResult]:
        return await self._write(deliveries)

    async def _write(self, deliveries: Sequence[OutgoingDelivery]) -> list[SendResult]:
        """Append the deliveries' lines in one group; confirmed once the group is on disk.

        The texts are encoded once per alert and set of languages, not once per delivery."""
        at = time.time()
        shared: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], str]] = {}
        lines: list[str] = []
        results: list[SendResult] = []
        for delivery in deliveries:
            key = (delivery.message.id, delivery.target.languages)
            if key not in shared:
                content = texts_content(delivery.message, delivery.target)
                shared[key] = content, json.dumps(content["texts"], ensure_ascii=False)
            content, texts = shared[key]
            head = json.dumps(delivery_head(delivery, self.name) | {"at": at}, ensure_ascii=False)
            lines.append(f'{head[:-1]}, "texts": {texts}}}')
            results.append(
                SendResult(SendOutcome.CONFIRMED, provider_ref=self.path.name, content=content)
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(("\n".join(lines), done))
        self._ready.set()
        await done
        return results

    async def _write_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._append, [line for line, _ in batch])
            except OSError as exc:
                error = DeviceUnavailableError(f"cannot write {self.path}: {exc.strerror}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _append(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            if self.config.fsync:
                os.fsync(fh.fileno())

    async def health(self) -> ChannelHealth:
        writable = os.access(self.path.parent, os.W_OK)
        return ChannelHealth(ok=writable, detail=str(self.path))
