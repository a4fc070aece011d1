"""The AT command set of the simulated modem: one handler per command, answers per the specs.

Answers follow 3GPP TS 27.007 (``ATZ``, ``ATE``, ``+CMEE``, ``+CFUN``, ``+CPIN``, ``+CGMI``,
``+CGMM``, ``+CGMR``, ``+CGSN``, ``+CLAC``, ``+CSCS``, ``+CSQ`` §8.5, ``+CREG`` §7.2, ``+COPS``
§7.3, ``+CLIP``, ``+CRC``, ``+CVHU``, ``+CGATT`` §10.1.9, ``+CGREG`` §10.1.20) and TS 27.005
(``+CMGF`` §3.2.3, ``+CSCA`` §3.3.1, ``+CSMP`` §3.3.2, ``+CPMS`` §3.2.2, ``+CNMI`` §3.4.1,
``+CNMA`` §3.4.4, ``+CMGR`` §3.4.3 PDU mode, ``+CMGD`` §3.5.4, ``+CMGS`` §3.5.1 PDU mode).
Unknown commands answer ``ERROR``.

Set commands with several values keep the current value of each one left out (V.250 §5.3.1:
``AT+CNMI=2,,,1`` changes only ``<mode>`` and ``<ds>``; a later ``AT+CNMI=2,1`` keeps that
``<ds>``); test commands (``=?``) list the supported ranges; ``+CREG``/``+CGREG`` ``<n>=2``
adds the location to the read answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.gsm.simulator import ModemSimulatorConfig

_SUPPORTED = [
    "+CGMI",
    "+CGMM",
    "+CGMR",
    "+CGSN",
    "+CIMI",
    "+CLAC",
    "+CMEE",
    "+CFUN",
    "+CPIN",
    "+CSQ",
    "+CREG",
    "+COPS",
    "+CSCS",
    "+CMGF",
    "+CSCA",
    "+CSMP",
    "+CPMS",
    "+CNMI",
    "+CMGS",
    "+CMGR",
    "+CMGD",
    "+CMGL",
    "+CLIP",
    "+CRC",
    "+CVHU",
    "+CGREG",
    "+CNMA",
    "+CGATT",
]
CNMI_RANGES = ((0, 1, 2), (0, 1, 2, 3), (0, 2), (0, 1, 2), (0, 1))
"""The ``<mode>,<mt>,<bm>,<ds>,<bfr>`` values the simulator accepts (27.005 §3.4.1)."""
_OPERATOR = ("CHINA MOBILE", "CMCC", "46000")  # long, short and numeric names (27.007 §7.3)
_LOCATION = '"00A1","0000B2C3"'  # <lac>,<ci> shown with <n>=2 (27.007 §7.2)
_NAME = re.compile(r"^[+^][A-Z0-9]+")
_INDEX = re.compile(r"^(\d+)(?:,\d)?$")


class SimulatorCommandsMixin:
    """Command handlers of ``AtModemSimulator``; the device state lives in the simulator."""

    config: ModemSimulatorConfig
    echo: bool
    cnmi: list[int]
    creg_mode: int
    cgreg_mode: int
    cops_format: int
    rssi: int
    registration: int
    pin_unlocked: bool
    stored_reports: dict[int, tuple[str, int]]

    def reply(self, lines: list[str], final: str) -> None:
        raise NotImplementedError

    def begin_submit(self, length: int) -> None:
        raise NotImplementedError

    def run_command(self, line: str) -> None:
        """Answer one command line (without its terminating CR)."""
        upper = line.upper()
        if not upper.startswith("AT"):
            self.reply([], "ERROR")
            return
        body = upper[2:]
        if body in ("", "Z", "&F", "E0", "E1"):
            if body in ("Z", "&F"):
                self.cnmi = [0] * len(CNMI_RANGES)
                self.creg_mode = self.cgreg_mode = self.cops_format = 0
            if body != "":
                self.echo = body != "E0"
            self.reply([], "OK")
            return
        named = _NAME.match(body)
        name = named.group(0) if named else body
        argument = body[len(name) :]
        handler = self._handlers().get(name)
        if handler is None:
            self.reply([], "ERROR")
            return
        handler(argument, line[2 + len(name) :])

    def _handlers(self) -> dict[str, Callable[[str, str], None]]:
        return {
            "+CGMI": lambda a, r: self._info(a, [self.config.manufacturer]),
            "+CGMM": lambda a, r: self._info(a, [self.config.model]),
            "+CGMR": lambda a, r: self._info(a, ["Revision 1.0"]),
            "+CGSN": lambda a, r: self._info(a, [self.config.imei]),
            "+CIMI": lambda a, r: self._info(a, ["460001234567890"]),
            "+CLAC": lambda a, r: self._info(a, _SUPPORTED),
            "+CMEE": self._ok,
            "+CFUN": lambda a, r: self._query(a, "+CFUN: 1"),
            "+CPIN": self._cpin,
            "+CSQ": lambda a, r: self._info(a, [f"+CSQ: {self.rssi},99"]),
            "+CREG": self._creg,
            "+CGREG": self._cgreg,
            "+CNMA": self._ok,
            "+CGATT": lambda a, r: self._query(a, "+CGATT: 1", "+CGATT: (0,1)"),
            "+COPS": self._cops,
            "+CSCS": lambda a, r: self._query(a, '+CSCS: "GSM"', '+CSCS: ("GSM","UCS2")'),
            "+CMGF": self._cmgf,
            "+CSCA": lambda a, r: self._query(a, f'+CSCA: "{self.config.smsc}",145'),
            "+CSMP": self._ok,
            "+CPMS": self._cpms,
            "+CNMI": self._cnmi,
            "+CMGS": self._cmgs,
            "+CMGR": self._cmgr,
            "+CMGD": self._cmgd,
            "+CMGL": self._cmgl,
            "+CLIP": self._ok,
            "+CRC": self._ok,
            "+CVHU": self._ok,
        }

    def _ok(self, argument: str, raw: str) -> None:
        self.reply([], "OK")

    def _info(self, argument: str, lines: list[str]) -> None:
        self.reply(lines if argument == "" else [], "OK" if argument in ("", "=?") else "ERROR")

    def _query(self, argument: str, answer: str, test: str | None = None) -> None:
        if argument == "?":
            self.reply([answer], "OK")
        elif argument == "=?":
            self.reply([test] if test else [], "OK")
        else:
            self.reply([], "OK")

    def _cpin(self, argument: str, raw: str) -> None:
        if argument == "?":
            self.reply([f"+CPIN: {'READY' if self.pin_unlocked else 'SIM PIN'}"], "OK")
        elif argument.startswith("=") and raw[1:].strip('"') == self.config.pin:
            self.pin_unlocked = True
            self.reply([], "OK")
        else:
            self.reply([], "+CME ERROR: 16")

    def _cmgf(self, argument: str, raw: str) -> None:
        if argument == "?":
            self.reply(["+CMGF: 0"], "OK")
        elif argument == "=?":
            self.reply(["+CMGF: (0)"], "OK")
        else:
            self.reply([], "OK" if argument == "=0" else "ERROR")

    def _cpms(self, argument: str, raw: str) -> None:
        used = len(self.stored_reports)
        if argument == "=?":
            self.reply(['+CPMS: ("SM","SR"),("SM"),("SM")'], "OK")
        elif argument == "?":
            self.reply([f'+CPMS: "SR",{used},50,"SM",0,50,"SM",0,50'], "OK")
        else:
            self.reply([f"+CPMS: {used},50,0,50,0,50"], "OK")

    def _cnmi(self, argument: str, raw: str) -> None:
        if argument == "?":
            self.reply([f"+CNMI: {','.join(map(str, self.cnmi))}"], "OK")
        elif argument == "=?":
            self.reply([f"+CNMI: {','.join(map(_range, CNMI_RANGES))}"], "OK")
        elif argument == "":
            self.reply([], "OK")
        else:
            values = _set_values(argument, self.cnmi, CNMI_RANGES)
            if values is None:
                self.reply([], "+CMS ERROR: 303")
                return
            self.cnmi = values
            self.reply([], "OK")

    def _cops(self, argument: str, raw: str) -> None:
        """Automatic selection only; ``AT+COPS=3,<format>`` picks the name format (§7.3)."""
        if argument == "?":
            name = _OPERATOR[self.cops_format]
            self.reply([f'+COPS: 0,{self.cops_format},"{name}"'], "OK")
        elif argument == "=?":
            self.reply(
                [f'+COPS: (2,"{_OPERATOR[0]}","{_OPERATOR[1]}","{_OPERATOR[2]}"),,(0-4),(0-2)'],
                "OK",
            )
        else:
            values = _set_values(argument, [0, self.cops_format], ((0, 3), (0, 1, 2)))
            if values is None:
                self.reply([], "+CME ERROR: 50")
                return
            self.cops_format = values[1]
            self.reply([], "OK")

    def _creg(self, argument: str, raw: str) -> None:
        self.creg_mode = self._registration("+CREG", argument, self.creg_mode)

    def _cgreg(self, argument: str, raw: str) -> None:
        self.cgreg_mode = self._registration("+CGREG", argument, self.cgreg_mode)

    def _registration(self, name: str, argument: str, mode: int) -> int:
        """``<n>`` of +CREG or +CGREG (0-2) and the answers of both (27.007 §7.2, §10.1.20)."""
        if argument == "?":
            location = f",{_LOCATION}" if mode == 2 else ""
            self.reply([f"{name}: {mode},{self.registration}{location}"], "OK")
        elif argument == "=?":
            self.reply([f"{name}: (0-2)"], "OK")
        elif argument == "":
            self.reply([], "OK")
        else:
            values = _set_values(argument, [mode], ((0, 1, 2),))
            if values is None:
                self.reply([], "+CME ERROR: 50")
                return mode
            self.reply([], "OK")
            return values[0]
        return mode

    def _cmgs(self, argument: str, raw: str) -> None:
        length = argument[1:]
        if not argument.startswith("=") or not length.isdigit() or not 7 <= int(length) <= 164:
            self.reply([], "+CMS ERROR: 304")
            return
        self.begin_submit(int(length))

    def _cmgr(self, argument: str, raw: str) -> None:
        match = _INDEX.match(argument[1:])
        stored = self.stored_reports.get(int(match.group(1))) if match else None
        if stored is None:
            self.reply([], "+CMS ERROR: 321")
            return
        pdu_hex, length = stored
        self.reply([f"+CMGR: 0,,{length}", pdu_hex], "OK")

    def _cmgl(self, argument: str, raw: str) -> None:
        lines: list[str] = []
        for index, (pdu_hex, length) in sorted(self.stored_reports.items()):
            lines += [f"+CMGL: {index},0,,{length}", pdu_hex]
        self.reply(lines, "OK")

    def _cmgd(self, argument: str, raw: str) -> None:
        match = _INDEX.match(argument[1:])
        if not match:
            self.reply([], "+CMS ERROR: 321")
            return
        self.stored_reports.pop(int(match.group(1)), None)
        self.reply([], "OK")


def _range(values: tuple[int, ...]) -> str:
    """``(0-2)`` for consecutive values, ``(0,2)`` otherwise (27.007 §4.1 test answers)."""
    consecutive = list(values) == list(range(values[0], values[-1] + 1))
    if consecutive and len(values) > 2:
        return f"({values[0]}-{values[-1]})"
    return f"({','.join(map(str, values))})"


def _set_values(
    argument: str, current: list[int], ranges: tuple[tuple[int, ...], ...]
) -> list[int] | None:
    """The values of ``=a,,b``: each one left out keeps its current value; None if a value is
    not a number, out of its range, or there are too many."""
    if not argument.startswith("="):
        return None
    given = argument[1:].split(",")
    if len(given) > len(ranges):
        return None
    values = list(current)
    for position, text in enumerate(given):
        text = text.strip()
        if text == "":
            continue
        if not text.isdigit() or int(text) not in ranges[position]:
            return None
        values[position] = int(text)
    return values
