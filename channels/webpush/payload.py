"""What one push message says, and the RFC 8030 headers that go with it.

The payload is compact JSON (the service worker reads it; keys are short but readable)::

    {"v": 1, "alert": "<alert id>", "delivery": 42, "sub": "<subscription id>",
     "ack": "<token>", "topic": "<Topic>", "type": "Alert", "test": false,
     "level": "orange", "severity": "Severe", "url": "https://…/alerts/<alert id>",
     "texts": [{"lang": "zh-CN", "title": "…", "area": "…", "body": "…"}, …]}

``texts`` holds the subscriber's languages (the marker of Test, Exercise, Update and Cancel is
already in ``title``); ``body`` puts the instruction first. The JSON must fit one
``aes128gcm`` record (:data:`~channels.webpush.ece.MAX_PLAINTEXT` bytes, RFC 8291 §4), with the
widest delivery id, subscription id and token, so every subscriber of the same languages gets
the same texts and the preview shows them exactly (:func:`push_texts`). To fit, a headline is
cut to :data:`MAX_TITLE` characters after the marker; then bodies and areas are shortened,
longest first; then the last languages are dropped; and if even one language does not fit,
its text is the title alone (still marked), shortened until it does: the notification then
says what and links to the full alert, and its ack still confirms the delivery.

Headers (RFC 8030 §5.2–5.4): ``TTL`` from the alert's expiry, so an offline phone still gets
a warning that is valid; ``Urgency: high`` for Immediate or Extreme alerts; ``Topic`` from the
first message of the alert's chain (its first ``<references>`` entry, or itself), so an Update
or a Cancel replaces a message the push service still holds.

``ack`` is ``HMAC-SHA-256(subscription secret, "<delivery>:<alert>:<subscription>")``: the
service worker posts it back and the server confirms that delivery only if it matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.cap import Alert, Severity, Urgency
from broadcaster.channel import AlertMessage, OutgoingDelivery
from broadcaster.rendition import MessageText
from channels.webpush.ece import MAX_PLAINTEXT, b64url_encode

MAX_TTL = 28 * 24 * 3600
"""Push services keep a message at most about four weeks."""

LEVEL_OF_SEVERITY = {
    Severity.EXTREME: "red",
    Severity.SEVERE: "orange",
    Severity.MODERATE: "yellow",
    Severity.MINOR: "blue",
}
"""The colours of China's warning levels (12379): Red Ⅰ, Orange Ⅱ, Yellow Ⅲ, Blue Ⅳ."""

_COLOUR_WORDS = {
    "red": "red",
    "红色": "red",
    "orange": "orange",
    "橙色": "orange",
    "yellow": "yellow",
    "黄色": "yellow",
    "blue": "blue",
    "蓝色": "blue",
}
MAX_TITLE = 120
"""Characters of a notification title, marker included: phones show far fewer."""
_MIN_BODY = 40
_WIDEST_DELIVERY = 2**63 - 1
_WIDEST_SUBSCRIPTION = 64
_ACK_LENGTH = 24
"""An ack token is 18 bytes in base64url."""


@dataclass(frozen=True, slots=True)
class PushMessage:
    """The plaintext and the RFC 8030 headers of one push message."""

    payload: bytes
    ttl: int
    urgency: str
    topic: str


def ack_token(secret: str, delivery_id: int, alert_id: str, subscription_id: str) -> str:
    """The token a service worker must post back to confirm ``delivery_id``."""
    message = f"{delivery_id}:{alert_id}:{subscription_id}".encode()
    return b64url_encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()[:18])


def topic_for(alert: Alert) -> str:
    """32 base64url characters naming the chain of messages ``alert`` belongs to."""
    root = alert.references[0] if alert.references else alert.reference
    name = f"{root.sender},{root.identifier},{root.sent}"
    return b64url_encode(hashlib.sha256(name.encode()).digest()[:24])


def level_of(alert: Alert) -> str:
    """The warning colour: a colour named in a ``<parameter>``, else from the severity."""
    for info in alert.infos:
        for parameter in info.parameters:
            for word in parameter.value.lower().replace(";", " ").split():
                if word in _COLOUR_WORDS:
                    return _COLOUR_WORDS[word]
    for info in alert.infos:
        if info.severity in LEVEL_OF_SEVERITY:
            return LEVEL_OF_SEVERITY[info.severity]
    return "none"


def urgency_of(alert: Alert) -> str:
    """``high`` for Immediate or Extreme alerts, ``normal`` otherwise (RFC 8030 §5.3)."""
    urgent = any(
        info.urgency is Urgency.IMMEDIATE or info.severity is Severity.EXTREME
        for info in alert.infos
    )
    return "high" if urgent else "normal"


def ttl_for(expires_at: float, now: float) -> int:
    """Seconds the push service should keep the message: until the alert expires."""
    return max(0, min(MAX_TTL, int(expires_at - now)))


def _shorten(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def _title(text: MessageText, limit: int) -> str:
    """Marker and headline in ``limit`` characters; the marker is never cut."""
    return text.marker + _shorten(text.headline or text.event, max(1, limit - len(text.marker)))


def _text_entry(text: MessageText, limit: int | None) -> dict[str, str]:
    body = "\n".join(part for part in (text.instruction, text.description) if part)
    return {
        "lang": text.language,
        "title": _title(text, MAX_TITLE),
        "area": _shorten(text.area_desc, limit),
        "body": _shorten(body, limit),
    }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _document(
    message: AlertMessage, *, public_url: str, delivery_id: int, subscription_id: str, ack: str
) -> dict[str, Any]:
    alert = message.alert
    return {
        "v": 1,
        "alert": message.id,
        "delivery": delivery_id,
        "sub": subscription_id,
        "ack": ack,
        "topic": topic_for(alert),
        "type": str(alert.msg_type),
        "test": message.is_test,
        "level": level_of(alert),
        "severity": str(alert.infos[0].severity) if alert.infos else "Unknown",
        "url": f"{public_url.rstrip('/')}/alerts/{message.id}",
        "texts": [],
    }


def _title_only(document: dict[str, Any], text: MessageText) -> dict[str, str]:
    """The entry of ``text`` without area and body, its title shortened until ``document``
    with it fits (down to the marker and "…")."""
    limit = MAX_TITLE
    entry = {"lang": text.language, "title": _title(text, limit)}
    shortest = len(text.marker) + 1
    while len(_encode(document | {"texts": [entry]})) > MAX_PLAINTEXT and limit > shortest:
        limit = max(shortest, limit * 3 // 4)
        entry["title"] = _title(text, limit)
    return entry


def push_texts(
    message: AlertMessage, languages: Sequence[str], *, public_url: str
) -> list[dict[str, str]]:
    """The ``texts`` of every push message of ``message`` to a subscriber of ``languages``:
    shortened until a message with the widest delivery id, subscription id and token fits,
    so they do not depend on the delivery."""
    texts = message.rendition.for_languages(tuple(languages))
    document = _document(
        message,
        public_url=public_url,
        delivery_id=_WIDEST_DELIVERY,
        subscription_id="s" * _WIDEST_SUBSCRIPTION,
        ack="a" * _ACK_LENGTH,
    )
    document["texts"] = [_text_entry(t, None) for t in texts]
    payload = _encode(document)
    limit = max((len(e["body"]) + len(e["area"]) for e in document["texts"]), default=0)
    while len(payload) > MAX_PLAINTEXT and limit > _MIN_BODY:
        limit = max(_MIN_BODY, limit * 3 // 4)
        document["texts"] = [_text_entry(t, limit) for t in texts]
        payload = _encode(document)
    while len(payload) > MAX_PLAINTEXT and len(document["texts"]) > 1:
        document["texts"] = document["texts"][:-1]
        payload = _encode(document)
    if len(payload) > MAX_PLAINTEXT and texts:
        document["texts"] = [_title_only(document, texts[0])]
    entries: list[dict[str, str]] = document["texts"]
    return entries


def build_message(
    delivery: OutgoingDelivery, *, public_url: str, subscription_id: str, secret: str, now: float
) -> PushMessage:
    """The push message for one delivery to one subscription."""
    message = delivery.message
    document = _document(
        message,
        public_url=public_url,
        delivery_id=delivery.id,
        subscription_id=subscription_id,
        ack=ack_token(secret, delivery.id, message.id, subscription_id),
    )
    document["texts"] = push_texts(message, delivery.target.languages, public_url=public_url)
    return PushMessage(
        payload=_encode(document),
        ttl=ttl_for(delivery.expires_at, now),
        urgency=urgency_of(message.alert),
        topic=document["topic"],
    )
