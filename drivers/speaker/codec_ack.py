"""A fast decoder for the common shape of a box's message: an ``ack`` in the canonical form
this protocol's codec writes (docs/protocols/speaker.md sections 2.1 and 3.1).

A hub receives three acks per box and command, so a fan-out to ten thousand boxes decodes
tens of thousands of them; the general decoder (JSON with duplicate-key and float checks,
field by field validation, a re-encoding when the layout is not canonical) spends most of
its time on what one pattern can check at once. :func:`decode_box_line` matches an ack
written exactly as :func:`~drivers.speaker.codec.encode_box_message` writes it (keys sorted,
no whitespace, no escapes, ``sig`` last) and checks its HMAC on the received bytes; every
other message, and any ack the pattern or the checks do not take, goes to
:func:`~drivers.speaker.codec.decode_box_message`, which accepts or refuses it with its
reason. The fast path accepts only what the general one accepts, and yields the same
:class:`~drivers.speaker.messages.BoxAck`.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime

from drivers.speaker.codec import SIG_SUFFIX_LEN, KeyLookup, decode_box_message, hmac_hex
from drivers.speaker.messages import AckStage, BoxAck, BoxMessage

_ID = rb"[A-Za-z0-9._:-]{1,128}"
_TEXT = rb'[^"\\\x00-\x1f\x7f]{1,2048}'
_ACK = re.compile(
    rb'\{"alert_id":"(?P<alert_id>' + _TEXT + rb')"'
    rb',"at":"(?P<at>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z)"'
    rb',"box":"(?P<box>' + _ID + rb')"'
    rb',"cmd_id":"(?P<cmd_id>' + _ID + rb')"'
    rb'(?:,"reason":"(?P<reason>' + _TEXT + rb')")?'
    rb'(?:,"source":"(?P<source>' + _TEXT + rb')")?'
    rb',"stage":"(?P<stage>accepted|started|finished|failed)"'
    rb',"type":"ack","v":1,"sig":"(?P<sig>[0-9a-f]{64})"\}'
)
_STAGES = {stage.value.encode(): stage for stage in AckStage}


def decode_box_line(data: bytes, key_for_box: KeyLookup) -> BoxMessage:
    """Verify and decode a message from a box, as ``decode_box_message`` does (and raising
    what it raises), through the fast path when the message is a canonical ack."""
    ack = _fast_ack(data, key_for_box)
    return ack if ack is not None else decode_box_message(data, key_for_box)


def _fast_ack(data: bytes, key_for_box: KeyLookup) -> BoxAck | None:
    """The ack ``data`` holds when it has the canonical shape and a valid signature; None
    for anything else (the general decoder then decides, and names what is wrong)."""
    match = _ACK.fullmatch(data)
    if match is None:
        return None
    alert_id, at, box, cmd_id, reason, source, stage, sig = match.groups()
    box_id = box.decode("ascii")
    key = key_for_box(box_id)
    if key is None:
        return None
    signed = data[:-SIG_SUFFIX_LEN] + b"}"
    if not hmac.compare_digest(sig, hmac_hex(key, signed)):
        return None
    try:  # not UTF-8, or not a date: the general decoder says which
        return BoxAck(  # positional, in field order: a third quicker than by keyword
            box_id,
            cmd_id.decode("ascii"),
            alert_id.decode(),
            _STAGES[stage],
            datetime.fromisoformat(at.decode("ascii")),
            None if reason is None else reason.decode(),
            None if source is None else source.decode(),
        )
    except ValueError:
        return None
