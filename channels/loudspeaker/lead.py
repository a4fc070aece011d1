"""How long a play command published to an area holds back behind the attention clip
published there ahead of it (docs/protocols/speaker.md sections 4.3 and 5.1).

The stored attention clip starts sound at once; the ``play_url`` that follows is a second
publish to the same area topic. A broker such as Mosquitto fans one publish out to every
subscriber before it reads anything else, and then reads one packet per connection per pass
of its loop: published the moment the warning is rendered, the play command's fan-out comes
before the boxes' reports that the clip started, and each of those waits for it. So the play
command of an area waits until every box of the area reported the clip started (or
failed), at most ``LEAD_S`` after the broker took the clip. The boxes play the signal
meanwhile, which lasts longer, and download the warning once the play command arrives;
nothing waits for a box that never answers. Over TCP the server writes to each box itself
and nothing is held back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from drivers.speaker import AckStage, BoxAck

LEAD_S = 1.0
"""The longest a play command waits behind its area's attention clip."""
_KEPT = 64
"""Attention clips published to areas that are remembered (the oldest are forgotten)."""


@dataclass(slots=True)
class _Clip:
    """One group's attention clip: the boxes yet to report, those that did, and when it was
    handed over (loop time; None until then)."""

    waiting: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    sent_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AttentionLead:
    """Attention clips published to areas and the boxes that have reported them."""

    def __init__(self) -> None:
        self._clips: OrderedDict[str, _Clip] = OrderedDict()

    def sending(self, cmd_id: str) -> None:
        """The clip ``cmd_id`` is about to be published: its reports count from now on."""
        if cmd_id not in self._clips:
            self._clips[cmd_id] = _Clip()
            while len(self._clips) > _KEPT:
                self._clips.popitem(last=False)

    def sent(self, cmd_id: str, boxes: Iterable[str]) -> None:
        """The broker took the clip ``cmd_id`` for ``boxes`` just now."""
        clip = self._clips.get(cmd_id)
        if clip is None:
            return
        clip.waiting.update(box for box in boxes if box not in clip.reported)
        clip.sent_at = asyncio.get_running_loop().time()
        if not clip.waiting:
            clip.done.set()

    def reported(self, ack: BoxAck) -> None:
        """A box's ack of an attention clip: any but ``accepted`` says it started or failed."""
        clip = self._clips.get(ack.cmd_id)
        if clip is None or ack.stage is AckStage.ACCEPTED:
            return
        clip.reported.add(ack.box_id)
        if ack.box_id in clip.waiting:
            clip.waiting.discard(ack.box_id)
            if not clip.waiting:
                clip.done.set()

    async def wait(self, cmd_ids: Iterable[str]) -> None:
        """Until every box each clip of ``cmd_ids`` was sent to reported it, or ``LEAD_S``
        after the broker took it; at once for a clip not published to an area."""
        loop = asyncio.get_running_loop()
        for cmd_id in cmd_ids:
            clip = self._clips.get(cmd_id)
            if clip is None or clip.sent_at is None:
                continue
            left = clip.sent_at + LEAD_S - loop.time()
            if left > 0 and not clip.done.is_set():
                try:
                    async with asyncio.timeout(left):
                        await clip.done.wait()
                except TimeoutError:
                    pass
