"""RDS encoder client over UECP (EBU SPB 490), for serial, pty or TCP links.

Each command is one UECP frame (EBU SPB 490 frame format) addressed to ``site``/``encoder`` from the
config, carrying one or more message elements with the configured data set and
programme service numbers. The sequence counter runs 1..255 cyclically (0 is reserved for
"not used"); a retransmission repeats the frame with the same counter, so an encoder that
did apply it but lost its answer just applies the same values again.

The encoder answers with a frame holding a message acknowledgement element (MEC
0x18) whose frame sequence counter echoes the command's. Code 0 is success; code 1
(CRC error), 2 (not received completely), 10 (end missing), 12 (bad stuffing) and 13
(unexpected end) mean the bytes were damaged on the line and are retransmitted; every
other code is a refusal (:class:`~drivers.rds.errors.RdsRejectedError` with the code).

On every connection the client first asks for communication mode 2 (MEC 0x2C:
bidirectional, an answer to every message) unless the config turns that off.

``read_state`` sends a message request (MEC 0x17) for PI, PS, TA/TP, PTY and RT; the
encoder answers with a frame (same sequence counter) carrying those elements. Data elements
answer only such a request: for every other command only an acknowledgement element counts,
so a line that echoes the controller's own frames back (a serial loopback, a wrong port, a
TCP echo service) acknowledges nothing and times out.

Several fields set together go in one frame, so one acknowledgement covers them: when TA is
dropped its element comes first, when it is raised it comes last (after PTY, PS and RT), so
receivers switching on TA already see the alarm programme type.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from drivers.rds.client import RdsEncoderClient
from drivers.rds.config import RdsEncoderConfig
from drivers.rds.errors import RdsFrameError, RdsRejectedError, RdsTimeoutError
from drivers.rds.state import EncoderState
from drivers.rds.uecp_elements import (
    READABLE_CODES,
    AckElement,
    CommunicationMode,
    CommunicationModeElement,
    EwsElement,
    EwsPayload,
    RequestElement,
    UecpElement,
    decode_message,
    element_state,
    encode_message,
    state_elements,
)
from drivers.rds.uecp_frame import AckCode, UecpFrame, UecpFrameReader, encode_frame

_log = logging.getLogger(__name__)

_LINE_DAMAGE = frozenset(
    {
        AckCode.CRC_ERROR,
        AckCode.MESSAGE_NOT_RECEIVED_COMPLETELY,
        AckCode.END_MESSAGE_MISSING,
        AckCode.BAD_STUFFING,
        AckCode.UNEXPECTED_END_OF_MESSAGE,
    }
)


def update_elements(update: EncoderState, dsn: int = 0, psn: int = 0) -> list[UecpElement]:
    """The UECP elements for ``update``, TA/TP first when TA drops and last otherwise."""
    elements = state_elements(update, dsn, psn)
    if update.ta is False:
        elements.insert(0, elements.pop())  # state_elements puts TA/TP last
    return elements


class UecpEncoderClient(RdsEncoderClient):
    """An RDS encoder speaking UECP; see the module docstring for the exchange."""

    supports_ews: ClassVar[bool] = True

    def __init__(self, config: RdsEncoderConfig) -> None:
        super().__init__(config)
        self._sequence = 0
        self._frames = UecpFrameReader()
        #: The sequence counter of the message request in flight: data answers only it.
        self._data_request: int | None = None

    def _next_frame(self, elements: list[UecpElement]) -> bytes:
        self._sequence = self._sequence % 255 + 1
        frame = UecpFrame(
            self.config.site_address,
            self.config.encoder_address,
            self._sequence,
            encode_message(elements),
        )
        return encode_frame(frame)

    def _encode_update(self, update: EncoderState) -> bytes:
        known = self.snapshot()
        if (update.ta is None) != (update.tp is None):
            update = EncoderState(
                pi=update.pi,
                ps=update.ps,
                rt=update.rt,
                pty=update.pty,
                ta=update.ta if update.ta is not None else bool(known.ta),
                tp=update.tp if update.tp is not None else bool(known.tp),
            )
        return self._next_frame(
            update_elements(update, self.config.data_set, self.config.programme_service)
        )

    def _encode_ping(self) -> bytes:
        # Asking for the mode the encoder must already be in to answer changes nothing.
        return self._next_frame([CommunicationModeElement(CommunicationMode.SPONTANEOUS_RESPONSE)])

    async def _handshake(self) -> None:
        if not self.config.bidirectional:
            return
        try:
            await self._transact(self._encode_ping, "communication mode")
        except RdsTimeoutError:
            # Some encoders switch modes without answering the switch itself; the next
            # command shows whether answers come.
            _log.warning("encoder %s did not acknowledge the communication mode", self.config.url)

    def _encode_ews(self, payload: EwsPayload) -> bytes:
        return self._next_frame([EwsElement(payload)])

    def _on_connected(self) -> None:
        self._frames = UecpFrameReader()

    async def read_state(self) -> EncoderState:
        requests: list[UecpElement] = [
            RequestElement(code, self.config.data_set, self.config.programme_service)
            for code in READABLE_CODES
        ]

        def request() -> bytes:
            frame = self._next_frame(requests)
            self._data_request = self._sequence
            return frame

        try:
            reply = await self._transact(request, "read state")
        finally:
            self._data_request = None
        if not isinstance(reply, tuple):
            raise RdsRejectedError(
                f"read state: encoder at {self.config.url} acknowledged without sending data"
            )
        state = EncoderState()
        for element in reply:
            part = element_state(element)
            if part is not None:
                state = state.merged(part)
        self._known = self._known.merged(state)
        return state

    def _feed(self, data: bytes) -> None:
        for item in self._frames.feed(data):
            if isinstance(item, RdsFrameError):
                _log.warning("garbled frame from encoder %s: %s", self.config.url, item)
                continue
            try:
                elements = decode_message(item.message)
            except RdsFrameError as error:
                _log.warning("unreadable answer from encoder %s: %s", self.config.url, error)
                continue
            for element in elements:
                if isinstance(element, AckElement) and self._answers_current(item, element):
                    self._resolve(element)
            data_elements = tuple(e for e in elements if element_state(e) is not None)
            if data_elements and self._answers_request(item):
                self._resolve(data_elements)

    def _answers_request(self, frame: UecpFrame) -> bool:
        """True for data answering the message request in flight, and only then."""
        sequence = self._data_request
        return sequence == self._sequence and frame.sequence in (sequence, 0)

    def _answers_current(self, frame: UecpFrame, ack: AckElement) -> bool:
        if ack.code is AckCode.OK:
            return frame.sequence in (self._sequence, 0)
        return self._sequence in (frame.sequence, ack.sequence)

    def _judge_reply(self, reply: object, what: str) -> bool:
        if isinstance(reply, tuple):
            return True  # the data answering a message request (see ``_answers_request``)
        if not isinstance(reply, AckElement):
            return False
        if reply.code is AckCode.OK:
            return True
        if reply.code in _LINE_DAMAGE:
            _log.info("%s: encoder reports %s", what, reply.code.name)
            return False
        raise RdsRejectedError(
            f"{what}: encoder at {self.config.url} refused it: {reply.code.name} "
            f"(code {int(reply.code)})",
            int(reply.code),
        )
