"""Reading past a PUBLISH over the maximum packet size without holding it in memory.

Follows OASIS MQTT Version 3.1.1: 2.2.3 remaining length (known from the fixed header, before
the body, and at most 268,435,455 bytes), 3.3.2 PUBLISH variable header (the topic name, a
2-byte length and at most 65,535 bytes of UTF-8 as 1.5.3 has it, then at QoS 1 and 2 a 2-byte
packet identifier) and 3.3.3 payload (the rest of the packet).

``OversizedPublishReader`` keeps a PUBLISH's variable header, at most 65,539 bytes whatever
length the fixed header announces, and counts its payload off as it streams in: a packet of
any announced size costs the time to read its bytes, never their size in memory. The decoder
checks the variable header once the last byte is read and hands over an ``OversizedPublish``,
so the receiver can acknowledge the message as its QoS requires (4.3) without delivering it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OversizedPublish:
    """A PUBLISH over the decoder's maximum packet size, read to its end and discarded.

    ``size`` is the whole packet in bytes (fixed header included); ``packet_id`` is 0 at
    QoS 0 (MQTT 3.1.1 section 3.3.2.2). The payload is gone.
    """

    topic: str
    size: int
    qos: int
    retain: bool
    dup: bool
    packet_id: int


class OversizedPublishReader:
    """The body of one oversized PUBLISH, taken as its bytes arrive: ``head`` collects the
    variable header (topic name and packet identifier, MQTT 3.1.1 section 3.3.2), the payload
    is only counted."""

    __slots__ = ("_head_len", "_left", "flags", "head", "size")

    def __init__(self, flags: int, size: int, remaining_length: int) -> None:
        self.flags = flags
        self.size = size
        self.head = bytearray()
        # First the topic name's 2-byte length; once it is read, the whole variable header.
        self._head_len = 2
        self._left = remaining_length

    @property
    def done(self) -> bool:
        """Whether the packet's last byte has been read."""
        return not self._left

    def consume(self, data: bytes, pos: int) -> int:
        """Take this packet's bytes from ``data[pos:]``; returns the position just after
        them, which is ``len(data)`` while the packet goes on past this read."""
        end = pos + min(len(data) - pos, self._left)
        self._left -= end - pos
        head = self.head
        while pos < end and len(head) < self._head_len:
            stop = min(end, pos + self._head_len - len(head))
            head += data[pos:stop]
            pos = stop
            if len(head) == 2:
                packet_id_len = 2 if self.flags & 6 else 0
                self._head_len = 2 + (head[0] << 8 | head[1]) + packet_id_len
        return end
