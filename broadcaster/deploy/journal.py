"""Structured logs to journald through its native protocol (systemd's ``journal-native``).

Each record is one datagram to ``/run/systemd/journal/socket`` of ``KEY=VALUE`` lines; a value
holding a newline is written as ``KEY``, a newline, its length as a little-endian 64-bit number,
the bytes and a newline. Fields: ``MESSAGE`` (with the traceback, if any), ``PRIORITY`` (syslog
level), ``SYSLOG_IDENTIFIER``, ``LOGGER``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC``,
``THREAD_NAME``, and any upper-case fields a caller adds with ``extra={"journal": {...}}``
(``journalctl -u broadcaster ALERT_ID=...`` then finds them).

:func:`use_journal_if_attached` switches the root logger to this handler when stderr is the
journal (systemd sets ``JOURNAL_STREAM`` to its device and inode); otherwise nothing changes.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
MAX_VALUE_BYTES = 48 * 1024
"""Longer values are cut: one datagram must fit the socket's buffer."""

_FIELD_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,63}$")
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """The datagram for ``fields`` in the journal's native format."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:MAX_VALUE_BYTES]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def syslog_priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalHandler(logging.Handler):
    """A logging handler that writes records with their fields to journald."""

    def __init__(self, identifier: str = "broadcaster", path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        fields = {
            "MESSAGE": message,
            "PRIORITY": str(syslog_priority(record.levelno)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName or "",
        }
        extra = getattr(record, "journal", None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                if isinstance(key, str) and _FIELD_NAME.match(key) and key not in fields:
                    fields[key] = str(value)
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._socket.sendto(encode_fields(self.fields(record)), self.path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd connected (``JOURNAL_STREAM``)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
        return (int(device), int(inode)) == (info.st_dev, info.st_ino)
    except (ValueError, OSError):
        return False


def use_journal_if_attached(level: int = logging.INFO) -> bool:
    """Log through :class:`JournalHandler` when running under systemd with stderr in the
    journal; returns whether it did."""
    if not stderr_is_journal() or not os.path.exists(JOURNAL_SOCKET):
        return False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JournalHandler())
    root.setLevel(level)
    return True
