"""Play commands whose audio is sealed (no ``sha256``): the codec's rules for them, and both
fleet simulators taking them (the full one downloads once per target and plays after the
attention clip, the lean one acknowledges them)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drivers.speaker.codec import (
    canonical_bytes,
    decode_box_message,
    decode_command,
    encode_command,
    sign,
)
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.hub import SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.messages import AckStage, BoxAck, PlayUrl
from drivers.speaker.simulator import (
    FleetSimulatorConfig,
    SpeakerFleetSimulator,
    area_key,
    box_key,
)
from drivers.speaker.simulator_lean import LeanBox
from drivers.speaker.testing import HubEventRecorder, SealedMediaServer, play_url_command
from tests.speaker import agent_rig
from tests.speaker.agent_rig import Box

KEY = bytes(range(32))
SECRET = b"sealed-fleet-secret-0123456789ab"
AUDIO = b"sealed fleet audio" * 100
TONE = b"attention tone"
URL = "http://127.0.0.1:1/w.opus"


def sealed(cmd_id: str = "c1", url: str = URL, **changes: Any) -> PlayUrl:
    plain = play_url_command(cmd_id, "alert-1", url, AUDIO)
    return replace(plain, sha256=None, **({"attention_clip": "attention"} | changes))


def resigned(command: PlayUrl, key: bytes = KEY, **members: Any) -> bytes:
    """``command`` for box b1 with ``members`` set (None: removed), signed again."""
    obj = json.loads(encode_command(command, "box:b1", key))
    for name, value in members.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    obj.pop("sig")
    return canonical_bytes(obj)[:-1] + f',"sig":"{sign(obj, key)}"}}'.encode()


def test_a_sealed_command_carries_no_hash_and_round_trips() -> None:
    for command in (sealed(), sealed(attention_clip=None)):
        data = encode_command(command, "box:b1", KEY)
        assert "sha256" not in json.loads(data) and "speech_start_ms" not in json.loads(data)
        target, decoded = decode_command(data, lambda t: KEY)
        assert isinstance(decoded, PlayUrl) and decoded.sha256 is None
        assert decoded.attention_clip == command.attention_clip
        assert encode_command(decoded, target, KEY) == data


def test_a_sealed_command_naming_a_speech_start_is_malformed() -> None:
    with pytest.raises(SpeakerProtocolError, match="speech_start_ms"):
        decode_command(resigned(sealed(), speech_start_ms=4000), lambda t: KEY)
    with pytest.raises(SpeakerProtocolError, match="speech_start_ms"):
        decode_command(resigned(sealed(attention_clip=None), speech_start_ms=0), lambda t: KEY)


def test_a_hash_still_needs_the_clip_and_the_start_together() -> None:
    plain = play_url_command("c1", "alert-1", URL, AUDIO)
    for members in ({"attention_clip": "attention"}, {"speech_start_ms": 4000}):
        with pytest.raises(SpeakerProtocolError, match="go together"):
            decode_command(resigned(plain, **members), lambda t: KEY)


def test_play_clip_still_needs_its_hash() -> None:
    obj: dict[str, Any] = json.loads(resigned(sealed()))
    obj |= {"type": "play_clip", "clip_id": "generic"}
    for name in ("url", "attention_clip", "sig"):
        del obj[name]
    data = canonical_bytes(obj)[:-1] + f',"sig":"{sign(obj, KEY)}"}}'.encode()
    with pytest.raises(SpeakerProtocolError, match="'sha256'"):
        decode_command(data, lambda t: KEY)


async def test_the_agent_refuses_a_sealed_command_with_a_speech_start(box: Box) -> None:
    await box.agent.handle_command(resigned(sealed(), agent_rig.KEY, speech_start_ms=4000))
    await box.wait_ack("c1", AckStage.FAILED)
    assert box.acks("c1") == [(AckStage.FAILED, "malformed")]
    assert box.log.records == []


def test_the_lean_box_acknowledges_sealed_commands() -> None:
    lean = LeanBox("b1", KEY, {})
    sent: list[tuple[str, AckStage]] = []

    def record(messages: list[bytes]) -> None:
        for data in messages:
            message = decode_box_message(data, lambda _box: KEY)
            assert isinstance(message, BoxAck)
            sent.append((message.cmd_id, message.stage))

    lean.send = record
    lean.command(encode_command(sealed("c1"), "box:b1", KEY))
    # Not in the canonical form: the general decoder takes it.
    loose = json.dumps(json.loads(encode_command(sealed("c2"), "box:b1", KEY)), indent=1)
    lean.command(loose.encode())
    stages = [AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED]
    assert sent[:3] == [("c1", stage) for stage in stages]
    assert sent[3:] == [("c2", stage) for stage in stages]
    lean.command(encode_command(sealed("c1"), "box:b1", KEY))
    assert sent[6:] == [("c1", AckStage.FINISHED)]


async def test_the_fleet_simulator_plays_sealed_area_audio_downloaded_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "attention").write_bytes(TONE)
    hub = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)))
    await hub.start()
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"tcp://127.0.0.1:{hub.tcp_port}",
            fleet_secret=SECRET,
            boxes=3,
            areas=("150902",),
            work_dir=tmp_path,
        )
    )
    for registration in fleet.registrations("tcp"):
        hub.register(registration)
    recorder = HubEventRecorder(hub)
    boxes = {box.box_id for box in fleet.boxes}
    keys = {"area:150902": area_key(SECRET, "150902")}
    keys |= {f"box:{b}": box_key(SECRET, b) for b in boxes}
    await fleet.start()
    try:
        async with SealedMediaServer({"w.opus": AUDIO}, keys, {"w.opus": 1500}) as server:
            server.hold_s = 0.3
            await recorder.wait_for(lambda: hub.online_count == 3)
            command = sealed(url=server.url("w.opus"))
            data = encode_command(command, "area:150902", keys["area:150902"])
            assert await hub.send_same(sorted(boxes), data) == [None] * 3
            await recorder.wait_acks("c1", AckStage.FINISHED, boxes)
            one = sorted(boxes)[0]
            await hub.send_command(one, replace(command, cmd_id="c2"))
            await recorder.wait_acks("c2", AckStage.FINISHED, {one})
    finally:
        await fleet.stop()
        await recorder.close()
        await hub.stop()
    assert server.targets == ["area:150902", f"box:{one}"]
    assert {a.source for a in recorder.acks("c1", AckStage.STARTED)} == {"attention:attention"}
    assert {a.source for a in recorder.acks("c1", AckStage.FINISHED)} == {"url"}
    for box_id in boxes:
        played = [(r.request.source, r.request.start_s) for r in fleet.log.completed(box_id)]
        assert played[:2] == [("attention:attention", 0.0), ("url", 1.5)]
