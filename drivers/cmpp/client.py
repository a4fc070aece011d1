"""The asyncio CMPP 2.0/3.0 client: connections to one ISMG, submits, status reports.

``CmppBind`` fills in the protocol hooks of ``drivers.smsgw.bind.GatewayBind`` (§7.4.1
CMPP_CONNECT with the MD5 authenticator, §7.4.3 CMPP_SUBMIT, §7.4.5 CMPP_DELIVER status
reports, §7.4.9 CMPP_ACTIVE_TEST, §7.4.2 CMPP_TERMINATE); ``CmppClient`` keeps several up.
Text goes as UCS-2 (Msg_Fmt 8) or GBK (Msg_Fmt 15); a long text as several CMPP_SUBMIT with
TP_udhi 1, a concatenation UDH and Pk_total / Pk_number. A submit with a ``valid_until`` carries
it as ValId_Time (``drivers.smsgw.validity``): an absolute time in this server's time zone with
its offset from UTC written out (the SMPP 3.3 format the CMPP specifications name).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from drivers.cmpp import pdu
from drivers.cmpp.status import RESULT_OK, connect_error, submit_error
from drivers.smsgw.bind import GatewayBind
from drivers.smsgw.client import ClientSettings, GatewayClient, GatewayTuning
from drivers.smsgw.errors import GatewayBindError, GatewayConfigError, GatewayProtocolError
from drivers.smsgw.results import STATS, EncodedSegment, Receipt, ReceiptState, gateway_time
from drivers.smsgw.segments import TextCoding
from drivers.smsgw.validity import validity_left

log = logging.getLogger(__name__)

VERSIONS = {"2.0": pdu.V2, "3.0": pdu.V3}
CODINGS = {"ucs2": TextCoding.UCS2, "gbk": TextCoding.GBK}


@dataclass(frozen=True, slots=True)
class CmppClientConfig(GatewayTuning):
    """Operator settings for one ISMG (see ``drivers/README-sms-gateways.md``)."""

    host: str
    port: int
    sp_id: str
    shared_secret: str = field(repr=False)
    service_id: str = ""
    src_id: str = ""
    version: str = "3.0"
    coding: str = "ucs2"
    fee_user_type: int = 2
    fee_type: str = "01"
    fee_code: str = "000000"

    def client_settings(self) -> ClientSettings:
        """The protocol-neutral part of these settings; GatewayConfigError if invalid."""
        if not 0 < len(self.sp_id) <= 6:
            raise GatewayConfigError("sp_id: 1 to 6 characters (企业代码)")
        if self.version not in VERSIONS:
            raise GatewayConfigError(f"version: {self.version!r} is not 2.0 or 3.0")
        if self.coding not in CODINGS:
            raise GatewayConfigError(f"coding: {self.coding!r} is not ucs2 or gbk")
        return self.tuned(self.host, self.port)


class CmppBind(GatewayBind[pdu.CmppPdu]):
    """One CMPP connection to the ISMG."""

    protocol = "CMPP"
    header_length = pdu.HEADER_LENGTH

    def __init__(
        self,
        name: str,
        config: CmppClientConfig,
        on_receipt: Callable[[Receipt], None],
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        super().__init__(name, config.client_settings().bind, on_receipt)
        self.config = config
        self.version = VERSIONS[config.version]
        self._clock = clock
        self._source = b""

    def decode(self, frame: bytes) -> pdu.CmppPdu:
        return pdu.decode(frame, self.version)

    def encode(self, message: pdu.CmppPdu) -> bytes:
        return pdu.encode(message, self.version)

    def handshake_pdu(self, sequence: int) -> pdu.CmppPdu:
        stamp = pdu.timestamp_text(self._clock())
        self._source = pdu.authenticator_source(self.config.sp_id, self.config.shared_secret, stamp)
        body = pdu.Connect(self.config.sp_id, self._source, self.version, int(stamp))
        return pdu.CmppPdu(pdu.CONNECT, sequence, body)

    def check_handshake(self, response: pdu.CmppPdu) -> None:
        body = response.body
        if not isinstance(body, pdu.ConnectResp):
            raise GatewayProtocolError("the answer to CMPP_CONNECT is not CMPP_CONNECT_RESP")
        if body.status:
            raise connect_error(body.status)
        expected = pdu.authenticator_ismg(0, self._source, self.config.shared_secret, self.version)
        if body.authenticator != expected:
            raise GatewayBindError("CMPP", 0, "AuthenticatorISMG does not match", "CMPP_CONNECT")

    def submit_pdu(
        self, sequence: int, destination: str, segment: EncodedSegment, valid_until: float | None
    ) -> pdu.CmppPdu:
        config = self.config
        valid_time = ""
        if valid_until is not None:
            now = time.time()
            moment = datetime.fromtimestamp(now + validity_left(valid_until, now)).astimezone()
            valid_time = pdu.valid_time_text(moment)
        body = pdu.Submit(
            dest_terminal_ids=(destination.strip().removeprefix("+"),),
            content=segment.payload,
            msg_fmt=segment.data_coding,
            tp_udhi=int(segment.udhi),
            pk_total=segment.total,
            pk_number=segment.sequence,
            registered_delivery=1,
            service_id=config.service_id,
            fee_user_type=config.fee_user_type,
            msg_src=config.sp_id,
            fee_type=config.fee_type,
            fee_code=config.fee_code,
            valid_time=valid_time,
            src_id=config.src_id,
        )
        return pdu.CmppPdu(pdu.SUBMIT, sequence, body)

    def submit_message_id(self, response: pdu.CmppPdu) -> str:
        body = response.body
        if not isinstance(body, pdu.MsgIdResult):
            raise GatewayProtocolError("the answer to CMPP_SUBMIT is not CMPP_SUBMIT_RESP")
        if body.result != RESULT_OK:
            raise submit_error(body.result)
        return str(body.msg_id)

    def keepalive_pdu(self, sequence: int) -> pdu.CmppPdu:
        return pdu.CmppPdu(pdu.ACTIVE_TEST, sequence)

    def goodbye_pdu(self, sequence: int) -> pdu.CmppPdu:
        return pdu.CmppPdu(pdu.TERMINATE, sequence)

    def answer(self, request: pdu.CmppPdu) -> tuple[pdu.CmppPdu | None, Receipt | None, bool]:
        sequence = request.sequence
        if request.command_id == pdu.ACTIVE_TEST:
            return pdu.CmppPdu(pdu.ACTIVE_TEST_RESP, sequence, pdu.ActiveTestResp()), None, False
        if request.command_id == pdu.TERMINATE:
            return pdu.CmppPdu(pdu.TERMINATE_RESP, sequence), None, True
        body = request.body
        if request.command_id != pdu.DELIVER or not isinstance(body, pdu.Deliver):
            log.warning("%s: unexpected command %#x ignored", self.name, request.command_id)
            return None, None, False
        response = pdu.CmppPdu(pdu.DELIVER_RESP, sequence, pdu.MsgIdResult(body.msg_id, 0))
        if body.registered_delivery != 1:
            return response, None, False  # an uplink message, not a status report
        try:
            report = pdu.decode_status_report(body.content, self.version)
        except GatewayProtocolError as exc:
            log.warning("%s: unreadable status report acknowledged: %s", self.name, exc)
            return response, None, False
        receipt = Receipt(
            message_id=str(report.msg_id),
            state=STATS.get(report.stat, ReceiptState.UNDELIVERABLE),
            stat=report.stat,
            error="" if report.stat == "DELIVRD" else report.stat,
            submitted=gateway_time(report.submit_time),
            done=gateway_time(report.done_time),
        )
        return response, receipt, False


class CmppClient(GatewayClient):
    """Several CMPP connections to one ISMG; ``submit`` texts, iterate ``receipts``."""

    def __init__(
        self, config: CmppClientConfig, on_receipt: Callable[[Receipt], None] | None = None
    ) -> None:
        super().__init__(
            config.client_settings(),
            lambda name, sink: CmppBind(name, config, sink),
            on_receipt,
        )
        self.config = config
        self.coding = CODINGS[config.coding]
