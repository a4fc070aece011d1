"""One GSM modem in PDU mode: connect sequence, SMS-SUBMIT, status reports, health.

Blocking code, meant for worker threads. Follows 3GPP TS 27.005 §3.2-3.5 (``+CMGF``, ``+CNMI``,
``+CPMS``, ``+CMGR``, ``+CMGD``, ``+CMGS``) and TS 27.007 §7.2, §8.5 (``+CREG``, ``+CSQ``).

Replaces python-gsmmodem-new 0.13.0's ``GsmModem.sendSms`` and its status-report handling,
guarding each known fault:

* status reports are always requested in PDU mode (TP-SRR hard-wired in ``encodeSmsSubmitPdu``;
  ``requestDelivery`` only sets text-mode ``+CSMP``): here TP-SRR and ``+CNMI`` ``<ds>`` follow
  ``GsmModemConfig.status_reports``;
* one shared ``threading.Event`` for all reports, so concurrent sends race: here each report is
  handed to ``on_report`` with its TP-MR and the pool matches it to its segment;
* only the last part of a multipart message is tracked (one ``SentSms`` per call, keyed by the
  last ``+CMGS`` reference): here every segment's TP-MR is returned;
* temporary TP-ST values (0x20-0x3F) count as failures (``status != DELIVERED``): here
  ``drivers.gsm.pdu.classify_status`` keeps them pending;
* non-BMP characters raise ValueError in its UCS-2 encoder: here ``drivers.gsm.codec`` encodes
  surrogate pairs and never splits one;
* its ``+CDS`` pattern has a stray quote and never matches; here the session joins the header
  and its PDU line.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from drivers.gsm.config import GsmModemConfig, ReportMode
from drivers.gsm.errors import (
    GsmCommandError,
    GsmConfigError,
    GsmError,
    GsmPortError,
    GsmProtocolError,
    GsmRejectedError,
    GsmTimeoutError,
)
from drivers.gsm.pdu import StatusReportPdu, SubmitPdu, decode_status_report
from drivers.gsm.session import AtSession, UnsolicitedResult

log = logging.getLogger(__name__)

_CSQ = re.compile(r"^\+CSQ:\s*(\d+)\s*,\s*(\d+)")
_CREG = re.compile(r"^\+CREG:\s*(?:\d+\s*,\s*)?(\d+)")
_CDSI = re.compile(r'^\+CDSI:\s*"([A-Z]{2})"\s*,\s*(\d+)$')
_CMGL = re.compile(r"^\+CMGL:\s*(\d+)\s*,")
_CMGR = re.compile(r"^\+CMGR:\s*\d*\s*,[^,]*,\s*(\d+)$")
_REGISTERED = frozenset({1, 5})  # home network, roaming
_SYNC_ATTEMPTS = 3

ReportCallback = Callable[[str, StatusReportPdu], None]
LostCallback = Callable[[str, GsmPortError], None]


@dataclass(frozen=True, slots=True)
class ModemSignal:
    """The radio side of a modem's health: ``AT+CSQ`` RSSI (0-31, None if unknown) and
    ``AT+CREG?`` registration state (1 home, 5 roaming are registered)."""

    rssi: int | None
    registration: int

    @property
    def registered(self) -> bool:
        return self.registration in _REGISTERED


class GsmModemClient:
    """Connect to one modem, send PDUs, and pass its status reports to ``on_report``.

    ``on_report(name, report)`` and ``on_lost(name, error)`` are called from driver threads.
    A report the modem stored is deleted from its memory only after ``on_report`` returned:
    one it raised for stays stored and is read again at the next connect.
    """

    def __init__(
        self, config: GsmModemConfig, on_report: ReportCallback, on_lost: LostCallback
    ) -> None:
        self.config = config
        self._on_report = on_report
        self._on_lost = on_lost
        self._session: AtSession | None = None
        self._memory: str | None = None
        self._unsolicited: queue.SimpleQueue[UnsolicitedResult | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.garbage_lines = 0

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.is_open

    @property
    def port_settings(self) -> dict[str, object]:
        """pyserial's settings of the open port; empty when not connected."""
        return self._session.port_settings if self._session is not None else {}

    def connect(self) -> ModemSignal:
        """Open the port and set the modem up for PDU-mode sending; return its signal.

        Status reports the modem stored while nobody listened are handed to ``on_report``
        before this returns, so a caller knows them before it decides anything else.

        Raises GsmPortError, GsmTimeoutError, GsmProtocolError (garbage answers) or
        GsmConfigError (SIM PIN needed but missing or wrong). Leaves nothing open on error.
        """
        self.close()
        session = AtSession(self.config, self._route_unsolicited, self._lost)
        session.open()
        self._session = session
        self._memory = None
        self._unsolicited = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work_unsolicited, name=f"gsm-urc-{self.config.name}", daemon=True
        )
        self._worker.start()
        try:
            self._initialise(session)
            return self.signal()
        except GsmError:
            self.close()
            raise

    def _initialise(self, session: AtSession) -> None:
        self._sync(session)
        session.command("ATE0")
        session.command("AT+CMEE=1")
        self._unlock(session)
        session.command("AT+CMGF=0")
        if self.config.smsc is not None:
            session.command(f'AT+CSCA="{self.config.smsc}",145')
        ds = self.config.report_mode.cnmi_ds if self.config.status_reports else 0
        session.command(f"AT+CNMI=2,1,0,{ds},0")
        if self.config.status_reports and self.config.report_mode is ReportMode.STORED:
            self._read_all_stored_reports()  # kept while nobody listened, handed over first

    def _sync(self, session: AtSession) -> None:
        """Send ``AT`` until the modem answers ``OK``: it may still be booting or mid-PDU."""
        last: GsmError | None = None
        for _ in range(_SYNC_ATTEMPTS):
            try:
                session.command("AT", timeout=min(1.0, self.config.command_timeout))
                return
            except (GsmTimeoutError, GsmProtocolError, GsmCommandError) as exc:
                last = exc
        if isinstance(last, GsmTimeoutError):
            raise GsmTimeoutError(f"{self.config.name}: modem never answers AT") from last
        raise GsmProtocolError(f"{self.config.name}: modem answers AT with garbage") from last

    def _unlock(self, session: AtSession) -> None:
        lines = session.command("AT+CPIN?")
        state = next((line[6:].strip() for line in lines if line.startswith("+CPIN:")), "")
        if state == "READY":
            return
        if state != "SIM PIN":
            raise GsmConfigError(f"{self.config.name}: SIM not usable (+CPIN: {state or '?'})")
        if self.config.pin is None:
            raise GsmConfigError(f"{self.config.name}: the SIM needs a PIN and none is set")
        try:
            session.command(f'AT+CPIN="{self.config.pin}"')
        except GsmCommandError as exc:
            raise GsmConfigError(f"{self.config.name}: the SIM refused the PIN") from exc

    def close(self) -> None:
        """Close the port and stop the worker threads; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        worker, self._worker = self._worker, None
        self._unsolicited.put(None)
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _require(self) -> AtSession:
        session = self._session
        if session is None or not session.is_open:
            raise GsmPortError(f"{self.config.name}: not connected")
        return session

    def send_pdu(self, pdu: SubmitPdu) -> int:
        """Submit one segment; return the TP-MR the modem assigned (8 bits, wraps)."""
        return self._require().submit_pdu(pdu.tpdu_length, pdu.hex)

    def signal(self) -> ModemSignal:
        """Query ``AT+CSQ`` and ``AT+CREG?``; raises GsmProtocolError on unparseable answers."""
        session = self._require()
        csq = _first_match(_CSQ, session.command("AT+CSQ"), "AT+CSQ")
        creg = _first_match(_CREG, session.command("AT+CREG?"), "AT+CREG?")
        rssi = int(csq.group(1))
        return ModemSignal(rssi=None if rssi == 99 else rssi, registration=int(creg.group(1)))

    def _lost(self, error: GsmPortError) -> None:
        self._on_lost(self.config.name, error)

    def _route_unsolicited(self, result: UnsolicitedResult) -> None:
        self._unsolicited.put(result)

    def _work_unsolicited(self) -> None:
        while (result := self._unsolicited.get()) is not None:
            try:
                self._handle_unsolicited(result)
            except GsmPortError:
                return
            except GsmError as exc:
                self.garbage_lines += 1
                log.warning("%s: cannot handle %r: %s", self.config.name, result.line, exc)

    def _handle_unsolicited(self, result: UnsolicitedResult) -> None:
        if result.pdu is not None:
            report = decode_status_report(result.pdu)
            try:
                self._on_report(self.config.name, report)
            except Exception as exc:
                log.warning("%s: a status report was not taken: %s", self.config.name, exc)
            return
        stored = _CDSI.match(result.line)
        if stored:
            self._read_stored_report(stored.group(1), int(stored.group(2)))
            return
        log.debug("%s: unsolicited %r ignored", self.config.name, result.line)

    def _read_all_stored_reports(self) -> None:
        session = self._require()
        session.command('AT+CPMS="SR"')
        self._memory = "SR"
        for index, pdu_hex in _stored_pdus(session.command("AT+CMGL=4")):
            self._hand_over(session, index, decode_status_report(pdu_hex))

    def _read_stored_report(self, memory: str, index: int) -> None:
        session = self._require()
        if memory != self._memory:
            session.command(f'AT+CPMS="{memory}"')
            self._memory = memory
        try:
            lines = session.command(f"AT+CMGR={index}")
        except GsmRejectedError as exc:
            log.warning("%s: stored report %s/%d is gone: %s", self.config.name, memory, index, exc)
            return
        header = next((i for i, line in enumerate(lines) if _CMGR.match(line)), None)
        if header is None or header + 1 >= len(lines):
            raise GsmProtocolError(f"AT+CMGR={index}: unexpected reply {lines!r}")
        self._hand_over(session, index, decode_status_report(lines[header + 1]))

    def _hand_over(self, session: AtSession, index: int, report: StatusReportPdu) -> None:
        """Pass a stored report on, then delete it (a crash in between leaves it stored)."""
        try:
            self._on_report(self.config.name, report)
        except Exception as exc:
            log.warning(
                "%s: stored report %d kept for the next connect: %s", self.config.name, index, exc
            )
            return
        session.command(f"AT+CMGD={index}")


def _stored_pdus(lines: list[str]) -> list[tuple[int, str]]:
    """(index, PDU) pairs of an ``AT+CMGL`` reply in PDU mode (27.005 §3.4.2)."""
    found: list[tuple[int, str]] = []
    for position, line in enumerate(lines[:-1]):
        match = _CMGL.match(line)
        if match:
            found.append((int(match.group(1)), lines[position + 1]))
    return found


def _first_match(pattern: re.Pattern[str], lines: list[str], command: str) -> re.Match[str]:
    for line in lines:
        match = pattern.match(line)
        if match:
            return match
    raise GsmProtocolError(f"{command}: unexpected reply {lines!r}")
