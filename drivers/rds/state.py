"""What an RDS encoder puts on air: PI, PS, RT, TA, TP and PTY, as one immutable value.

The drivers use it for ``snapshot``/``restore`` and for multi-field updates; the simulator
uses it to expose what listeners would see. A field left ``None`` means "unknown" in a
snapshot and "leave unchanged" in an update. Values are checked against EN 50067 /
IEC 62106 limits (PS 8 characters, RT 64, PTY 0..31, PI 16 bits, RDS character set) by
:meth:`EncoderState.validate`, which raises :class:`~drivers.rds.errors.RdsValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import IntEnum

from drivers.rds.charset import PS_LENGTH, encode_ps, encode_rt
from drivers.rds.errors import RdsValueError


class Pty(IntEnum):
    """The two programme types of an alarm (EN 50067 Annex F); other values are 0..29."""

    ALARM_TEST = 30
    ALARM = 31


@dataclass(frozen=True, slots=True)
class EncoderState:
    """The RDS fields of one programme; ``None`` is "unknown" or "unchanged"."""

    pi: int | None = None
    ps: str | None = None
    rt: str | None = None
    ta: bool | None = None
    tp: bool | None = None
    pty: int | None = None

    def validate(self) -> EncoderState:
        """Check every set field and return the state with PS padded to 8 characters."""
        if self.pi is not None and not 0 <= self.pi <= 0xFFFF:
            raise RdsValueError(f"PI 0x{self.pi:X} outside 0..0xFFFF")
        if self.pty is not None and not 0 <= self.pty <= 31:
            raise RdsValueError(f"PTY {self.pty} outside 0..31")
        if self.rt is not None:
            encode_rt(self.rt)
        if self.ps is None:
            return self
        encode_ps(self.ps)
        return replace(self, ps=self.ps.ljust(PS_LENGTH))

    def merged(self, update: EncoderState) -> EncoderState:
        """This state with every field that ``update`` sets taken from ``update``."""
        changes = {
            field.name: getattr(update, field.name)
            for field in fields(self)
            if getattr(update, field.name) is not None
        }
        return replace(self, **changes)

    def is_empty(self) -> bool:
        """True when no field is set."""
        return all(getattr(self, field.name) is None for field in fields(self))

    def describe(self) -> str:
        """A one-line summary of the set fields, for logs and the simulator console."""
        parts = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            shown = f"{value:04X}" if field.name == "pi" else repr(value)
            parts.append(f"{field.name.upper()}={shown}")
        return " ".join(parts) or "(nothing set)"
