"""An AT modem on a pseudo-terminal: what a driver opens is a real serial device path.

Speaks the PDU-mode subset of 3GPP TS 27.007 and TS 27.005 that SMS senders use (``ATZ``,
``ATE``, ``+CMEE``, ``+CPIN``, ``+CMGF``, ``+CNMI``, ``+CPMS``, ``+CMGS``, ``+CMGR``, ``+CMGD``,
``+CSQ``, ``+CREG``, ``+CGREG``, identification and the set-up commands python-gsmmodem-new and
gammu send), decodes each submitted PDU with the production codec, records it in a
``SimulatedNetwork`` and answers with status reports as ``+CDSI`` (stored, ``<ds>=2``), ``+CDS``
(direct, ``<ds>=1``) or kept in SR memory without an indication (``<ds>=0``).

Fault hooks (``ModemSimulatorFaults``, changeable while running): a delay per ``AT+CMGS``, an
unsolicited line between ``> `` and ``+CMGS``, queued ``+CMS ERROR`` codes, a stall, the port
closing mid-send, a ``+CDS`` header and its PDU split across writes, and garbage answers.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import threading
import tty
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from drivers.gsm.errors import GsmProtocolError
from drivers.gsm.pdu import StatusReportPdu, decode_submit, encode_status_report
from drivers.gsm.simulator_commands import SimulatorCommandsMixin
from drivers.gsm.simulator_network import NetworkRecord, SimulatedNetwork

CTRL_Z = 0x1A
ESC = 0x1B
_READ_SIZE = 4096


@dataclass(slots=True)
class ModemSimulatorFaults:
    """Faults to inject; each field may be changed while the simulator runs."""

    cmgs_delay: float = 0.0
    unsolicited_after_prompt: str | None = None
    cms_errors: list[int] = field(default_factory=list)
    stall: bool = False
    close_on_send: bool = False
    split_cds: bool = False
    garbage: bool = False


@dataclass(frozen=True, slots=True)
class ModemSimulatorConfig:
    """Identity and initial radio state of a simulated modem (``rssi`` and ``registration``
    are attributes of the simulator too, changeable while it runs).

    ``link_path``, if set, is a symlink pointed at the pty: a stable device path that survives
    a restart of the simulator, as a udev name survives replugging a USB modem.
    """

    name: str = "sim0"
    link_path: str | None = None
    manufacturer: str = "Broadcaster"
    model: str = "AT-modem simulator"
    imei: str = "356938035643809"
    smsc: str = "+8613800471500"
    rssi: int = 21
    registration: int = 1
    pin: str | None = None
    first_reference: int = 0


class AtModemSimulator(SimulatorCommandsMixin):
    """A simulated modem serving one pty; ``device_path`` is what the driver opens."""

    def __init__(
        self,
        config: ModemSimulatorConfig | None = None,
        network: SimulatedNetwork | None = None,
        faults: ModemSimulatorFaults | None = None,
    ) -> None:
        self.config = config or ModemSimulatorConfig()
        self._owns_network = network is None
        self.network = network or SimulatedNetwork()
        self.faults = faults or ModemSimulatorFaults()
        self.echo = True
        self.cnmi = [0, 0, 0, 0, 0]  # AT+CNMI <mode>,<mt>,<bm>,<ds>,<bfr>
        self.creg_mode = 0
        self.cgreg_mode = 0
        self.cops_format = 0
        self.pin_unlocked = self.config.pin is None
        self.rssi = self.config.rssi
        self.registration = self.config.registration
        self.next_reference = self.config.first_reference & 0xFF
        self.stored_reports: dict[int, tuple[str, int]] = {}
        self.reports_sent: list[StatusReportPdu] = []
        self.commands_seen: list[str] = []
        self._next_index = 1
        self._master = -1
        self._slave = -1
        self._pts_path = ""
        self._wake_read, self._wake_write = -1, -1
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._input = bytearray()
        self._pdu_length: int | None = None

    @property
    def device_path(self) -> str:
        return self.config.link_path or self._pts_path

    @property
    def cnmi_ds(self) -> int:
        """How status reports reach the driver: 0 not at all, 1 ``+CDS``, 2 ``+CDSI``."""
        return self.cnmi[3]

    @property
    def alive(self) -> bool:
        return self._master >= 0

    def start(self) -> None:
        """Open the pty, point ``link_path`` at it and start serving."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._pts_path = os.ttyname(self._slave)
        if self.config.link_path:
            temporary = f"{self.config.link_path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            os.symlink(self._pts_path, temporary)
            os.replace(temporary, self.config.link_path)
        self._wake_read, self._wake_write = os.pipe()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"gsm-sim-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the pty, and the network if this simulator made it."""
        self._stopping.set()
        if self._wake_write >= 0:
            os.write(self._wake_write, b"x")
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._close_pty()
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1
        if self._owns_network:
            self.network.stop()

    def kill(self) -> None:
        """The port vanishes now, as when a USB modem is unplugged (its link goes too)."""
        self._close_pty()
        if self._wake_write >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_write, b"x")

    def __enter__(self) -> AtModemSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _close_pty(self) -> None:
        with self._write_lock:
            master, slave = self._master, self._slave
            self._master = self._slave = -1
        link = self.config.link_path
        # The pty number is reused by the next pty opened: a dangling link must not lead there.
        if master >= 0 and link and os.path.islink(link) and os.readlink(link) == self._pts_path:
            os.unlink(link)
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)

    def send_line(self, line: str) -> None:
        """Write one unsolicited line to the driver."""
        self.write(f"\r\n{line}\r\n".encode("ascii"))

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._master >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._master, data)

    def _serve(self) -> None:
        while not self._stopping.is_set() and self._master >= 0:
            master = self._master
            readable, _, _ = select.select([master, self._wake_read], [], [])
            if self._wake_read in readable:
                os.read(self._wake_read, _READ_SIZE)
                continue
            if master != self._master:
                continue
            try:
                data = os.read(master, _READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._consume(data)

    def _consume(self, data: bytes) -> None:
        if self.faults.stall:
            return
        self._input += data
        while self._input and self.alive:
            if self._pdu_length is not None:
                if not self._take_pdu():
                    return
                continue
            end = next((i for i, byte in enumerate(self._input) if byte in b"\r\n"), -1)
            if end < 0:
                return
            line = bytes(self._input[:end]).decode("ascii", errors="replace").strip()
            del self._input[: end + 1]
            if line:
                self._answer(line)

    def _answer(self, line: str) -> None:
        if self.echo:
            self.write(line.encode("ascii", errors="replace") + b"\r")
        self.commands_seen.append(line)
        if self.faults.garbage:
            self.write(b"\r\n\xfe\xff#$%^\x01garbage\r\n")
            return
        self.run_command(line)

    def _take_pdu(self) -> bool:
        end = next((i for i, byte in enumerate(self._input) if byte in (CTRL_Z, ESC)), -1)
        if end < 0:
            return False
        pdu_hex = bytes(self._input[:end]).decode("ascii", errors="replace").strip()
        cancelled = self._input[end] == ESC
        del self._input[: end + 1]
        length, self._pdu_length = self._pdu_length, None
        if cancelled:
            self.reply([], "OK")
        else:
            self._submit(pdu_hex, length or 0)
        return True

    def begin_submit(self, length: int) -> None:
        """``AT+CMGS=<length>`` arrived: send the prompt and collect the PDU."""
        self._pdu_length = length
        self.write(b"\r\n> ")

    def _submit(self, pdu_hex: str, length: int) -> None:
        try:
            decoded = decode_submit(pdu_hex)
        except GsmProtocolError:
            self.reply([], "+CMS ERROR: 304")
            return
        if decoded.tpdu_length != length:
            self.reply([], "+CMS ERROR: 304")
            return
        if self.faults.close_on_send:
            self.kill()
            return
        if self.faults.unsolicited_after_prompt:
            self.send_line(self.faults.unsolicited_after_prompt)
        if self.faults.cmgs_delay and self._stopping.wait(self.faults.cmgs_delay):
            return
        if self.faults.cms_errors:
            self.reply([], f"+CMS ERROR: {self.faults.cms_errors.pop(0)}")
            return
        with self._state_lock:
            reference = self.next_reference
            self.next_reference = (reference + 1) & 0xFF
        record = NetworkRecord(
            modem=self.config.name,
            message_reference=reference,
            number=decoded.number,
            text=decoded.text,
            encoding=decoded.encoding,
            sequence=decoded.sequence,
            total=decoded.total,
            concat_reference=decoded.concat_reference,
            status_report_requested=decoded.status_report_requested,
            pdu_hex=pdu_hex,
        )
        self.network.record(record)
        self.reply([f"+CMGS: {reference}"], "OK")
        if decoded.status_report_requested:
            self._schedule_reports(record)

    def _schedule_reports(self, record: NetworkRecord) -> None:
        """Reports due without delay go out right after ``OK``, before the next command."""
        network = self.network
        for position, status in enumerate(network.rule_for(record.number).statuses()):
            delay = network.report_delay + position * network.report_gap
            if delay:
                network.schedule(delay, functools.partial(self.emit_report, record, status))
            else:
                self.emit_report(record, status)

    def emit_report(self, record: NetworkRecord, status: int) -> None:
        """Send one status report for ``record`` the way ``AT+CNMI`` asked for; with
        ``<ds>=0`` it is kept in SR memory without an indication, as modems do."""
        now = datetime.now(UTC).astimezone()
        report = StatusReportPdu(record.message_reference, record.number, now, now, status)
        self.reports_sent.append(report)
        pdu_hex, length = encode_status_report(report)
        if self.cnmi_ds == 1:
            head = f"\r\n+CDS: {length}\r\n".encode("ascii")
            if self.faults.split_cds:
                self.write(head + pdu_hex[:10].encode("ascii"))
                self._stopping.wait(0.05)
                self.write(pdu_hex[10:].encode("ascii") + b"\r\n")
            else:
                self.write(head + pdu_hex.encode("ascii") + b"\r\n")
        elif self.cnmi_ds == 2:
            index = self.store_report(pdu_hex, length)
            self.send_line(f'+CDSI: "SR",{index}')
        else:
            self.store_report(pdu_hex, length)

    def store_report(self, pdu_hex: str, length: int) -> int:
        """Keep a status report in "SR" memory; return its index (for ``AT+CMGR``)."""
        with self._state_lock:
            index = self._next_index
            self._next_index += 1
            self.stored_reports[index] = (pdu_hex, length)
        return index

    def reply(self, lines: list[str], final: str) -> None:
        """Information lines then the final result code, each framed by CR LF (V1 format)."""
        body = "".join(f"\r\n{line}\r\n" for line in lines)
        self.write(f"{body}\r\n{final}\r\n".encode("ascii"))
