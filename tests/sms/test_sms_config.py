"""Channel configuration, capabilities per instance, preview, health and probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broadcaster.config import MASK
from broadcaster.delivery import Target
from broadcaster.errors import (
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    PluginError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from broadcaster.plugins import build_channel, load_plugin, masked_config
from broadcaster.testing.contract import channel_context, contract_message
from channels.sms import SmsChannel, SmsChannelConfig, channel_error
from drivers.gsm import (
    GsmError,
    GsmInvalidNumberError,
    GsmMessageTooLongError,
    GsmNoModemError,
    GsmPortError,
    GsmProtocolError,
    GsmRejectedError,
    GsmTimeoutError,
)
from drivers.gsm.errors import cms_error
from tests.core.support import make_config

from .conftest import SimulatorFactory, modem_table, sms_channel_table


def build(tmp_path: Path, table: dict[str, Any]) -> SmsChannel:
    channel = build_channel("sms", table, channel_context(tmp_path))
    assert isinstance(channel, SmsChannel)
    return channel


def test_the_entry_point_loads_the_channel() -> None:
    assert load_plugin("sms") is SmsChannel


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"type": "sms"}, "at least one modem is needed"),
        (
            {"type": "sms", "modems": [{"name": "a", "port": "/dev/x"}] * 2},
            "duplicate names",
        ),
        (
            {"type": "sms", "modems": [{"name": "a", "port": "/x"}, {"name": "b", "port": "/x"}]},
            "share one port",
        ),
        (
            {"type": "sms", "modems": [{"name": "a b", "port": "/dev/x"}]},
            "channels.sms.modems.0.name",
        ),
        ({"type": "sms", "simulate": True, "max_segments": 0}, "channels.sms.max_segments"),
        ({"type": "sms", "simulate": True, "templates": {"zh": "{headline}"}}, "{title}"),
        (
            {"type": "sms", "modems": [{"name": "a", "port": "/dev/x", "pin": "12"}]},
            "pin must be 4-8 digits",
        ),
        ({"type": "sms", "simulate": True, "max_segments": 8}, "segment_limit"),
        ({"type": "sms", "simulate": True, "colour": "red"}, "channels.sms.colour"),
        (
            {"type": "sms", "simulate": True, "modems": [{"name": "a", "port": "/dev/x"}]},
            "remove modems or simulate",
        ),
    ],
)
def test_bad_configuration_is_one_clear_error(
    tmp_path: Path, table: dict[str, Any], message: str
) -> None:
    with pytest.raises(PluginError, match="invalid channel configuration") as err:
        build_channel("sms", table, channel_context(tmp_path))
    assert message in str(err.value)


def test_the_sim_pin_is_masked_in_a_config_dump(tmp_path: Path) -> None:
    table = {"type": "sms", "modems": [{"name": "a", "port": "/dev/x", "pin": "4321"}]}
    dumped = masked_config(make_config(tmp_path, {"sms": table}, []))
    assert dumped["channels"]["sms"]["modems"][0]["pin"] == MASK
    assert "4321" not in json.dumps(dumped) and "4321" not in repr(SmsChannelConfig(**table))


def test_capabilities_follow_status_reports_per_instance(tmp_path: Path) -> None:
    confirming = build(tmp_path, {"type": "sms", "simulate": True})
    silent = build(tmp_path, {"type": "sms", "simulate": True, "status_reports": False})
    assert confirming.capabilities.confirms and not silent.capabilities.confirms
    assert SmsChannel.capabilities.confirms
    assert silent.config.pool_config().status_reports is False


async def test_preview_shows_text_segments_and_missing_reports(tmp_path: Path) -> None:
    channel = build(
        tmp_path, {"type": "sms", "simulate": True, "status_reports": False, "max_segments": 2}
    )
    preview = await channel.preview(contract_message(), [])
    text = "【测试】【测试】大风黄色预警\n阵风8级。\n请注意防范。"
    sms = {"language": "zh-CN", "text": text, "segments": 1, "encoding": "UCS-2"}
    assert preview.contents == (sms,)
    assert (preview.targets, preview.unit) == (0, "recipients")
    assert preview.counts == {"segments": 1, "segment_budget": 2}
    assert any("acceptance by the network is the final state" in n for n in preview.notes)


async def test_health_and_probe_report_modems_and_send_nothing(
    tmp_path: Path, make_simulator: SimulatorFactory
) -> None:
    simulator = make_simulator("sim0")
    channel = build(
        tmp_path,
        sms_channel_table([modem_table("m0", simulator.device_path)], status_reports=False),
    )
    assert (await channel.health()).detail == "not running"
    await channel.start()
    try:
        health = await channel.health()
        good = await channel.probe(
            Target(id="g", channel="sms", name="g", address="+8613800471001")
        )
        bad = await channel.probe(Target(id="b", channel="sms", name="b", address="+86138,x"))
        empty = await channel.probe(Target(id="e", channel="sms", name="e"))
    finally:
        await channel.stop()
    assert health.ok and health.devices["m0"]["state"] == "ready"
    assert "no status reports configured" in health.detail
    assert good.ok and good.detail.startswith("1 numbers; 1 of 1 modems ready")
    assert not bad.ok and "entry 2: 'x' is not a phone number" in bad.detail and not empty.ok
    assert simulator.network.records == []
    assert not any(c.startswith("AT+CMGS") for c in simulator.commands_seen)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (GsmInvalidNumberError("'x' is not a phone number"), TargetRejectedError),
        (GsmMessageTooLongError("too long"), UnsupportedError),
        (GsmRejectedError(304, "AT+CMGS=20"), PermanentError),
        (cms_error(331, "AT+CMGS=20"), RetryableError),
        (GsmTimeoutError("no answer"), DeviceTimeoutError),
        (GsmNoModemError("no modem is ready"), DeviceUnavailableError),
        (GsmPortError("gone"), DeviceUnavailableError),
        (GsmProtocolError("garbage"), RetryableError),
    ],
)
def test_driver_errors_map_onto_the_core_tree(error: GsmError, expected: type[Exception]) -> None:
    mapped = channel_error(error, "+8613800471001")
    assert type(mapped) is expected
    assert str(mapped).startswith("SMS to +8613800471001: ") and str(error) in str(mapped)
