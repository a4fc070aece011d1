"""Signed JSON encoding of every box protocol message (docs/protocols/speaker.md, section 2).

Pure functions shared by the hub, the box agent and the fleet simulator. A message is one JSON
object with ``"v": 1``, a ``"type"`` and a ``"sig"``: the lower-case hex HMAC-SHA256 over the
canonical form of the object without ``"sig"`` (keys sorted, no whitespace, UTF-8, RFC 8785 for
the subset used here: no floats, no duplicate keys). Commands are signed with the key of their
target (``"to": "box:<id>"`` or ``"area:<code>"``), box messages with the box's own key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from drivers.speaker.errors import SignatureError, SpeakerProtocolError
from drivers.speaker.messages import (
    ASKABLE_STAGES,
    AckStage,
    BoxAck,
    BoxHello,
    BoxMessage,
    BoxState,
    BoxStatus,
    BroadcastClass,
    Command,
    PlayClip,
    PlayUrl,
    SetVolume,
    Stop,
)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 16 * 1024
#: The latest point of an audio file where its speech may start (an attention signal is 25 s
#: at most, then its pause).
MAX_SPEECH_START_MS = 60_000

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CLIP_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
AREA_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,32}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
AUDIO_TOPIC_PATTERN = re.compile(r"[^+#/\x00-\x1f\x7f][^+#\x00-\x1f\x7f]{0,511}")
"""An ``audio_topic``: an MQTT topic name of at most 512 characters, not starting with ``/``."""
CONTROL_PATTERN = re.compile(r"[\x00-\x1f\x7f]")
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")

KeyLookup = Callable[[str], bytes | None]
"""Maps a box id (or, for commands, a target such as ``area:150902``) to its key, or None."""


def box_target(box_id: str) -> str:
    """The ``to`` value of a command for one box."""
    return f"box:{box_id}"


def area_target(area_code: str) -> str:
    """The ``to`` value of a command for every box in an area."""
    return f"area:{area_code}"


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, the only time form on the wire."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str, field: str = "time") -> datetime:
    """Parse a wire time; raises SpeakerProtocolError naming ``field`` when malformed."""
    if not TIME_PATTERN.fullmatch(text):
        raise SpeakerProtocolError(f"{field}: {text!r} is not an RFC 3339 UTC time ending in Z")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise SpeakerProtocolError(f"{field}: {text!r} is not a valid time") from exc


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: the object without ``sig``, keys sorted, no whitespace."""
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    try:
        return _CANONICAL.encode(unsigned).encode()
    except UnicodeEncodeError as exc:  # a lone surrogate (``"\ud800"``) has no UTF-8 form
        raise SpeakerProtocolError(f"a text of the message is not Unicode: {exc}") from exc


def sign(obj: dict[str, Any], key: bytes) -> str:
    """The hex HMAC-SHA256 of ``obj``'s canonical form under ``key``."""
    return hmac_hex(key, canonical_bytes(obj)).decode()


_XOR_INNER = bytes(b ^ 0x36 for b in range(256))
_XOR_OUTER = bytes(b ^ 0x5C for b in range(256))
"""Byte maps giving a key block XOR the inner and the outer pad (RFC 2104)."""
_PREPARED: dict[bytes, tuple[hashlib._Hash, hashlib._Hash]] = {}
#: Keys whose prepared HMAC states are kept (a fleet's boxes and areas); beyond it the cache
#: starts again.
PREPARED_KEPT = 500_000


def hmac_hex(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) of ``data`` under ``key``, as lower-case hex bytes.

    The SHA-256 states after the key's inner and outer pads are computed once per key and
    copied per message: ``hmac.digest`` sets the algorithm up again on every call, which
    costs several times the hashing of a short message."""
    prepared = _PREPARED.get(key)
    if prepared is None:
        block = hashlib.sha256(key).digest() if len(key) > 64 else key
        block = block.ljust(64, b"\0")
        prepared = (
            hashlib.sha256(block.translate(_XOR_INNER)),
            hashlib.sha256(block.translate(_XOR_OUTER)),
        )
        if len(_PREPARED) >= PREPARED_KEPT:
            _PREPARED.clear()
        _PREPARED[key] = prepared
    inner = prepared[0].copy()
    inner.update(data)
    outer = prepared[1].copy()
    outer.update(inner.digest())
    return outer.hexdigest().encode()


def _reject_float(text: str) -> float:
    raise SpeakerProtocolError(f"floating-point numbers are not allowed on the wire: {text}")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise SpeakerProtocolError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(parse_float=_reject_float, object_pairs_hook=_unique_pairs)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_object(data: bytes) -> dict[str, Any]:
    """Parse one wire message into a dict, refusing oversized, non-JSON or float-bearing input."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SpeakerProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError: not UTF-8, not JSON, or an integer longer than Python converts (4,300
        # digits); RecursionError: nested too deep.
        raise SpeakerProtocolError(f"not a JSON message: {exc}") from exc
    if not isinstance(obj, dict):
        raise SpeakerProtocolError("a message must be a JSON object")
    if obj.get("v") != PROTOCOL_VERSION:
        raise SpeakerProtocolError(f"unsupported protocol version {obj.get('v')!r}")
    if not isinstance(obj.get("type"), str):
        raise SpeakerProtocolError("field 'type' is missing")
    return obj


def _verify(obj: dict[str, Any], data: bytes, key: bytes | None, signer: str) -> None:
    """Check ``obj``'s signature. Messages sent in canonical form with ``sig`` last (as this
    codec sends them) are checked on their bytes; any other layout is re-encoded first."""
    sig = obj.get("sig")
    if not isinstance(sig, str):
        raise SignatureError(f"message from/for {signer} carries no signature")
    if key is None:
        raise SignatureError(f"no key is known for {signer}")
    if not SHA256_PATTERN.fullmatch(sig):
        raise SignatureError(f"the signature of a message from/for {signer} is not 64 hex digits")
    tail = data[-SIG_SUFFIX_LEN:]
    if tail[:8] == b',"sig":"' and tail[-2:] == b'"}' and tail[8:-2] == sig.encode():
        signed = data[:-SIG_SUFFIX_LEN] + b"}"
        if hmac.compare_digest(sig.encode(), hmac_hex(key, signed)):
            return
    if not hmac.compare_digest(sig.encode(), hmac_hex(key, canonical_bytes(obj))):
        raise SignatureError(f"signature does not match the key of {signer}")


def _dump(obj: dict[str, Any], key: bytes) -> bytes:
    """The canonical form with ``sig`` appended as the last member."""
    signed = canonical_bytes({k: v for k, v in obj.items() if v is not None})
    return signed[:-1] + b',"sig":"' + hmac_hex(key, signed) + b'"}'


SIG_SUFFIX_LEN = len(',"sig":"') + 64 + len('"}')


def _str(obj: dict[str, Any], field: str, pattern: re.Pattern[str] | None = None) -> str:
    value = obj.get(field)
    if type(value) is not str or not value or len(value) > 2048:
        raise SpeakerProtocolError(f"field {field!r} must be a non-empty string")
    if pattern is not None:
        if not pattern.fullmatch(value):
            raise SpeakerProtocolError(f"field {field!r} has an invalid value {value!r}")
    elif CONTROL_PATTERN.search(value):
        raise SpeakerProtocolError(f"field {field!r} contains control characters")
    return value


def _opt_str(obj: dict[str, Any], field: str, pattern: re.Pattern[str] | None = None) -> str | None:
    return None if obj.get(field) is None else _str(obj, field, pattern)


def _int(obj: dict[str, Any], field: str, low: int, high: int) -> int:
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpeakerProtocolError(f"field {field!r} must be an integer in {low}..{high}")
    return value


def _opt_int(obj: dict[str, Any], field: str, low: int, high: int) -> int | None:
    return None if obj.get(field) is None else _int(obj, field, low, high)


_EnumT = TypeVar("_EnumT", AckStage, BoxState, BroadcastClass)


def _enum(obj: dict[str, Any], field: str, enum: type[_EnumT]) -> _EnumT:
    value = obj.get(field)
    member = enum._value2member_map_.get(value) if isinstance(value, str) else None
    if member is not None:
        return member  # type: ignore[return-value]
    try:
        return enum(str(value))
    except ValueError as exc:
        raise SpeakerProtocolError(f"field {field!r} has an unknown value {value!r}") from exc


def _time(obj: dict[str, Any], field: str) -> datetime:
    return parse_time(_str(obj, field), field)


def encode_command(command: Command, target: str, key: bytes) -> bytes:
    """Sign ``command`` for ``target`` (see box_target/area_target) with ``key``."""
    obj: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "type": command.kind,
        "to": target,
        "cmd_id": command.cmd_id,
        "alert_id": command.alert_id,
        "issued_at": format_time(command.issued_at),
        "expires_at": format_time(command.expires_at),
    }
    if command.acks is not None:
        obj["acks"] = [stage.value for stage in command.acks]
    if isinstance(command, PlayUrl | PlayClip):
        obj |= {
            "sha256": command.sha256,
            "priority": command.priority,
            "volume": command.volume,
            "repeat": command.repeat,
            "class": command.broadcast_class.value,
        }
    if isinstance(command, PlayUrl):
        obj |= {
            "url": command.url,
            "fallback_clip": command.fallback_clip,
            "attention_clip": command.attention_clip,
            "attention_sha256": command.attention_sha256,
            "speech_start_ms": command.speech_start_ms,
            "audio_topic": command.audio_topic,
        }
    elif isinstance(command, PlayClip):
        obj["clip_id"] = command.clip_id
    elif isinstance(command, SetVolume):
        obj["volume"] = command.volume
    return _dump(obj, key)


def decode_command(data: bytes, key_for_target: KeyLookup) -> tuple[str, Command]:
    """Verify and decode a command; returns ``(target, command)``.

    Raises SignatureError when the HMAC does not match the target's key and
    SpeakerProtocolError for anything malformed.
    """
    obj = parse_object(data)
    target = _str(obj, "to")
    _verify(obj, data, key_for_target(target), target)
    header: dict[str, Any] = {
        "cmd_id": _str(obj, "cmd_id", ID_PATTERN),
        "alert_id": _str(obj, "alert_id"),
        "issued_at": _time(obj, "issued_at"),
        "expires_at": _time(obj, "expires_at"),
        "acks": _acks(obj),
    }
    kind = obj["type"]
    if kind in ("play_url", "play_clip"):
        # A play_url may leave its audio's SHA-256 to the sealed answer (section 5.1).
        digest = _opt_str if kind == "play_url" else _str
        header |= {
            "sha256": digest(obj, "sha256", SHA256_PATTERN),
            "priority": _int(obj, "priority", 0, 255),
            "volume": _opt_int(obj, "volume", 0, 100),
            "repeat": _int(obj, "repeat", 1, 20),
            "broadcast_class": _enum(obj, "class", BroadcastClass),
        }
    command: Command
    if kind == "play_url":
        url = _str(obj, "url")
        if not url.startswith(("http://", "https://")):
            raise SpeakerProtocolError(f"field 'url' must be http or https: {url!r}")
        clip = _opt_str(obj, "fallback_clip", CLIP_PATTERN)
        sealed = header["sha256"] is None
        command = PlayUrl(
            url=url,
            fallback_clip=clip,
            audio_topic=_audio_topic(obj, sealed),
            **_attention(obj, sealed),
            **header,
        )
    elif kind == "play_clip":
        command = PlayClip(clip_id=_str(obj, "clip_id", CLIP_PATTERN), **header)
    elif kind == "stop":
        command = Stop(**header)
    elif kind == "set_volume":
        command = SetVolume(volume=_int(obj, "volume", 0, 100), **header)
    else:
        raise SpeakerProtocolError(f"unknown command type {kind!r}")
    return target, command


def _acks(obj: dict[str, Any]) -> tuple[AckStage, ...] | None:
    """The stages a command asks to hear (section 3.2): distinct names among ``accepted``,
    ``started`` and ``finished``; None when the member is absent (every stage)."""
    value = obj.get("acks")
    if value is None:
        return None
    askable = {stage.value: stage for stage in ASKABLE_STAGES}
    if (
        not isinstance(value, list)
        or not all(isinstance(name, str) and name in askable for name in value)
        or len(set(value)) != len(value)
    ):
        raise SpeakerProtocolError(
            "field 'acks' must list distinct stages among accepted, started and finished"
        )
    return tuple(askable[name] for name in value)


def _attention(obj: dict[str, Any], sealed: bool) -> dict[str, Any]:
    """The optional attention-first fields of ``play_url``: a clip and where the speech
    starts in the downloaded audio, both or neither; for sealed audio (no ``sha256``) the
    clip alone, as the speech start comes with the sealed answer (section 5.1)."""
    clip = _opt_str(obj, "attention_clip", CLIP_PATTERN)
    start = _opt_int(obj, "speech_start_ms", 0, MAX_SPEECH_START_MS)
    if sealed and start is not None:
        raise SpeakerProtocolError(
            "'speech_start_ms' comes with sealed audio's answer, not in a play_url without 'sha256'"
        )
    if not sealed and (clip is None) != (start is None):
        raise SpeakerProtocolError("'attention_clip' and 'speech_start_ms' go together")
    return {
        "attention_clip": clip,
        "attention_sha256": _opt_str(obj, "attention_sha256", SHA256_PATTERN),
        "speech_start_ms": start,
    }


def _audio_topic(obj: dict[str, Any], sealed: bool) -> str | None:
    """The optional MQTT topic sealed audio is retained under (section 5.1): an MQTT topic
    name (no wildcard) of a sealed ``play_url`` only."""
    topic = _opt_str(obj, "audio_topic")
    if topic is None:
        return None
    if not sealed:
        raise SpeakerProtocolError("'audio_topic' goes with sealed audio, not with 'sha256'")
    if AUDIO_TOPIC_PATTERN.fullmatch(topic) is None:
        raise SpeakerProtocolError(f"field 'audio_topic' is not an MQTT topic name: {topic!r}")
    return topic


def encode_box_message(message: BoxMessage, key: bytes) -> bytes:
    """Sign a message from a box with the box's own key."""
    obj: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "type": message.kind,
        "box": message.box_id,
        "at": format_time(message.at),
    }
    if isinstance(message, BoxAck):
        obj |= {
            "cmd_id": message.cmd_id,
            "alert_id": message.alert_id,
            "stage": message.stage.value,
            "reason": message.reason,
            "source": message.source,
        }
    elif isinstance(message, BoxStatus):
        obj |= {
            "state": message.state.value,
            "volume": message.volume,
            "uptime_s": message.uptime_s,
            "firmware": message.firmware,
            "playing_alert_id": message.playing_alert_id,
            "playing_cmd_id": message.playing_cmd_id,
            "amplifier": message.amplifier,
            "power": message.power,
            "signal_dbm": message.signal_dbm,
        }
    else:
        obj |= {"nonce": message.nonce, "firmware": message.firmware}
    return _dump(obj, key)


def decode_box_message(data: bytes, key_for_box: KeyLookup) -> BoxMessage:
    """Verify and decode a message from a box, looking its key up by the ``box`` field."""
    obj = parse_object(data)
    box_id = _str(obj, "box", ID_PATTERN)
    _verify(obj, data, key_for_box(box_id), f"box {box_id}")
    at = _time(obj, "at")
    kind = obj["type"]
    if kind == "ack":
        return BoxAck(
            box_id=box_id,
            at=at,
            cmd_id=_str(obj, "cmd_id", ID_PATTERN),
            alert_id=_str(obj, "alert_id"),
            stage=_enum(obj, "stage", AckStage),
            reason=_opt_str(obj, "reason"),
            source=_opt_str(obj, "source"),
        )
    if kind == "status":
        return BoxStatus(
            box_id=box_id,
            at=at,
            state=_enum(obj, "state", BoxState),
            volume=_int(obj, "volume", 0, 100),
            uptime_s=_int(obj, "uptime_s", 0, 2**40),
            firmware=_str(obj, "firmware"),
            playing_alert_id=_opt_str(obj, "playing_alert_id"),
            playing_cmd_id=_opt_str(obj, "playing_cmd_id"),
            amplifier=_str(obj, "amplifier"),
            power=_str(obj, "power"),
            signal_dbm=_opt_int(obj, "signal_dbm", -200, 0),
        )
    if kind == "hello":
        return BoxHello(
            box_id=box_id, at=at, nonce=_str(obj, "nonce"), firmware=_str(obj, "firmware")
        )
    raise SpeakerProtocolError(f"unknown box message type {kind!r}")


def derive_key(secret: bytes, label: str) -> bytes:
    """A per-box or per-area key derived from one provisioning secret: HMAC-SHA256(secret,
    label). A convenience for simulators and bulk provisioning; the protocol does not require it.
    """
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()


_TARGET_PATTERN = re.compile(r"box:[A-Za-z0-9._:-]{1,128}|area:[A-Za-z0-9._-]{1,32}")


class CommandTemplate:
    """One command's signed form with its ``cmd_id`` and ``to`` left open.

    A fan-out sends the same command to thousands of boxes, each under its own key and with
    its own command id: the canonical JSON is encoded once here, and :meth:`sign` only splices
    the two values in and computes the HMAC. The result is byte for byte what
    :func:`encode_command` makes for the same command, id and target.
    """

    __slots__ = ("_head", "_middle", "_tail")

    def __init__(self, command: Command) -> None:
        marker = f"open-{secrets.token_hex(16)}"
        opened = replace(command, cmd_id=f"{marker}-cmd")
        encoded = encode_command(opened, f"{marker}-to", b"\0" * 32)[:-SIG_SUFFIX_LEN] + b"}"
        head, cmd_marker, rest = encoded.partition(f'"{marker}-cmd"'.encode())
        middle, to_marker, tail = rest.partition(f'"{marker}-to"'.encode())
        if not cmd_marker or not to_marker or marker.encode() in head + middle + tail:
            raise SpeakerProtocolError("the command cannot be made into a template")
        self._head = head + b'"'
        self._middle = b'"' + middle + b'"'
        self._tail = b'"' + tail[:-1] + b',"sig":"'

    def sign(self, cmd_id: str, target: str, key: bytes) -> bytes:
        """The command with ``cmd_id`` for ``target`` (see box_target/area_target), signed
        with ``key``; raises SpeakerProtocolError for an id or target the protocol refuses."""
        if not ID_PATTERN.fullmatch(cmd_id) or not _TARGET_PATTERN.fullmatch(target):
            raise SpeakerProtocolError(f"invalid command id {cmd_id!r} or target {target!r}")
        body = self._head + cmd_id.encode() + self._middle + target.encode() + self._tail
        signed = body[: -len(',"sig":"')] + b"}"
        return body + hmac_hex(key, signed) + b'"}'
