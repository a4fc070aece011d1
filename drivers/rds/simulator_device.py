"""The encoder side of the simulator: a model of one RDS encoder and its two dialects.

:class:`SimulatedEncoder` holds what listeners would see (PI, PS, RT, TA, TP, PTY), the EWS
payloads received and a history of every change, and lets tests await a condition on it.
:class:`UecpDeviceProtocol` and :class:`AsciiDeviceProtocol` turn received bytes into state
changes and answers (message requests, MEC 0x17, are answered with the current data;
none in unidirectional communication mode, SPB 490 MEC 0x2C),
using the production codecs (``uecp_frame``, ``uecp_elements``,
``charset``) on the device side: a frame with a bad CRC is answered with ACK code 1 exactly
as SPB 490 asks (message acknowledgement, MEC 0x18), a frame for another address is ignored.

:class:`RdsSimulatorFaults` are the fault hooks: lost answers, bytes damaged on the line
(a real bit flip, so the real CRC check fails), negative answers, silence and a delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.rds.charset import PS_LENGTH, RT_MAX_LENGTH, decode_rds_text
from drivers.rds.errors import RdsFrameError, RdsValueError
from drivers.rds.state import EncoderState
from drivers.rds.uecp_elements import (
    READABLE_CODES,
    AckElement,
    CommunicationMode,
    CommunicationModeElement,
    ElementCode,
    EwsElement,
    EwsPayload,
    RequestElement,
    UecpElement,
    decode_message,
    element_state,
    encode_message,
    state_elements,
)
from drivers.rds.uecp_frame import START, AckCode, UecpFrame, UecpFrameReader, encode_frame

DEFAULT_STATION = EncoderState(pi=0xC201, ps="BROADCST", rt="", ta=False, tp=True, pty=3)


@dataclass
class RdsSimulatorFaults:
    """Fault hooks; counters count down as they fire.

    ``lose_answers``: apply the next N commands but send no answer (a lost ACK).
    ``damage_frames``: flip one bit in each of the next N incoming frames (UECP only).
    ``reject``: refuse the next N commands without applying them, with ``reject_code``
    (UECP) or ``-`` (ASCII). ``silent``: ignore everything. ``answer_delay``: seconds
    before each answer.
    """

    lose_answers: int = 0
    damage_frames: int = 0
    reject: int = 0
    reject_code: AckCode = AckCode.MESSAGE_NOT_ACCEPTABLE
    silent: bool = False
    answer_delay: float = 0.0


@dataclass
class SimulatedEncoder:
    """What the simulated encoder puts on air, and everything it received."""

    state: EncoderState = DEFAULT_STATION
    site_address: int = 0
    encoder_address: int = 0
    communication_mode: CommunicationMode = CommunicationMode.SPONTANEOUS_RESPONSE
    faults: RdsSimulatorFaults = field(default_factory=RdsSimulatorFaults)
    history: list[EncoderState] = field(default_factory=list)
    ews_received: list[EwsPayload] = field(default_factory=list)
    sequences_received: list[int] = field(default_factory=list)
    negative_answers: list[int | str] = field(default_factory=list)
    on_change: Callable[[EncoderState], None] | None = None
    _waiters: list[tuple[Callable[[EncoderState], bool], asyncio.Future[EncoderState]]] = field(
        default_factory=list
    )

    def apply(self, update: EncoderState) -> None:
        """Put ``update`` on air and wake whoever waits for the new state."""
        self.state = self.state.merged(update)
        self.history.append(self.state)
        if self.on_change is not None:
            self.on_change(self.state)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(self.state):
                future.set_result(self.state)

    async def wait_for(
        self, predicate: Callable[[EncoderState], bool], within: float
    ) -> EncoderState:
        """The state once ``predicate`` holds; TimeoutError naming the state otherwise."""
        if predicate(self.state):
            return self.state
        future: asyncio.Future[EncoderState] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError as error:
            raise TimeoutError(
                f"encoder state did not match within {within} s: {self.state.describe()}"
            ) from error
        finally:
            self._waiters.remove(entry)

    def accepts(self, frame: UecpFrame) -> bool:
        """True for frames to this encoder or to all (address 0)."""
        return frame.site_address in (0, self.site_address) and frame.encoder_address in (
            0,
            self.encoder_address,
        )


class UecpDeviceProtocol:
    """One UECP connection on the encoder side: bytes in, answers out."""

    def __init__(self, encoder: SimulatedEncoder) -> None:
        self._encoder = encoder
        self._frames = UecpFrameReader()
        self._damage_next = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume bytes from the controller; return the answer frames to send."""
        faults = self._encoder.faults
        if faults.silent:
            return []
        received = bytearray()
        for byte in data:
            if byte == START and faults.damage_frames > 0:
                faults.damage_frames -= 1
                self._damage_next = True
            elif self._damage_next and byte < 0xFC:
                byte ^= 0x01
                self._damage_next = False
            received.append(byte)
        answers = []
        for item in self._frames.feed(bytes(received)):
            answer = self._handle(item)
            if answer is not None:
                answers.append(answer)
        return answers

    def _answer(
        self, sequence: int, code: AckCode, data: list[UecpElement] | None = None
    ) -> bytes | None:
        if self._encoder.communication_mode is CommunicationMode.UNIDIRECTIONAL:
            return None
        if code is not AckCode.OK:
            self._encoder.negative_answers.append(int(code))
        message = encode_message(data or [AckElement(code, sequence)])
        frame = UecpFrame(
            self._encoder.site_address, self._encoder.encoder_address, sequence, message
        )
        return encode_frame(frame)

    def _handle(self, item: UecpFrame | RdsFrameError) -> bytes | None:
        if isinstance(item, RdsFrameError):
            return self._answer(item.sequence, AckCode(item.ack_code))
        if not self._encoder.accepts(item):
            return None
        self._encoder.sequences_received.append(item.sequence)
        faults = self._encoder.faults
        if faults.reject > 0:
            faults.reject -= 1
            return self._answer(item.sequence, faults.reject_code)
        try:
            elements = decode_message(item.message)
        except RdsFrameError as error:
            return self._answer(item.sequence, AckCode(error.ack_code))
        requested = [e.element_code for e in elements if isinstance(e, RequestElement)]
        if any(code not in READABLE_CODES for code in requested):
            return self._answer(item.sequence, AckCode.MESSAGE_UNKNOWN)
        for element in elements:
            if isinstance(element, EwsElement):
                self._encoder.ews_received.append(element.payload)
            if isinstance(element, CommunicationModeElement):
                self._encoder.communication_mode = element.mode
            update = element_state(element)
            if update is not None:
                self._encoder.apply(update)
        if faults.lose_answers > 0:
            faults.lose_answers -= 1
            return None
        report = [element for code in requested for element in self._report(code)]
        return self._answer(item.sequence, AckCode.OK, report)

    def _report(self, code: int) -> list[UecpElement]:
        """The elements answering a request for ``code``, with the current state."""
        on_air = self._encoder.state
        fields = {
            ElementCode.PI: EncoderState(pi=on_air.pi),
            ElementCode.PS: EncoderState(ps=on_air.ps),
            ElementCode.TA_TP: EncoderState(ta=on_air.ta, tp=on_air.tp),
            ElementCode.PTY: EncoderState(pty=on_air.pty),
            ElementCode.RT: EncoderState(rt=on_air.rt),
        }
        return state_elements(fields[ElementCode(code)])


class AsciiDeviceProtocol:
    """One ASCII-dialect connection on the encoder side: command lines in, replies out."""

    def __init__(self, encoder: SimulatedEncoder) -> None:
        self._encoder = encoder
        self._line = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Consume bytes; return one reply line per complete command."""
        answers = []
        for byte in data:
            if byte not in b"\r\n":
                self._line.append(byte)
                continue
            line, self._line = bytes(self._line), bytearray()
            if not line or self._encoder.faults.silent:
                continue
            reply = self._command(line)
            if reply is not None:
                answers.append(reply.encode("ascii") + b"\r\n")
        return answers

    def _command(self, line: bytes) -> str | None:
        name, sep, value = line.partition(b"=")
        faults = self._encoder.faults
        try:
            parsed = self._parse(name.decode("ascii", "replace").upper(), value) if sep else None
        except (RdsValueError, ValueError):
            return self._refuse("-")
        if parsed is None:
            return self._refuse("!")
        update, reply = parsed
        if faults.reject > 0:
            faults.reject -= 1
            return self._refuse("-")
        self._encoder.apply(update)
        if faults.lose_answers > 0:
            faults.lose_answers -= 1
            return None
        return reply

    def _refuse(self, reply: str) -> str:
        self._encoder.negative_answers.append(reply)
        return reply

    @staticmethod
    def _parse(name: str, value: bytes) -> tuple[EncoderState, str] | None:
        if name == "PI":
            if len(value) != 4:
                raise ValueError("PI needs 4 hex digits")
            return EncoderState(pi=int(value, 16)), "+"
        if name in ("TA", "TP"):
            if value not in (b"0", b"1"):
                raise ValueError(f"{name} takes 0 or 1")
            flag = value == b"1"
            return (EncoderState(ta=flag) if name == "TA" else EncoderState(tp=flag)), "+"
        if name == "PTY":
            pty = int(value)
            if not 0 <= pty <= 31:
                raise ValueError("PTY outside 0..31")
            return EncoderState(pty=pty), "+"
        if name in ("PS", "RT1"):
            limit = PS_LENGTH if name == "PS" else RT_MAX_LENGTH
            text = decode_rds_text(value[:limit], field=name)
            reply = "/" if len(value) > limit else "+"
            if name == "PS":
                return EncoderState(ps=text.ljust(PS_LENGTH)), reply
            return EncoderState(rt=text), reply
        return None
