"""Box commands for an alert (docs/protocols/speaker.md section 2.3): the GY/T broadcast class
and its priority, the volume, the command ids, the acknowledgements each command asks for
(section 3.2), and ``play_url``/``play_clip``/``stop`` built from a delivery.

Classes follow the alert's CAP status: Actual is ``emergency``; Exercise is a
``simulated_drill`` and Test a ``system_drill``; System messages are ``routine``. An Exercise
or Test may name another drill class in a ``<parameter>`` ``broadcaster:class``
(``live_drill``, say), never ``emergency``: a test can never play as a real warning. The
volume is the configuration's (``test_volume`` for Test and Exercise) unless the alert carries
``broadcaster:volume`` (scheduled audible tests do).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from broadcaster.cap import Alert, Status
from broadcaster.channel import OutgoingDelivery
from broadcaster.scheduler.runs import VOLUME_PARAMETER
from channels.loudspeaker.config import ClipSettings, LoudspeakerChannelConfig
from drivers.speaker import AckStage, BroadcastClass, PlayClip, PlayUrl, Stop

CLASS_PARAMETER = "broadcaster:class"
"""``<parameter>`` name choosing the drill class of a Test or Exercise."""

_CLASS_BY_STATUS = {
    Status.ACTUAL: BroadcastClass.EMERGENCY,
    Status.EXERCISE: BroadcastClass.SIMULATED_DRILL,
    Status.TEST: BroadcastClass.SYSTEM_DRILL,
    Status.SYSTEM: BroadcastClass.ROUTINE,
}
#: A stop stays valid this long even for an alert that is about to expire.
_STOP_VALIDITY = timedelta(minutes=5)
_DRILLS = {BroadcastClass.SYSTEM_DRILL, BroadcastClass.SIMULATED_DRILL, BroadcastClass.LIVE_DRILL}
PLAY_ACKS = (AckStage.STARTED, AckStage.FINISHED)
"""The stages a play command asks its box for: playing, and played to the end. A box's
``accepted`` adds nothing (the delivery is ``accepted`` once the box's transport took the
command); ``failed``, and ``accepted`` with ``preempted``, come in any case."""
STOP_ACKS: tuple[AckStage, ...] = ()
"""A ``stop`` asks for no stage: what it stopped reports ``failed``/``stopped`` under the play
command's own id, which is what settles the delivery."""


def _parameter(alert: Alert, name: str) -> str | None:
    for info in alert.infos:
        for parameter in info.parameters:
            if parameter.value_name == name:
                return parameter.value.strip()
    return None


def broadcast_class(alert: Alert) -> BroadcastClass:
    """The GY/T class an alert plays as; see the module docstring."""
    default = _CLASS_BY_STATUS.get(alert.status, BroadcastClass.SYSTEM_DRILL)
    if alert.status is Status.ACTUAL:
        return default
    chosen = _parameter(alert, CLASS_PARAMETER)
    if chosen in {c.value for c in _DRILLS}:
        return BroadcastClass(chosen)
    return default


def volume_for(alert: Alert, settings: LoudspeakerChannelConfig) -> int | None:
    """The volume of an alert's commands (None: the box's own)."""
    given = _parameter(alert, VOLUME_PARAMETER)
    if given is not None and given.isdigit() and 0 <= int(given) <= 100:
        return int(given)
    if alert.status in (Status.TEST, Status.EXERCISE) and settings.test_volume is not None:
        return settings.test_volume
    return settings.volume


def alert_key(alert: Alert) -> str:
    """The protocol's ``alert_id``: CAP ``sender,identifier``."""
    return f"{alert.sender},{alert.identifier}"


def command_id(kind: str, delivery: OutgoingDelivery) -> str:
    """A stable command id: a retry of the same delivery reuses it, so a box plays it once."""
    digest = hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:40]
    return f"{kind}-{digest}"


def _times(delivery: OutgoingDelivery) -> tuple[datetime, datetime]:
    return datetime.now(UTC), datetime.fromtimestamp(delivery.expires_at, UTC)


def play_url(
    delivery: OutgoingDelivery,
    settings: LoudspeakerChannelConfig,
    url: str,
    fallback: ClipSettings | None,
    audio_topic: str | None = None,
) -> PlayUrl:
    """Download ``url`` and play it, ``fallback`` if that fails. The command carries no
    SHA-256: the audio comes sealed (docs/protocols/speaker.md section 5.1), so the command
    can go before the audio is rendered; with ``audio_topic``, a box on MQTT may take it
    retained there instead. With the configured attention clip, a box holding it plays it at
    once and goes on with the audio where its speech starts."""
    alert = delivery.message.alert
    attention = settings.attention_clip
    chosen = broadcast_class(alert)
    issued, expires = _times(delivery)
    return PlayUrl(
        cmd_id=command_id("play", delivery),
        alert_id=alert_key(alert),
        issued_at=issued,
        expires_at=expires,
        url=url,
        sha256=None,
        priority=settings.priorities[chosen],
        volume=volume_for(alert, settings),
        repeat=settings.repeat,
        broadcast_class=chosen,
        fallback_clip=fallback.id if fallback else None,
        attention_clip=attention.id if attention else None,
        attention_sha256=attention.sha256 if attention else None,
        audio_topic=audio_topic,
        acks=PLAY_ACKS,
    )


def play_clip(
    delivery: OutgoingDelivery, settings: LoudspeakerChannelConfig, clip: ClipSettings
) -> PlayClip:
    """Play a clip stored on the box (when no audio could be rendered)."""
    alert = delivery.message.alert
    chosen = broadcast_class(alert)
    issued, expires = _times(delivery)
    return PlayClip(
        cmd_id=command_id("play", delivery),
        alert_id=alert_key(alert),
        issued_at=issued,
        expires_at=expires,
        clip_id=clip.id,
        sha256=clip.sha256,
        priority=settings.priorities[chosen],
        volume=volume_for(alert, settings),
        repeat=settings.repeat,
        broadcast_class=chosen,
        acks=PLAY_ACKS,
    )


def stop(delivery: OutgoingDelivery) -> Stop:
    """Stop the delivery's alert on its box, playing or queued."""
    issued, expires = _times(delivery)
    return Stop(
        cmd_id=command_id("stop", delivery),
        alert_id=alert_key(delivery.message.alert),
        issued_at=issued,
        expires_at=max(expires, issued + _STOP_VALIDITY),
        acks=STOP_ACKS,
    )
