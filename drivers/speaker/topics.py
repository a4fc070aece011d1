"""MQTT topic names of the box protocol (docs/protocols/speaker.md, section 4.3).

``<prefix>/box/<box_id>/cmd``      server → one box, QoS 1
``<prefix>/area/<code>/cmd``       server → every box of an area, QoS 1 (signed with the area key)
``<prefix>/box/<box_id>/up``       box → server: acks and heartbeats, QoS 1
``<prefix>/box/<box_id>/presence`` retained: the box's signed hello while it is connected,
                                   ``offline`` (its last will) when it is not
``<prefix>/audio/<token>``         the ``audio_topic`` of sealed audio retained on MQTT
                                   (:mod:`drivers.speaker.audio_topics`)
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.speaker.codec import ID_PATTERN
from drivers.speaker.errors import SpeakerConfigError

DEFAULT_PREFIX = "broadcaster/speaker"
OFFLINE = b"offline"
"""The presence of a box that is not connected (its last will)."""


@dataclass(frozen=True, slots=True)
class SpeakerTopics:
    """Builds and parses the topics under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(ch in self.prefix for ch in "+#\0") or self.prefix.endswith("/"):
            raise SpeakerConfigError(f"invalid MQTT topic prefix {self.prefix!r}")

    def box_commands(self, box_id: str) -> str:
        return f"{self.prefix}/box/{box_id}/cmd"

    def area_commands(self, area_code: str) -> str:
        return f"{self.prefix}/area/{area_code}/cmd"

    def audio(self, token: str) -> str:
        """The ``audio_topic`` of the sealed audio the server serves under ``token``."""
        return f"{self.prefix}/audio/{token}"

    def box_messages(self, box_id: str) -> str:
        return f"{self.prefix}/box/{box_id}/up"

    def presence(self, box_id: str) -> str:
        return f"{self.prefix}/box/{box_id}/presence"

    @property
    def all_box_messages(self) -> str:
        return f"{self.prefix}/box/+/up"

    @property
    def all_presence(self) -> str:
        return f"{self.prefix}/box/+/presence"

    def box_of(self, topic: str) -> tuple[str, str] | None:
        """``(box_id, leaf)`` for a box topic under this prefix, else None."""
        head = f"{self.prefix}/box/"
        if not topic.startswith(head):
            return None
        box_id, _, leaf = topic[len(head) :].partition("/")
        if not ID_PATTERN.fullmatch(box_id) or leaf not in ("up", "presence"):
            return None
        return box_id, leaf
