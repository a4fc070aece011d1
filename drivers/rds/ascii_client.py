"""RDS encoder client for the ASCII command dialect of common hardware encoders.

Many stand-alone encoders take one text command per line, ``NAME=value`` ended by a
carriage return, and answer each with a one-character line:

=======  ==========================================================
reply    meaning
=======  ==========================================================
``+``    done
``!``    unknown command (-> RdsUnsupportedError)
``-``    invalid argument (-> RdsRejectedError)
``/``    partly done, e.g. text cut (-> RdsRejectedError, code "/")
=======  ==========================================================

Commands used: ``PI=`` (4 hex digits), ``PS=`` (8 characters), ``RT1=`` (up to 64),
``TA=`` and ``TP=`` (0/1), ``PTY=`` (0..31). Text goes on the wire as bytes of the RDS
character set (EN 50067 Annex E), as these encoders store it. There is no EWS command.

This module is the whole cost of a new encoder family: it reuses the session, retries,
snapshot/restore and alert sequence of :class:`~drivers.rds.client.RdsEncoderClient`.
Fields set together are sent as separate commands, each acknowledged, TA first when it
drops and last when it rises.
"""

from __future__ import annotations

from drivers.rds.charset import encode_rds_text
from drivers.rds.client import RdsEncoderClient
from drivers.rds.config import RdsEncoderConfig
from drivers.rds.errors import RdsRejectedError, RdsUnsupportedError
from drivers.rds.state import EncoderState

REPLY_OK = "+"
REPLY_UNKNOWN = "!"
REPLY_BAD_ARGUMENT = "-"
REPLY_PARTIAL = "/"
_REPLIES = frozenset({REPLY_OK, REPLY_UNKNOWN, REPLY_BAD_ARGUMENT, REPLY_PARTIAL})


def ascii_parts(update: EncoderState) -> list[EncoderState]:
    """One single-field part per command, TA first when it drops and last otherwise."""
    body = [
        EncoderState(pi=update.pi),
        EncoderState(pty=update.pty),
        EncoderState(ps=update.ps),
        EncoderState(rt=update.rt),
    ]
    flags = [EncoderState(ta=update.ta), EncoderState(tp=update.tp)]
    ordered = [*flags, *body] if update.ta is False else [*body, *flags]
    return [part for part in ordered if not part.is_empty()]


def ascii_command(part: EncoderState) -> bytes:
    """The command line (with its carriage return) that sets the one field of ``part``."""
    if part.pi is not None:
        return f"PI={part.pi:04X}\r".encode("ascii")
    if part.pty is not None:
        return f"PTY={part.pty}\r".encode("ascii")
    if part.ps is not None:
        return b"PS=" + encode_rds_text(part.ps, field="PS") + b"\r"
    if part.rt is not None:
        return b"RT1=" + encode_rds_text(part.rt, field="RT") + b"\r"
    if part.ta is not None:
        return b"TA=%d\r" % part.ta
    return b"TP=%d\r" % bool(part.tp)


class AsciiEncoderClient(RdsEncoderClient):
    """An RDS encoder speaking the ASCII command dialect."""

    def __init__(self, config: RdsEncoderConfig) -> None:
        super().__init__(config)
        self._line = bytearray()

    def _split_update(self, update: EncoderState) -> list[EncoderState]:
        return ascii_parts(update)

    def _encode_update(self, update: EncoderState) -> bytes:
        return ascii_command(update)

    def _on_connected(self) -> None:
        self._line.clear()

    def _feed(self, data: bytes) -> None:
        for byte in data:
            if byte in b"\r\n":
                reply = self._line.decode("latin-1").strip()
                self._line.clear()
                if reply in _REPLIES:
                    self._resolve(reply)
            else:
                self._line.append(byte)

    def _judge_reply(self, reply: object, what: str) -> bool:
        if reply == REPLY_OK:
            return True
        where = f"encoder at {self.config.url}"
        if reply == REPLY_UNKNOWN:
            raise RdsUnsupportedError(f"{what}: {where} does not know this command", "!")
        if reply == REPLY_BAD_ARGUMENT:
            raise RdsRejectedError(f"{what}: {where} refused the argument", "-")
        if reply == REPLY_PARTIAL:
            raise RdsRejectedError(f"{what}: {where} carried it out only in part", "/")
        return False
