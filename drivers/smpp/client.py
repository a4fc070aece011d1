"""The asyncio SMPP 3.4 client: bind_transceiver binds to one SMSC, submits, receipts.

``SmppBind`` fills in the protocol hooks of ``drivers.smsgw.bind.GatewayBind`` (§4.1.5 bind,
§4.4 submit_sm, §4.6 deliver_sm receipts, §4.11 enquire_link, §4.2 unbind); ``SmppClient``
keeps several of them up through ``drivers.smsgw.client.GatewayClient``. Text goes as UCS-2
(data_coding 8); a long text goes as several submit_sm with a concatenation UDH (esm_class
UDHI), each asking for a final delivery receipt (registered_delivery 1) and valid until the
caller's ``valid_until`` as a relative validity_period (§7.1.1, ``drivers.smsgw.validity``).
A request the client does not handle (alert_notification, data_sm, ...) is answered
generic_nack with ESME_RINVCMDID (§4.3) and the bind stays up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.smpp import pdu
from drivers.smpp.receipt import parse_receipt
from drivers.smpp.status import ESME_RINVCMDID, ESME_ROK, status_error
from drivers.smpp.times import relative_time, seconds_until
from drivers.smsgw.bind import GatewayBind
from drivers.smsgw.client import ClientSettings, GatewayClient, GatewayTuning
from drivers.smsgw.errors import GatewayConfigError, GatewayProtocolError
from drivers.smsgw.results import EncodedSegment, Receipt
from drivers.smsgw.validity import validity_left

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SmppClientConfig(GatewayTuning):
    """Operator settings for one SMSC (see ``drivers/README-sms-gateways.md``).

    ``validity_period`` (an SMPP time, absolute or relative): the longest an SMSC keeps a
    segment; a submit with a ``valid_until`` asks for less when its alert expires sooner.
    """

    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    source_addr: str = ""
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    service_type: str = ""
    validity_period: str = ""

    def client_settings(self) -> ClientSettings:
        """The protocol-neutral part of these settings."""
        if not 0 < len(self.system_id) < 16:
            raise GatewayConfigError("system_id: 1 to 15 characters")
        if len(self.password) > 8:
            raise GatewayConfigError("password: at most 8 characters")
        if self.validity_period:
            try:
                seconds_until(self.validity_period, time.time())
            except GatewayConfigError as exc:
                raise GatewayConfigError(f"validity_period: {exc}") from None
        return self.tuned(self.host, self.port)


def destination_number(destination: str) -> str:
    """The destination_addr for a number: digits only (the TON says it is international)."""
    return destination.strip().removeprefix("+")


class SmppBind(GatewayBind[pdu.SmppPdu]):
    """One bind_transceiver session."""

    protocol = "SMPP"
    header_length = pdu.HEADER_LENGTH
    nack_command = pdu.GENERIC_NACK

    def __init__(
        self, name: str, config: SmppClientConfig, on_receipt: Callable[[Receipt], None]
    ) -> None:
        super().__init__(name, config.client_settings().bind, on_receipt)
        self.config = config

    def decode(self, frame: bytes) -> pdu.SmppPdu:
        return pdu.decode(frame)

    def encode(self, message: pdu.SmppPdu) -> bytes:
        return pdu.encode(message)

    def handshake_pdu(self, sequence: int) -> pdu.SmppPdu:
        body = pdu.BindBody(self.config.system_id, self.config.password, self.config.system_type)
        return pdu.SmppPdu(pdu.BIND_TRANSCEIVER, sequence, body=body)

    def check_handshake(self, response: pdu.SmppPdu) -> None:
        if response.command_id == pdu.GENERIC_NACK or response.status != ESME_ROK:
            raise status_error(response.status, "bind_transceiver")

    def submit_pdu(
        self, sequence: int, destination: str, segment: EncodedSegment, valid_until: float | None
    ) -> pdu.SmppPdu:
        config = self.config
        validity = config.validity_period
        if valid_until is not None:
            now = time.time()
            longest = seconds_until(validity, now) if validity else None
            validity = relative_time(validity_left(valid_until, now, longest))
        body = pdu.ShortMessage(
            source_addr=config.source_addr,
            destination_addr=destination_number(destination),
            short_message=segment.payload,
            service_type=config.service_type,
            source_ton=config.source_ton,
            source_npi=config.source_npi,
            dest_ton=config.dest_ton,
            dest_npi=config.dest_npi,
            esm_class=pdu.ESM_UDHI if segment.udhi else 0,
            validity_period=validity,
            registered_delivery=pdu.REGISTERED_DELIVERY_FINAL,
            data_coding=segment.data_coding,
        )
        return pdu.SmppPdu(pdu.SUBMIT_SM, sequence, body=body)

    def submit_message_id(self, response: pdu.SmppPdu) -> str:
        if response.status != ESME_ROK or response.command_id == pdu.GENERIC_NACK:
            raise status_error(response.status, "submit_sm")
        if not isinstance(response.body, pdu.MessageIdBody) or not response.body.message_id:
            raise GatewayProtocolError("submit_sm_resp accepted the segment without a message_id")
        return response.body.message_id

    def keepalive_pdu(self, sequence: int) -> pdu.SmppPdu:
        return pdu.SmppPdu(pdu.ENQUIRE_LINK, sequence)

    def goodbye_pdu(self, sequence: int) -> pdu.SmppPdu:
        return pdu.SmppPdu(pdu.UNBIND, sequence)

    def answer(self, request: pdu.SmppPdu) -> tuple[pdu.SmppPdu | None, Receipt | None, bool]:
        sequence = request.sequence
        if request.command_id == pdu.ENQUIRE_LINK:
            return pdu.SmppPdu(pdu.ENQUIRE_LINK_RESP, sequence), None, False
        if request.command_id == pdu.UNBIND:
            return pdu.SmppPdu(pdu.UNBIND_RESP, sequence), None, True
        if request.command_id == pdu.DELIVER_SM and isinstance(request.body, pdu.ShortMessage):
            response = pdu.SmppPdu(pdu.DELIVER_SM_RESP, sequence, body=pdu.MessageIdBody())
            if request.body.esm_class & pdu.ESM_MESSAGE_TYPE_MASK != pdu.ESM_DELIVERY_RECEIPT:
                return response, None, False  # a mobile-originated message: not ours to keep
            try:
                return response, parse_receipt(request.body), False
            except GatewayProtocolError as exc:
                log.warning("%s: unreadable delivery receipt acknowledged: %s", self.name, exc)
                return response, None, False
        log.warning(
            "%s: command %#010x not supported; answered generic_nack", self.name, request.command_id
        )
        return pdu.SmppPdu(pdu.GENERIC_NACK, sequence, ESME_RINVCMDID), None, False


class SmppClient(GatewayClient):
    """Several bind_transceiver binds to one SMSC; ``submit`` texts, iterate ``receipts``."""

    def __init__(
        self, config: SmppClientConfig, on_receipt: Callable[[Receipt], None] | None = None
    ) -> None:
        super().__init__(
            config.client_settings(),
            lambda name, sink: SmppBind(name, config, sink),
            on_receipt,
        )
        self.config = config
