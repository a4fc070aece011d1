"""Broadcast state of the EBMs the ``ebplatform`` channel sent: a platform's EBMStateResponse
(pushed to the inbound endpoint or answering our EBMStateRequest poll) checked and turned into
the delivery's confirmation.

BrdStateCode 3 (success) confirms the delivery; 4 (failed) and 5 (cancelled) fail it; 0 (not
processed), 1 (waiting) and 2 (broadcasting) are progress. A state is taken only from the
platform the EBM was sent to, and, when it names a ``RelatedEBD``, only in answer to a package
we sent about that EBM. Polls stop when the alert expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from broadcaster.channel import Confirmation, ConfirmationOutcome
from broadcaster.errors import ChannelError, StoreError
from channels.ebplatform.config import EbPeer
from drivers.ebd import (
    BrdStateCode,
    Ebd,
    EbdError,
    EbmStateRequest,
    EbmStateResponse,
    ResultCode,
    build_package,
)
from drivers.ebd.xmlsafe import beijing_now

if TYPE_CHECKING:
    from channels.ebplatform.channel import EbPlatformChannel

log = logging.getLogger(__name__)

STATE_OUTCOMES = {
    BrdStateCode.SUCCEEDED: ConfirmationOutcome.CONFIRMED,
    BrdStateCode.FAILED: ConfirmationOutcome.FAILED,
    BrdStateCode.CANCELLED: ConfirmationOutcome.FAILED,
}
"""Final broadcast states; 0 (not processed), 1 (waiting) and 2 (broadcasting) are progress."""


async def take_state(
    channel: EbPlatformChannel, ebd: Ebd, body: EbmStateResponse
) -> tuple[ResultCode, str]:
    """Apply a peer's EBMStateResponse to the delivery it is about; the answer to give."""
    sent = await channel.ledger.sent_for_ebmid(body.ebmid)
    peer = channel.peers.get(sent.peer) if sent else None
    if sent is None or peer is None or peer.ebrid != ebd.src_ebrid:
        return ResultCode.OTHER_ERROR, f"EBMID {body.ebmid} was not sent to this platform"
    if ebd.related_ebdid and await channel.ledger.package_ebmid(ebd.related_ebdid) != body.ebmid:
        return (
            ResultCode.OTHER_ERROR,
            f"RelatedEBD {ebd.related_ebdid} is no package of ours about this EBM",
        )
    await channel.ledger.set_state(body.ebmid, int(body.state))
    outcome = STATE_OUTCOMES.get(body.state, ConfirmationOutcome.PROGRESS)
    detail = f"{peer.name}: BrdStateCode {int(body.state)} {body.state_desc}".strip()
    channel.confirm(Confirmation(sent.delivery_id, outcome, detail))
    return ResultCode.OK, ""


async def poll_states(channel: EbPlatformChannel) -> None:
    """Every ``state_poll_seconds``, ask each platform for the state of the EBMs it has not
    reported finished (of alerts not yet expired)."""
    while True:
        await asyncio.sleep(channel.config.state_poll_seconds)
        try:
            for sent in await channel.ledger.awaiting_state(time.time()):
                peer = channel.peers.get(sent.peer)
                if peer is not None:
                    await _poll_one(channel, peer, sent.ebmid)
        except StoreError as error:  # out of reach for a while: poll again next round
            log.warning("ebplatform %s: state poll stopped: %s", channel.name, error)


async def _poll_one(channel: EbPlatformChannel, peer: EbPeer, ebmid: str) -> None:
    ebdid = await channel.next_ebdid()
    await channel.ledger.record_package(ebdid, ebmid)
    local = channel.config.local_ebrid
    body = EbmStateRequest(ebmid)
    request = Ebd(ebdid, local, beijing_now(), body, peer.ebrid, channel.local_url)
    try:
        package = await asyncio.to_thread(
            build_package, request, channel.signer, None, channel.form
        )
        reply = await channel.post(peer, package)
    except (ChannelError, EbdError) as error:
        log.info("ebplatform %s: state poll of %s failed: %s", channel.name, ebmid, error)
        return
    if isinstance(reply.ebd.body, EbmStateResponse):  # 2016 platforms answer in the reply
        await take_state(channel, reply.ebd, reply.ebd.body)
