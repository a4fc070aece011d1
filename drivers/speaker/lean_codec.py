"""The lean fleet's short path through the box protocol (docs/protocols/speaker.md 2.1-2.4,
3.2): what a measuring simulator needs of a command, and its acks, without the general
codec's field-by-field work.

:func:`quick_command` takes a command only when it is written in the canonical form the
server's codec writes (``sig`` last) and its HMAC over the received bytes matches the key of
its ``to``; anything else returns None, and the caller hands it to
:func:`~drivers.speaker.codec.decode_command`, which accepts or refuses it with its reason.
So the short path never accepts what the general decoder would refuse for its signature.
:func:`ack_bytes` writes an ack byte for byte as
:func:`~drivers.speaker.codec.encode_box_message` does (keys sorted, no whitespace, ``sig``
last), so the server's own short path (:mod:`drivers.speaker.codec_ack`) reads it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from time import gmtime, strftime, time

from drivers.speaker.codec import AUDIO_TOPIC_PATTERN, SIG_SUFFIX_LEN, hmac_hex
from drivers.speaker.messages import ASKABLE_STAGES, AckStage

_SIG_HEAD = b',"sig":"'
_ASKABLE = {stage.value: stage for stage in ASKABLE_STAGES}
_quote: Callable[[str], str] = json.encoder.encode_basestring
"""JSON string quoting as the canonical encoder does it (``ensure_ascii=False``)."""


@dataclass(frozen=True, slots=True)
class QuickCommand:
    """What a lean box acts on: ids, the command's type and the stages it asks for, its ``to``,
    the URL of a ``play_url`` whose audio comes sealed (no ``sha256``; else None) and the
    ``audio_topic`` that audio is retained under, if it names one."""

    cmd_id: str
    alert_id: str
    kind: str
    acks: tuple[AckStage, ...] | None
    target: str
    sealed_url: str | None = None
    audio_topic: str | None = None


def quick_command(data: bytes, key_for: Callable[[str], bytes | None]) -> QuickCommand | None:
    """The command ``data`` holds when it is canonical and signed by the key of its ``to``;
    None for anything else (the general decoder then decides)."""
    if len(data) <= SIG_SUFFIX_LEN or data[-SIG_SUFFIX_LEN : -SIG_SUFFIX_LEN + 8] != _SIG_HEAD:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    target, cmd_id, alert_id, kind = (
        obj.get("to"),
        obj.get("cmd_id"),
        obj.get("alert_id"),
        obj.get("type"),
    )
    if not (
        isinstance(target, str)
        and isinstance(cmd_id, str)
        and isinstance(alert_id, str)
        and isinstance(kind, str)
    ):
        return None
    key = key_for(target)
    if key is None:
        return None
    signed = data[:-SIG_SUFFIX_LEN] + b"}"
    if not hmac.compare_digest(data[-SIG_SUFFIX_LEN + 8 : -2], hmac_hex(key, signed)):
        return None
    wanted = obj.get("acks")
    acks: tuple[AckStage, ...] | None = None
    if wanted is not None:
        if not isinstance(wanted, list) or len(set(map(str, wanted))) != len(wanted):
            return None
        if not all(isinstance(name, str) and name in _ASKABLE for name in wanted):
            return None
        acks = tuple(_ASKABLE[name] for name in wanted)
    url = obj.get("url") if kind == "play_url" and obj.get("sha256") is None else None
    sealed_url = url if isinstance(url, str) else None
    topic = obj.get("audio_topic")
    if topic is not None and (
        sealed_url is None or not isinstance(topic, str) or not AUDIO_TOPIC_PATTERN.fullmatch(topic)
    ):
        return None
    return QuickCommand(cmd_id, alert_id, kind, acks, target, sealed_url, topic)


class WireClock:
    """The wire's time form (RFC 3339 UTC, milliseconds, ``Z``) of now, formatting the date
    and time of day once a second."""

    __slots__ = ("_head", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._head = ""

    def now(self) -> str:
        moment = time()
        second = int(moment)
        if second != self._second:
            self._second, self._head = second, strftime("%Y-%m-%dT%H:%M:%S", gmtime(second))
        return f"{self._head}.{int((moment - second) * 1000):03d}Z"


def ack_bytes(
    key: bytes,
    box_id: str,
    at: str,
    cmd_id: str,
    alert_id: str,
    stage: AckStage,
    source: str | None,
    reason: str | None = None,
) -> bytes:
    """A signed ack, byte for byte as the codec writes it."""
    parts = [
        '{"alert_id":',
        _quote(alert_id),
        ',"at":"',
        at,
        '","box":',
        _quote(box_id),
        ',"cmd_id":',
        _quote(cmd_id),
    ]
    if reason is not None:
        parts += [',"reason":', _quote(reason)]
    if source is not None:
        parts += [',"source":', _quote(source)]
    parts += [',"stage":"', stage.value, '","type":"ack","v":1}']
    body = "".join(parts).encode()
    return body[:-1] + _SIG_HEAD + hmac_hex(key, body) + b'"}'
