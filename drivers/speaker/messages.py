"""The message model of the loudspeaker box protocol (docs/protocols/speaker.md, sections 2 and 3).

Commands travel from the server to a box (``play_url``, ``play_clip``, ``stop``, ``set_volume``);
acknowledgements, heartbeats and the connection greeting travel from a box to the server. These
are plain frozen dataclasses (an ack is a named tuple); ``drivers.speaker.codec`` turns them into
signed JSON and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import ClassVar, NamedTuple


class Priority(IntEnum):
    """Suggested priorities per broadcast class (GY/T 1-5); any integer 0-255 is allowed.

    A play command with a strictly higher priority than the one playing preempts it.
    """

    ROUTINE = 10
    SYSTEM_DRILL = 20
    SIMULATED_DRILL = 30
    LIVE_DRILL = 40
    EMERGENCY = 100


class BroadcastClass(StrEnum):
    """The broadcast class of GY/T: drills and routine broadcasts must never pass for real ones."""

    SYSTEM_DRILL = "system_drill"
    SIMULATED_DRILL = "simulated_drill"
    LIVE_DRILL = "live_drill"
    EMERGENCY = "emergency"
    ROUTINE = "routine"


class AckStage(StrEnum):
    """The stages a box reports for one command (section 3.1)."""

    ACCEPTED = "accepted"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


ASKABLE_STAGES = (AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED)
"""The stages a command's ``acks`` may ask for, in the order a box reaches them (section 3.2)."""
PREEMPTED = "preempted"
"""The reason of a command cut off by a more urgent one."""


def ack_wanted(acks: tuple[AckStage, ...] | None, stage: AckStage, reason: str | None) -> bool:
    """Whether a box sends the ack of ``stage`` for a command asking for ``acks`` (None: every
    stage): ``failed`` always goes, and so does ``accepted`` with ``preempted`` (the command
    was cut off and will play again), whatever the command asked for."""
    return (
        acks is None
        or stage in acks
        or stage is AckStage.FAILED
        or (stage is AckStage.ACCEPTED and reason == PREEMPTED)
    )


class BoxState(StrEnum):
    """What a box is doing, as reported in its heartbeat."""

    IDLE = "idle"
    PLAYING = "playing"
    ERROR = "error"


ALL_ALERTS = "*"
"""The ``alert_id`` of a ``stop`` that stops whatever is playing or queued."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BoxCommand:
    """Fields every command carries; ``cmd_id`` is the idempotency key on the box. ``acks``
    names the stages the server wants acknowledged (``failed`` always is); None: every one."""

    kind: ClassVar[str] = ""
    cmd_id: str
    alert_id: str
    issued_at: datetime
    expires_at: datetime
    acks: tuple[AckStage, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PlayUrl(BoxCommand):
    """Download audio from ``url``, check its SHA-256 and play it ``repeat`` times.

    With ``attention_clip`` (a stored clip holding the attention signal that opens the audio)
    and ``speech_start_ms`` (where the audio after that signal begins), a box that holds the
    clip plays it the moment it accepts the command, downloads meanwhile, and then plays the
    audio from ``speech_start_ms``; a box without the clip plays the whole audio as before.

    Without ``sha256`` the audio is sealed (``drivers.speaker.seal``): the server answers the
    download with the audio's SHA-256, its speech start and a seal under the key of the
    command's ``to``, so ``speech_start_ms`` is then None and ``attention_clip`` may stand alone.
    Sealed audio may also be retained on MQTT under ``audio_topic``
    (:mod:`drivers.speaker.audio_topics`): a box on MQTT takes it from the broker instead of
    asking the server, and asks the URL when it cannot.
    """

    kind: ClassVar[str] = "play_url"
    url: str
    sha256: str | None
    priority: int
    volume: int | None = None
    repeat: int = 1
    broadcast_class: BroadcastClass = BroadcastClass.EMERGENCY
    fallback_clip: str | None = None
    attention_clip: str | None = None
    attention_sha256: str | None = None
    speech_start_ms: int | None = None
    audio_topic: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PlayClip(BoxCommand):
    """Play a clip already stored on the box, identified by id and SHA-256."""

    kind: ClassVar[str] = "play_clip"
    clip_id: str
    sha256: str
    priority: int
    volume: int | None = None
    repeat: int = 1
    broadcast_class: BroadcastClass = BroadcastClass.EMERGENCY


@dataclass(frozen=True, kw_only=True, slots=True)
class Stop(BoxCommand):
    """Stop ``alert_id`` (everything when it is ``"*"``): playing now or waiting in the queue."""

    kind: ClassVar[str] = "stop"


@dataclass(frozen=True, kw_only=True, slots=True)
class SetVolume(BoxCommand):
    """Set the box's default volume (0-100) for commands that do not carry their own."""

    kind: ClassVar[str] = "set_volume"
    volume: int


PlayCommand = PlayUrl | PlayClip
Command = PlayUrl | PlayClip | Stop | SetVolume


class BoxAck(NamedTuple):
    """A box's acknowledgement of one command: accepted, started, finished, or failed + reason.

    A named tuple: a hub decodes several per box and command in a fan-out, and a tuple is
    built in a third of the time of a frozen dataclass."""

    box_id: str
    cmd_id: str
    alert_id: str
    stage: AckStage
    at: datetime
    reason: str | None = None
    source: str | None = None

    @property
    def kind(self) -> str:
        return "ack"


@dataclass(frozen=True, kw_only=True, slots=True)
class BoxStatus:
    """A heartbeat: what the box is doing and the state of its hardware."""

    kind: ClassVar[str] = "status"
    box_id: str
    at: datetime
    state: BoxState
    volume: int
    uptime_s: int
    firmware: str
    playing_alert_id: str | None = None
    playing_cmd_id: str | None = None
    amplifier: str = "ok"
    power: str = "mains"
    signal_dbm: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BoxHello:
    """The first message on a connection-oriented link: proves the box holds its key."""

    kind: ClassVar[str] = "hello"
    box_id: str
    at: datetime
    nonce: str
    firmware: str


BoxMessage = BoxAck | BoxStatus | BoxHello


@dataclass(frozen=True, kw_only=True, slots=True)
class BoxPresence:
    """Emitted by the hub when a box comes online or goes offline on a link. ``replayed``:
    online again over MQTT without a new session of the box (the hub's own broker session
    was renewed: it reads the box's retained hello again, or hears from the box first)."""

    box_id: str
    online: bool
    transport: str
    at: datetime
    replayed: bool = False


HubEvent = BoxAck | BoxStatus | BoxPresence
