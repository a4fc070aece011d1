"""The AT session: one command in flight, replies matched to it, unsolicited lines routed out.

Transport and session layer of the driver over pyserial, following 3GPP TS 27.007 §4-5 (command
line, final result codes) and TS 27.005 §3.5.1 (``AT+CMGS`` in PDU mode: ``"> "`` prompt
without a line end, PDU ended by Ctrl-Z, ``+CMGS: <mr>``) and §3.4.1 (``+CDS`` is two lines).

This layer replaces python-gsmmodem-new's ``SerialComms`` (and the reply handling of its
``GsmModem.write``), which cannot be fixed by subclassing:

* it reads one byte per call and treats a notification as complete whenever the input buffer
  is momentarily empty, so a ``+CDS`` header and its PDU split across reads are two
  notifications and the report is lost; here a ``+CDS:`` header always claims the next line;
* every line received while a command waits is appended to that command's reply, so an
  unsolicited ``+CDSI``/``+CMTI``/``+CREG`` between ``> `` and ``+CMGS`` is swallowed; here a
  ``+XXX:`` line belongs to the command only if XXX is the command's own name, anything else is
  routed to ``on_unsolicited``;
* ``dsrdtr`` and ``rtscts`` are hard-coded on; here they come from the config (off by default).

The listener for a reply is registered before the command is written. Unsolicited lines are
handed to ``on_unsolicited`` on the reader thread: the callback must not block or send commands.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from drivers.gsm.config import GsmModemConfig
from drivers.gsm.errors import (
    GsmCommandError,
    GsmError,
    GsmPortError,
    GsmProtocolError,
    GsmTimeoutError,
    cms_error,
)

CTRL_Z = b"\x1a"
ESC = b"\x1b"
_FINAL = re.compile(r"^(OK|ERROR|NO CARRIER|COMMAND NOT SUPPORT|\+CM[ES] ERROR:.*)$")
_CMS = re.compile(r"^\+CMS ERROR:\s*(\d+)$")
_PREFIX = re.compile(r"^([+^][A-Z0-9]+):")
_COMMAND_NAME = re.compile(r"^AT([+^][A-Z0-9]+)", re.IGNORECASE)
_BARE_UNSOLICITED = frozenset({"RING", "BUSY", "NO ANSWER", "RDY"})
_READ_POLL = 0.05


@dataclass(frozen=True, slots=True)
class UnsolicitedResult:
    """A line the modem sent on its own; ``pdu`` holds the second line of a ``+CDS``."""

    line: str
    pdu: str | None = None


@dataclass(slots=True)
class _PendingCommand:
    command: str
    name: str | None
    awaiting_prompt: bool = False
    lines: list[str] = field(default_factory=list)
    final: str | None = None
    lost: GsmPortError | None = None
    prompt: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


def command_name(command: str) -> str | None:
    """``+CMGS`` for ``AT+CMGS=12``: the prefix the command's own information lines carry."""
    match = _COMMAND_NAME.match(command)
    return match.group(1).upper() if match else None


class AtSession:
    """A serial connection to one modem with one command in flight at a time."""

    def __init__(
        self,
        config: GsmModemConfig,
        on_unsolicited: Callable[[UnsolicitedResult], None],
        on_lost: Callable[[GsmPortError], None],
    ) -> None:
        self._config = config
        self._on_unsolicited = on_unsolicited
        self._on_lost = on_lost
        self._serial: serial.SerialBase | None = None
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._command_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: _PendingCommand | None = None
        self._buffer = bytearray()
        self._cds_header: str | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None and not self._closing.is_set()

    @property
    def port_settings(self) -> dict[str, object]:
        """pyserial's settings of the open port (baud rate, flow control), for diagnostics."""
        return dict(self._serial.get_settings()) if self._serial is not None else {}

    def open(self) -> None:
        """Open the port and start the reader thread; raises GsmPortError."""
        try:
            self._serial = serial.serial_for_url(
                self._config.port,
                baudrate=self._config.baudrate,
                rtscts=self._config.rtscts,
                dsrdtr=self._config.dsrdtr,
                timeout=_READ_POLL,
                write_timeout=self._config.command_timeout,
                # A second process on the same modem would steal its replies: lock the device.
                exclusive=True if "://" not in self._config.port else None,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise GsmPortError(f"cannot open {self._config.port}: {exc}") from exc
        self._closing.clear()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"gsm-reader-{self._config.name}", daemon=True
        )
        self._reader.start()

    def close(self) -> None:
        """Stop the reader thread and close the port; safe to call twice."""
        self._closing.set()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join()
        self._reader = None
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()  # a vanished port has nothing left to close
            self._serial = None
        self._fail_pending(GsmPortError(f"{self._config.port} closed"))

    def command(self, command: str, timeout: float | None = None) -> list[str]:
        """Send one command line; return its information lines once ``OK`` arrives.

        Raises GsmCommandError (ERROR, +CME ERROR), a +CMS error from the tree, GsmTimeoutError
        (no answer), GsmProtocolError (an answer without a final result code) or GsmPortError.
        """
        with self._command_lock:
            pending = self._begin(command)
            self._write(command.encode("ascii") + b"\r")
            self._wait(pending, pending.done, timeout or self._config.command_timeout)
            return self._finish(pending)

    def submit_pdu(self, tpdu_length: int, pdu_hex: str) -> int:
        """``AT+CMGS=<length>``, the prompt, the PDU and Ctrl-Z; return TP-MR from ``+CMGS``."""
        command = f"AT+CMGS={tpdu_length}"
        with self._command_lock:
            pending = self._begin(command, awaiting_prompt=True)
            self._write(command.encode("ascii") + b"\r")
            self._wait(pending, pending.prompt, self._config.prompt_timeout, abort=ESC)
            if pending.final is not None or pending.lost is not None:
                return self._reference(self._finish(pending))
            self._write(pdu_hex.encode("ascii") + CTRL_Z)
            self._wait(pending, pending.done, self._config.send_timeout)
            return self._reference(self._finish(pending))

    def _reference(self, lines: list[str]) -> int:
        for line in lines:
            if line.startswith("+CMGS:"):
                value = line[6:].split(",")[0].strip()
                if value.isdigit():
                    return int(value) & 0xFF
        raise GsmProtocolError(f"no valid +CMGS reference in reply {lines!r}")

    def _begin(self, command: str, awaiting_prompt: bool = False) -> _PendingCommand:
        if not self.is_open:
            raise GsmPortError(f"{self._config.port} is not open")
        pending = _PendingCommand(command, command_name(command), awaiting_prompt)
        with self._state_lock:
            self._pending = pending
        return pending

    def _wait(
        self, pending: _PendingCommand, event: threading.Event, timeout: float, abort: bytes = b""
    ) -> None:
        if event.wait(timeout) or pending.done.is_set():
            return
        with self._state_lock:
            self._pending = None
        if abort:
            self._write(abort)
        if pending.lines:
            raise GsmProtocolError(
                f"{pending.command!r}: no final result code within {timeout:g} s;"
                f" the modem sent {pending.lines[:3]!r}"
            )
        raise GsmTimeoutError(f"{pending.command!r}: no answer within {timeout:g} s")

    def _finish(self, pending: _PendingCommand) -> list[str]:
        with self._state_lock:
            if self._pending is pending:
                self._pending = None
        if pending.lost is not None:
            raise pending.lost
        final = pending.final or ""
        if final == "OK":
            return pending.lines
        cms = _CMS.match(final)
        if cms:
            raise cms_error(int(cms.group(1)), pending.command)
        raise GsmCommandError(pending.command, final)

    def _write(self, data: bytes) -> None:
        port = self._serial
        if port is None:
            raise GsmPortError(f"{self._config.port} is not open")
        try:
            port.write(data)
        except (serial.SerialException, OSError, TypeError) as exc:
            # pyserial raises TypeError when the port is closed under a write in another
            # thread (its descriptor is gone), as the read loop sees on a read.
            raise GsmPortError(f"writing to {self._config.port} failed: {exc}") from exc

    def _read_loop(self) -> None:
        port = self._serial
        while port is not None and not self._closing.is_set():
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                if self._closing.is_set():
                    return
                lost = GsmPortError(f"{self._config.port} vanished: {exc}")
                self._closing.set()
                self._fail_pending(lost)
                self._on_lost(lost)
                return
            if chunk:
                self._feed(chunk)

    def _fail_pending(self, error: GsmPortError) -> None:
        with self._state_lock:
            pending, self._pending = self._pending, None
        if pending is not None and not pending.done.is_set():
            pending.lost = error
            pending.done.set()
            pending.prompt.set()

    def _feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while True:
            if self._take_prompt():
                continue
            end = next((i for i, byte in enumerate(self._buffer) if byte in b"\r\n"), -1)
            if end < 0:
                return
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            line = raw.decode("ascii", errors="replace").strip()
            if line:
                self._route(line)

    def _take_prompt(self) -> bool:
        with self._state_lock:
            pending = self._pending
        if pending is None or not pending.awaiting_prompt or pending.prompt.is_set():
            return False
        stripped = bytes(self._buffer).lstrip(b"\r\n")
        if not stripped.startswith(b"> "):
            return False
        del self._buffer[: len(self._buffer) - len(stripped) + 2]
        pending.prompt.set()
        return True

    def _route(self, line: str) -> None:
        if self._cds_header is not None:
            header, self._cds_header = self._cds_header, None
            self._deliver(UnsolicitedResult(header, pdu=line))
            return
        if line.startswith("+CDS:"):
            self._cds_header = line
            return
        with self._state_lock:
            pending = self._pending
        if pending is None or line == pending.command:
            if pending is None:
                self._deliver(UnsolicitedResult(line))
            return
        prefix = _PREFIX.match(line)
        if _FINAL.match(line):
            pending.final = line
            pending.done.set()
            pending.prompt.set()
        elif (prefix and prefix.group(1) != pending.name) or line in _BARE_UNSOLICITED:
            self._deliver(UnsolicitedResult(line))
        else:
            pending.lines.append(line)

    def _deliver(self, result: UnsolicitedResult) -> None:
        try:
            self._on_unsolicited(result)
        except GsmError:
            return  # a bad unsolicited line is the handler's to report; the session goes on
