"""The worked examples in docs/protocols/speaker.md match the reference codec byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

from drivers.speaker.codec import (
    canonical_bytes,
    decode_box_message,
    decode_command,
    encode_box_message,
    encode_command,
)
from drivers.speaker.messages import AckStage, BoxAck, PlayClip, PlayUrl
from drivers.speaker.serial_frames import FrameKind, SerialFrame, encode_frame

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "speaker.md"
KEY = bytes(range(32))


def code_blocks(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(section, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```[a-z]*\n(.*?)\n```", body, re.S)


def test_signed_command_and_ack_examples() -> None:
    command_text, canonical, ack_text = code_blocks("### 2.5 Example")
    target, command = decode_command(command_text.encode(), lambda t: KEY)
    assert target == "box:box-0001" and isinstance(command, PlayUrl)
    assert (command.priority, command.repeat, command.fallback_clip) == (100, 2, "generic-warning")
    assert canonical_bytes(json.loads(command_text)).decode() == canonical
    assert encode_command(command, target, KEY).decode() == command_text
    ack = decode_box_message(ack_text.encode(), lambda b: KEY)
    assert isinstance(ack, BoxAck) and ack.stage is AckStage.STARTED
    assert encode_box_message(ack, KEY).decode() == ack_text


def test_acks_example() -> None:
    command_text, ack_text = code_blocks("### 3.2 Acknowledgements")
    target, command = decode_command(command_text.encode(), lambda t: KEY)
    assert target == "area:150902" and isinstance(command, PlayClip)
    assert command.acks == (AckStage.STARTED,)
    assert encode_command(command, target, KEY).decode() == command_text
    ack = decode_box_message(ack_text.encode(), lambda b: KEY)
    assert isinstance(ack, BoxAck) and ack.stage is AckStage.STARTED
    assert ack.cmd_id == command.cmd_id and ack.source == "clip"
    assert encode_box_message(ack, KEY).decode() == ack_text


def test_serial_frame_examples() -> None:
    frames = code_blocks("### 4.2 Serial line")[-1].splitlines()
    assert frames == [
        encode_frame(SerialFrame(3, 0x11, FrameKind.POLL)).hex(" "),
        encode_frame(SerialFrame(3, 0x11, FrameKind.IDLE)).hex(" "),
    ]
