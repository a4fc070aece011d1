"""Preview against what was sent: every channel must show the officer, before an alert goes
out, exactly what its deliveries then carry, and count its receivers in the unit it names.

``preview_and_send`` asks the service for the channel's preview, submits the same alert, waits
until every delivery is settled and returns both; ``assert_sent_as_previewed`` compares, field
by field, each delivery's reported content with the previewed content of its language. The
tests also check what the devices and simulators received against the preview themselves.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from broadcaster.cap import Alert
from broadcaster.channel import ChannelPreview
from broadcaster.service import BroadcasterService
from tests.core.support import wait_until_complete


@dataclass(frozen=True, slots=True)
class PreviewedAndSent:
    preview: ChannelPreview
    summary: dict[str, dict[str, int]]
    rows: list[dict[str, Any]]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Each delivery's content, as the deliveries API shows it."""
        return [row["content"] for row in self.rows]


async def preview_and_send(
    service: BroadcasterService, alert: Alert, channel: str, timeout: float = 30.0
) -> PreviewedAndSent:
    preview = (await service.preview(alert, channels=[channel]))[channel]
    result = await service.submit(alert, origin="test", channels=[channel])
    summary = await wait_until_complete(service, result.alert_id, timeout=timeout)
    # A device may confirm before ``send`` has returned; its content is then written with the
    # send's own transition, a moment after the delivery already shows confirmed.
    deadline = time.monotonic() + 5
    while True:
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        if all(row["content"] is not None for row in rows) or time.monotonic() > deadline:
            return PreviewedAndSent(preview, summary, rows)
        await asyncio.sleep(0.05)


def languages_of(content: dict[str, Any]) -> tuple[str, ...]:
    """The languages a content is in: its ``language``, or those of its ``texts``."""
    if "language" in content:
        return (str(content["language"]),)
    return tuple(str(t.get("language") or t.get("lang")) for t in content.get("texts", []))


def previewed_for(preview: ChannelPreview, content: dict[str, Any]) -> dict[str, Any]:
    """The previewed content in the same languages as ``content`` and, among several, the
    one with the most fields equal (so a mismatch is reported field by field)."""
    same = [c for c in preview.contents if languages_of(c) == languages_of(content)]
    assert same, f"nothing previewed in {languages_of(content)}: {preview.contents}"
    return max(same, key=lambda c: sum(content.get(k) == v for k, v in c.items()))


def assert_sent_as_previewed(outcome: PreviewedAndSent) -> None:
    """Every delivery reported its content; each equals, field by field, the previewed one;
    every previewed content was sent."""
    assert outcome.rows, "nothing was planned"
    assert all(content is not None for content in outcome.sent), outcome.rows
    for content in outcome.sent:
        expected = previewed_for(outcome.preview, content)
        assert sorted(content) == sorted(expected)
        for field in expected:
            assert content[field] == expected[field], f"{field}: sent {content[field]!r}"
    sent = {json.dumps(c, sort_keys=True) for c in outcome.sent}
    previewed = {json.dumps(c, sort_keys=True) for c in outcome.preview.contents}
    assert sent == previewed
