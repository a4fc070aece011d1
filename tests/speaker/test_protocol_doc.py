"""The worked examples in docs/protocols/speaker.md match the reference codec byte for byte."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from multidict import CIMultiDict

from drivers.speaker.codec import (
    canonical_bytes,
    decode_box_message,
    decode_command,
    encode_box_message,
    encode_command,
)
from drivers.speaker.messages import AckStage, BoxAck, PlayUrl
from drivers.speaker.seal import (
    SEAL_HEADER,
    SHA256_HEADER,
    SPEECH_START_HEADER,
    TARGET_HEADER,
    seal,
    sealed_text,
)
from drivers.speaker.sealed_audio import CommandTarget, check_sealed_answer

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
    assert target == "area:150902" and isinstance(command, PlayUrl)
    assert command.sha256 is None and command.attention_clip == "attention"
    assert command.acks == (AckStage.STARTED, AckStage.FINISHED)
    assert encode_command(command, target, KEY).decode() == command_text
    ack = decode_box_message(ack_text.encode(), lambda b: KEY)
    assert isinstance(ack, BoxAck) and ack.stage is AckStage.STARTED
    assert ack.cmd_id == command.cmd_id and ack.source == "attention:attention"
    assert encode_box_message(ack, KEY).decode() == ack_text


def test_sealed_audio_example() -> None:
    """The seal in section 5.1 is the one the reference code makes for the command of 3.2."""
    request, answer, text = code_blocks("### 5.1 Media")
    command_text = code_blocks("### 3.2 Acknowledgements")[0]
    target, command = decode_command(command_text.encode(), lambda t: KEY)
    assert isinstance(command, PlayUrl)
    assert request.splitlines() == [f"GET {command.url}", f"{TARGET_HEADER}: {target}"]
    status, *lines = answer.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    assert status == "HTTP/1.1 200 OK"
    assert headers[SHA256_HEADER] == hashlib.sha256(b"test").hexdigest()
    start = int(headers[SPEECH_START_HEADER])
    sha256 = headers[SHA256_HEADER]
    assert text.encode() == sealed_text(command.url, target, sha256, start)
    assert headers[SEAL_HEADER] == seal(KEY, command.url, target, sha256, start)
    to = CommandTarget(target, KEY)
    checked = check_sealed_answer(command.url, to, CIMultiDict(headers), sha256)
    assert checked.speech_start_ms == start == 4200
