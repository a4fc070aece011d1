"""SMS transfer-layer PDUs: SMS-SUBMIT and SMS-STATUS-REPORT, encoded and decoded.

Pure functions shared by the driver (submit encode, status-report decode) and the simulator
(submit decode, status-report encode). Follows 3GPP TS 23.040 §9.2.2.2 (SMS-SUBMIT),
§9.2.2.3 (SMS-STATUS-REPORT), §9.1.2.5 (address fields), §9.2.3.11 (TP-SCTS) and §9.2.3.15
(TP-Status), and TS 27.005 §3 for the PDU-mode framing (a zero-length SMSC address in front,
``<length>`` counting the TPDU only).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from drivers.gsm.codec import (
    SegmentText,
    SmsEncoding,
    concat_header,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    pack_septets,
    split_text,
    unpack_septets,
)
from drivers.gsm.errors import GsmInvalidNumberError, GsmProtocolError

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_SEPARATORS = re.compile(r"[\s\-().]")
TOA_INTERNATIONAL = 0x91
TOA_UNKNOWN = 0x81

MTI_SUBMIT = 0x01
MTI_STATUS_REPORT = 0x02
FLAG_VPF_RELATIVE = 0x10
FLAG_SRR = 0x20
FLAG_UDHI = 0x40
FLAG_MMS = 0x04


class ReportStatus(enum.Enum):
    """What a TP-Status value means for the sender (23.040 §9.2.3.15)."""

    DELIVERED = "delivered"  # 0x00-0x1F: transaction completed
    PENDING = "pending"  # 0x20-0x3F: temporary error, the SC is still trying
    FAILED = "failed"  # 0x40-0x6F and reserved values: the SC stopped trying


def classify_status(status: int) -> ReportStatus:
    """Map a TP-ST octet onto delivered / still pending / failed for good."""
    if status < 0x20:
        return ReportStatus.DELIVERED
    if status < 0x40:
        return ReportStatus.PENDING
    return ReportStatus.FAILED


def normalize_number(number: str) -> str:
    """The number without separators; raises GsmInvalidNumberError if it is not dialable."""
    cleaned = _SEPARATORS.sub("", number)
    if not _NUMBER.fullmatch(cleaned):
        raise GsmInvalidNumberError(f"{number!r} is not a phone number (3-20 digits, optional +)")
    return cleaned


def encode_address(number: str) -> bytes:
    """An address field: digit count, type of address, swapped semi-octets padded with F."""
    digits = number.lstrip("+")
    toa = TOA_INTERNATIONAL if number.startswith("+") else TOA_UNKNOWN
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[index + 1] + padded[index] for index in range(0, len(padded), 2))
    return bytes((len(digits), toa)) + bytes.fromhex(swapped)


def _decode_address(data: bytes, offset: int) -> tuple[str, int]:
    digit_count = _octet(data, offset)
    toa = _octet(data, offset + 1)
    octet_count = (digit_count + 1) // 2
    raw = _slice(data, offset + 2, octet_count)
    swapped = "".join(f"{octet & 0x0F:X}{octet >> 4:X}" for octet in raw)[:digit_count]
    if not swapped.isdigit() and digit_count:
        raise GsmProtocolError(f"address field holds non-digits: {swapped!r}")
    prefix = "+" if toa & 0x70 == 0x10 else ""
    return prefix + swapped, offset + 2 + octet_count


def _octet(data: bytes, offset: int) -> int:
    if offset >= len(data):
        raise GsmProtocolError(f"PDU ends at octet {len(data)}; expected more")
    return data[offset]


def _slice(data: bytes, offset: int, length: int) -> bytes:
    if offset + length > len(data):
        raise GsmProtocolError(f"PDU ends at octet {len(data)}; expected {offset + length}")
    return data[offset : offset + length]


def encode_timestamp(moment: datetime) -> bytes:
    """TP-SCTS / TP-DT: seven swapped semi-octets, the zone in signed quarter hours."""
    offset = moment.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    fields = (moment.year % 100, moment.month, moment.day, moment.hour, moment.minute)
    octets = [((value % 10) << 4) | (value // 10) for value in (*fields, moment.second)]
    zone = abs(quarters)
    zone_octet = ((zone % 10) << 4) | (zone // 10) | (0x08 if quarters < 0 else 0)
    return bytes((*octets, zone_octet))


def decode_timestamp(data: bytes) -> datetime:
    """Inverse of encode_timestamp; a field out of range is a protocol error."""
    values = [(octet & 0x0F) * 10 + (octet >> 4) for octet in data[:6]]
    zone_octet = data[6]
    quarters = (zone_octet & 0x07) * 10 + (zone_octet >> 4)
    sign = -1 if zone_octet & 0x08 else 1
    try:
        zone = timezone(timedelta(minutes=sign * 15 * quarters))
        year, month, day, hour, minute, second = values
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise GsmProtocolError(f"invalid timestamp {data.hex().upper()}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One SMS-SUBMIT ready for ``AT+CMGS=<tpdu_length>``: the hex to write after the prompt."""

    hex: str
    tpdu_length: int
    segment: SegmentText


def _user_data(segment: SegmentText, header: bytes) -> tuple[int, bytes]:
    """TP-UDL and TP-UD for one segment (23.040 §9.2.3.16: UDL counts septets for GSM-7)."""
    if segment.encoding is SmsEncoding.UCS2:
        payload = encode_ucs2(segment.text)
        return len(header) + len(payload), header + payload
    septets = encode_gsm7(segment.text) or []
    header_septets = (len(header) * 8 + 6) // 7
    fill_bits = header_septets * 7 - len(header) * 8
    packed = pack_septets(septets, fill_bits)
    if not header:
        return len(septets), packed
    return header_septets + len(septets), header + packed


def encode_submit(
    number: str,
    text: str,
    *,
    concat_reference: int = 0,
    request_status_report: bool = False,
    validity: timedelta | None = None,
    max_segments: int = 255,
) -> list[SubmitPdu]:
    """Encode ``text`` to ``number`` as one SMS-SUBMIT per segment (TP-MR 0: the modem sets it).

    Raises GsmInvalidNumberError or GsmMessageTooLongError; nothing is sent on error.
    """
    destination = normalize_number(number)
    segments = split_text(text, max_segments)
    first = MTI_SUBMIT | (FLAG_SRR if request_status_report else 0)
    if validity is not None:
        first |= FLAG_VPF_RELATIVE
    if len(segments) > 1:
        first |= FLAG_UDHI
    result: list[SubmitPdu] = []
    for segment in segments:
        header = b""
        if segment.total > 1:
            header = concat_header(concat_reference, segment.total, segment.sequence)
        udl, user_data = _user_data(segment, header)
        tpdu = bytearray((first, 0x00))
        tpdu += encode_address(destination)
        tpdu += bytes((0x00, segment.encoding.value))
        if validity is not None:
            tpdu.append(_relative_validity(validity))
        tpdu.append(udl)
        tpdu += user_data
        result.append(SubmitPdu(("00" + tpdu.hex()).upper(), len(tpdu), segment))
    return result


def _relative_validity(validity: timedelta) -> int:
    """TP-VP relative format (23.040 §9.2.3.12.1), rounded up to the next representable step."""
    minutes = max(5, int(validity.total_seconds() // 60))
    if minutes <= 720:
        return (minutes + 4) // 5 - 1
    if minutes <= 1440:
        return 143 + (minutes - 720 + 29) // 30
    days = (minutes + 1439) // 1440
    if days <= 30:
        return 166 + days
    return min(255, 192 + (days + 6) // 7)


@dataclass(frozen=True, slots=True)
class DecodedSubmit:
    """What the network sees in one SMS-SUBMIT (used by the simulator)."""

    number: str
    text: str
    encoding: SmsEncoding
    status_report_requested: bool
    concat_reference: int | None
    sequence: int
    total: int
    tpdu_length: int


def decode_submit(pdu_hex: str) -> DecodedSubmit:
    """Decode a PDU-mode SMS-SUBMIT (SMSC address in front); raises GsmProtocolError."""
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError as exc:
        raise GsmProtocolError(f"PDU is not hexadecimal: {pdu_hex[:40]!r}") from exc
    tpdu_start = 1 + _octet(data, 0)
    first = _octet(data, tpdu_start)
    if first & 0x03 != MTI_SUBMIT:
        raise GsmProtocolError(f"not an SMS-SUBMIT (first octet {first:02X})")
    number, offset = _decode_address(data, tpdu_start + 2)
    dcs = _octet(data, offset + 1)
    offset += 2
    vpf = (first >> 3) & 0x03
    offset += {0: 0, 1: 7, 2: 1, 3: 7}[vpf]
    udl = _octet(data, offset)
    user_data = data[offset + 1 :]
    header = b""
    if first & FLAG_UDHI:
        header = _slice(user_data, 0, 1 + _octet(user_data, 0))
    reference, sequence, total = _concat_fields(header)
    if dcs & 0x0C == 0x08:
        encoding = SmsEncoding.UCS2
        text = decode_ucs2(_slice(user_data, len(header), udl - len(header)))
    elif dcs & 0x0C == 0x00:
        encoding = SmsEncoding.GSM7
        header_septets = (len(header) * 8 + 6) // 7
        septets = unpack_septets(user_data, udl)
        text = decode_gsm7(septets[header_septets:])
    else:
        raise GsmProtocolError(f"unsupported data coding scheme {dcs:02X}")
    return DecodedSubmit(
        number=number,
        text=text,
        encoding=encoding,
        status_report_requested=bool(first & FLAG_SRR),
        concat_reference=reference,
        sequence=sequence,
        total=total,
        tpdu_length=len(data) - tpdu_start,
    )


def _concat_fields(header: bytes) -> tuple[int | None, int, int]:
    """The (reference, sequence, total) of a concatenation element in a UDH, if any."""
    index = 1
    while index + 1 < len(header):
        iei, length = header[index], header[index + 1]
        element = header[index + 2 : index + 2 + length]
        if iei == 0x00 and length == 3:
            return element[0], element[2], element[1]
        if iei == 0x08 and length == 4:
            return (element[0] << 8) | element[1], element[3], element[2]
        index += 2 + length
    return None, 1, 1


@dataclass(frozen=True, slots=True)
class StatusReportPdu:
    """A decoded SMS-STATUS-REPORT: which submit it is about and what happened to it."""

    message_reference: int
    recipient: str
    service_centre_time: datetime
    discharge_time: datetime
    status: int

    @property
    def state(self) -> ReportStatus:
        return classify_status(self.status)


def encode_status_report(report: StatusReportPdu) -> tuple[str, int]:
    """PDU-mode hex (empty SMSC address in front) and TPDU length of a status report."""
    tpdu = bytearray((MTI_STATUS_REPORT | FLAG_MMS, report.message_reference & 0xFF))
    tpdu += encode_address(report.recipient)
    tpdu += encode_timestamp(report.service_centre_time)
    tpdu += encode_timestamp(report.discharge_time)
    tpdu.append(report.status)
    return ("00" + tpdu.hex()).upper(), len(tpdu)


def decode_status_report(pdu_hex: str) -> StatusReportPdu:
    """Decode a PDU-mode SMS-STATUS-REPORT; raises GsmProtocolError on anything else."""
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError as exc:
        raise GsmProtocolError(f"status report is not hexadecimal: {pdu_hex[:40]!r}") from exc
    tpdu_start = 1 + _octet(data, 0)
    first = _octet(data, tpdu_start)
    if first & 0x03 != MTI_STATUS_REPORT:
        raise GsmProtocolError(f"not an SMS-STATUS-REPORT (first octet {first:02X})")
    reference = _octet(data, tpdu_start + 1)
    recipient, offset = _decode_address(data, tpdu_start + 2)
    return StatusReportPdu(
        message_reference=reference,
        recipient=recipient,
        service_centre_time=decode_timestamp(_slice(data, offset, 7)),
        discharge_time=decode_timestamp(_slice(data, offset + 7, 7)),
        status=_octet(data, offset + 14),
    )
