"""Frames checked against an independent UECP implementation (python-uecp from PyPI).

Our encoder's frames are decoded by python-uecp's decoder, and frames python-uecp encodes
are decoded by ours; both must agree on address, sequence counter and every element.
"""

from __future__ import annotations

import warnings

import pytest
from uecp.commands.bidirectional import RequestCommand
from uecp.commands.control_n_setup import CommunicationModeSetCommand
from uecp.commands.rds_message import (
    ProgrammeIdentificationSetCommand,
    ProgrammeServiceNameSetCommand,
    ProgrammeTypeSetCommand,
    RadioTextSetCommand,
    TrafficAnnouncementProgrammeSetCommand,
)
from uecp.frame import UECPFrame, UECPFrameDecoder

from drivers.rds.uecp_elements import (
    CommunicationMode,
    CommunicationModeElement,
    PiElement,
    PsElement,
    PtyElement,
    RequestElement,
    RtElement,
    TaTpElement,
    UecpElement,
    decode_message,
    encode_element,
    encode_message,
)
from drivers.rds.uecp_frame import UecpFrame, UecpFrameReader, encode_frame

ELEMENTS: list[UecpElement] = [
    PiElement(0x3C93, dsn=1, psn=2),
    PsElement("ALERT   "),
    TaTpElement(ta=True, tp=True),
    PtyElement(31),
    RtElement("Flood warning: leave the river banks now"),
    RtElement("x" * 64, toggle_ab=False, transmissions=4),
    CommunicationModeElement(CommunicationMode.SPONTANEOUS_RESPONSE),
]


def describe_theirs(command: object) -> tuple[object, ...]:
    match command:
        case ProgrammeIdentificationSetCommand():
            return ("PI", command.pi, command.data_set_number, command.programme_service_number)
        case ProgrammeServiceNameSetCommand():
            return ("PS", command.ps.ljust(8))
        case TrafficAnnouncementProgrammeSetCommand():
            return ("TA/TP", bool(command.announcement), bool(command.programme))
        case ProgrammeTypeSetCommand():
            return ("PTY", int(command.programme_type))
        case RadioTextSetCommand():
            text = command.text.removesuffix("\r")
            return ("RT", text, bool(command.a_b_toggle), command.number_of_transmissions)
        case CommunicationModeSetCommand():
            return ("MODE", int(command.mode))
    raise AssertionError(f"unexpected command {command!r}")


def describe_ours(element: UecpElement) -> tuple[object, ...]:
    match element:
        case PiElement(pi, dsn, psn):
            return ("PI", pi, dsn, psn)
        case PsElement(ps):
            return ("PS", ps)
        case TaTpElement(ta, tp):
            return ("TA/TP", ta, tp)
        case PtyElement(pty):
            return ("PTY", pty)
        case RtElement(text, transmissions, toggle_ab):
            return ("RT", text, toggle_ab, transmissions)
        case CommunicationModeElement(mode):
            return ("MODE", int(mode))
    raise AssertionError(f"unexpected element {element!r}")


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: type(e).__name__)
def test_their_decoder_reads_our_frames(element: UecpElement) -> None:
    wire = encode_frame(UecpFrame(12, 3, 0xFE, encode_message([element])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded, rest = UECPFrameDecoder().decode(wire)
    assert decoded is not None and not rest
    assert (decoded.site_address, decoded.encoder_address, decoded.sequence_counter) == (
        12,
        3,
        0xFE,
    )
    assert [describe_theirs(c) for c in decoded.commands] == [describe_ours(element)]


def test_message_request_matches_theirs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = RequestCommand(element_code=0x0A, data_set_number=1, programme_service_number=2)
        assert encode_element(RequestElement(0x0A, 1, 2)) == bytes(theirs.encode())


def test_our_decoder_reads_their_frames() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = UECPFrame(site_address=1000, encoder_address=63, sequence_counter=0xFF)
        theirs.add_command(
            ProgrammeIdentificationSetCommand(pi=0xFFFD),
            ProgrammeServiceNameSetCommand(ps="NEWS"),
            TrafficAnnouncementProgrammeSetCommand(announcement=False, programme=True),
            ProgrammeTypeSetCommand(programme_type=30),
            RadioTextSetCommand(text="Test of the warning system", a_b_toggle=True),
        )
        wire = theirs.encode()
        expected = [describe_theirs(c) for c in theirs.commands]
    (frame,) = UecpFrameReader().feed(wire)
    assert isinstance(frame, UecpFrame)
    assert (frame.site_address, frame.encoder_address, frame.sequence) == (1000, 63, 0xFF)
    assert [describe_ours(e) for e in decode_message(frame.message)] == expected
