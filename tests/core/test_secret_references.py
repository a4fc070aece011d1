"""A secret written as a string is the secret itself, so strings that read like references
(``env:NAME``, ``file:/path``, ``${NAME}``, ``$NAME``) are refused with the form to write: for
every secret of the core and of every installed channel, found by walking their models."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from broadcaster.config import Config, Secret
from channels.loudspeaker.config import LoudspeakerChannelConfig
from tests.conftest import REPO

REFERENCES = {
    "env:BROADCASTER_BOX_SECRET": '{ env = "NAME" }',
    " ENV:box": '{ env = "NAME" }',
    "${MQTT_PASSWORD}": '{ env = "NAME" }',
    "$MQTT_PASSWORD": '{ env = "NAME" }',
    "file:/etc/broadcaster/box-secret": '{ file = "/path" }',
}
LOOSE = ConfigDict(arbitrary_types_allowed=True)
SECRET_WORDS = re.compile(r"secret|password|passwd|token|pin|private_key", re.I)


def _involves(annotation: Any, cls: type) -> bool:
    if annotation is cls:
        return True
    return any(_involves(arg, cls) for arg in typing.get_args(annotation))


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every field of ``model`` and of the models inside it: dotted name → its type."""
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        typ = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        found[prefix + name] = typ
        for inner in _models(field.annotation):
            found |= _fields(inner, f"{prefix}{name}.")
    return found


def _secret_fields() -> dict[str, Any]:
    fields = {f"api.tokens.{k}": t for k, t in _fields(Config).items() if k.startswith("token")}
    for entry in entry_points(group="broadcaster.channels"):
        model = entry.load().config_model
        fields |= {f"{entry.name}.{k}": t for k, t in _fields(model).items()}
    return {k: t for k, t in fields.items() if _involves(t, Secret)}


def test_every_secret_looking_field_of_every_channel_is_a_secret() -> None:
    secrets = _secret_fields()
    assert {
        "loudspeaker.master_secret",
        "loudspeaker.mqtt.password",
        "sms.modems.pin",
        "webhook.secret",
        "webpush.vapid_private_key",
    } <= set(secrets)
    for entry in entry_points(group="broadcaster.channels"):
        for name in _fields(entry.load().config_model):
            leaf = name.rsplit(".", 1)[-1]
            if SECRET_WORDS.search(leaf) and not leaf.endswith(("_file", "subject")):
                assert f"{entry.name}.{name}" in secrets, f"{entry.name}.{name} is not a Secret"


@pytest.mark.parametrize("written", sorted(REFERENCES))
def test_every_secret_refuses_a_reference_written_as_a_string(written: str) -> None:
    for name, typ in _secret_fields().items():
        with pytest.raises(ValidationError) as refused:
            TypeAdapter(typ, config=LOOSE).validate_python(written)
        message = refused.value.errors()[0]["msg"]  # what check-config and serve print
        assert REFERENCES[written] in message, name
        assert "taken as the secret itself" in message, name
        assert written.strip() not in message, name  # whatever it is, it is not echoed


def test_plain_secrets_and_real_references_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOX_SECRET", "from-the-environment")
    adapter = TypeAdapter(_secret_fields()["loudspeaker.master_secret"], config=LOOSE)
    for plain in ("correct horse battery staple", "pa$$word", "us$-100", "environment:x"):
        assert adapter.validate_python(plain).reveal() == plain
    loaded = adapter.validate_python({"env": "BOX_SECRET"})
    assert loaded.reveal() == "from-the-environment"


def _readme_example() -> dict[str, Any]:
    readme = (REPO / "channels" / "loudspeaker" / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    table: dict[str, Any] = tomllib.loads(block)["channels"]["loudspeaker"]
    for elided in ("clips", "attention_clip"):  # their checksums are elided ("…")
        table.pop(elided)
    return table


def test_the_loudspeaker_readme_example_reads_its_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROADCASTER_BOX_SECRET", "box master secret")
    monkeypatch.setenv("MQTT_PASSWORD", "broker password")
    config = LoudspeakerChannelConfig.model_validate(_readme_example())
    assert config.master_secret is not None and config.mqtt is not None
    assert config.master_secret.reveal() == "box master secret"
    assert config.mqtt.password is not None and config.mqtt.password.reveal() == "broker password"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            '[channels.speakers]\ntype = "loudspeaker"\nmaster_secret = "env:BOX_SECRET"\n',
            "channels.speakers.master_secret",
        ),
        ('[[api.tokens]]\nname = "feed"\ntoken = "${FEED_TOKEN}"\n', "api.tokens.0.token"),
    ],
)
def test_check_config_names_the_key_and_the_right_form(
    tmp_path: Path, table: str, key: str
) -> None:
    config = tmp_path / "county.toml"
    config.write_text(table, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "broadcaster", "check-config", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{key}: Value error, this string reads like a reference" in done.stderr
    assert 'write { env = "NAME" }' in done.stderr
    assert "Traceback" not in done.stderr
