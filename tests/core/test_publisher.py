"""The audio publisher: a real render of an alert through espeak-ng, levels and hazards."""

from __future__ import annotations

from pathlib import Path

from audio.export import ExportFormat
from broadcaster.cap import NamedValue, Severity, Status
from broadcaster.channel import AlertMessage
from broadcaster.config import AudioConfig
from broadcaster.publisher import AudioPublisher, hazard_of, warning_level
from broadcaster.rendition import render
from tests.core.support import make_alert


def _message(status: Status = Status.ACTUAL) -> AlertMessage:
    alert = make_alert(status=status)
    return AlertMessage(id="a1", alert=alert, rendition=render(alert), expires_at=9e9)


def test_levels_come_from_parameters_then_severity() -> None:
    info = make_alert(severity=Severity.MODERATE).infos[0]
    assert warning_level(info).value == "yellow"
    info.parameters.append(NamedValue("预警级别", "红色"))
    assert warning_level(info).value == "red"
    assert hazard_of("暴雪") == "blizzard" and hazard_of("森林草原火险") == "wildfire"
    assert hazard_of("something else") == "generic"


async def test_exercise_alert_renders_offline_with_marker(tmp_path: Path) -> None:
    publisher = AudioPublisher(tmp_path, AudioConfig(engine_order=("espeak-ng",)))
    renders = await publisher.render(_message(Status.EXERCISE), "loudspeaker", ("zh-CN",))
    assert len(renders) == 1
    result = renders[0]
    assert result.engine == "espeak-ng" and not result.fallback
    assert result.has_marker
    assert result.duration_s > 3
    assert abs(result.loudness_lufs - (-16.0)) <= 1.0
    assert result.files[ExportFormat.MP3].stat().st_size > 1000
    again = await publisher.render(_message(Status.EXERCISE), "loudspeaker", ("zh-CN",))
    assert again[0].key == result.key


async def test_audio_carried_by_the_alert_is_played_first(tmp_path: Path) -> None:
    import base64
    import hashlib
    import subprocess

    from broadcaster.cap import Resource

    wav = tmp_path / "announcement.wav"
    subprocess.run(
        ["espeak-ng", "-v", "cmn", "-w", str(wav), "请注意，这是预先录制的预警广播。"], check=True
    )
    data = wav.read_bytes()
    alert = make_alert()
    resource = Resource(
        resource_desc="recorded announcement",
        mime_type="audio/wav",
        deref_uri=base64.b64encode(data).decode(),
        digest=hashlib.sha1(data).hexdigest(),
    )
    alert.infos[0].resources.append(resource)
    message = AlertMessage(id="a2", alert=alert, rendition=render(alert), expires_at=9e9)
    publisher = AudioPublisher(tmp_path / "cache", AudioConfig(engine_order=("espeak-ng",)))
    renders = await publisher.render(message, "loudspeaker")
    assert renders[0].engine == "supplied"
    resource.digest = "0" * 40  # a digest that does not match: the recording is not trusted
    renders = await publisher.render(message, "loudspeaker")
    assert renders[0].engine == "espeak-ng"
