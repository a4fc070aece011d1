"""The AT-modem simulator against an independent AT implementation, gammu, and its answers to
the set, read and test forms of TS 27.005 ``+CNMI`` and TS 27.007 ``+CREG``/``+CGREG``/``+COPS``
as real modems give them.

gammu (Debian package ``gammu``) opens the simulator's pty as it opens a USB modem: it must
identify it, enable incoming-message indications, read the network state, send a 3-segment
UCS-2 message with status reports requested, and read every report back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.gsm.codec import SmsEncoding
from drivers.gsm.errors import GsmError
from drivers.gsm.session import AtSession
from drivers.gsm.simulator import AtModemSimulator
from drivers.gsm.simulator_network import SimulatedNetwork

from .conftest import SimulatorFactory, fast_config
from .pool_support import joined_texts

NUMBER = "+8613800000001"
WARNING = (
    "【乌兰察布市应急管理局】暴雨红色预警：预计未来3小时集宁区、察右前旗降雨量将达100毫米以上，"
    "山洪、泥石流风险极高，请沿河、低洼地区群众立即转移至安全地带，听从村干部指挥。"
    "请远离河道、桥梁和山体，保持手机畅通，随时关注预警信息。如遇险情请拨打119或110求助，并相互转告。"
)


@pytest.fixture
def gammu(tmp_path: Path) -> Callable[..., str]:
    """Run ``gammu`` on the simulator named by ``tmp_path/gammurc``; its output."""
    executable = shutil.which("gammu")
    assert executable, "gammu is missing: scripts/run test installs scripts/apt-packages-test.txt"

    def run(*arguments: str) -> str:
        done = subprocess.run(
            [executable, "-c", str(tmp_path / "gammurc"), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    return run


@pytest.fixture
def simulator(make_simulator: SimulatorFactory, tmp_path: Path) -> AtModemSimulator:
    modem = make_simulator()
    (tmp_path / "gammurc").write_text(
        f"[gammu]\ndevice = {modem.device_path}\nconnection = at\n", encoding="utf-8"
    )
    return modem


@pytest.fixture
def session(simulator: AtModemSimulator) -> Iterator[AtSession]:
    at = AtSession(fast_config(simulator.device_path), lambda _: None, lambda _: None)
    at.open()
    at.command("ATE0")
    yield at
    at.close()


def test_gammu_identifies_sends_three_ucs2_segments_and_reads_every_report(
    simulator: AtModemSimulator, network: SimulatedNetwork, gammu: Callable[..., str]
) -> None:
    network.report_delay = 0.2
    identity = gammu("identify")
    assert re.search(r"Manufacturer\s+: Broadcaster", identity), identity
    assert re.search(r"IMEI\s+: 356938035643809", identity), identity

    monitor = gammu("monitor", "1")
    assert re.search(r"Enabling info about incoming SMS\s+: No error", monitor), monitor
    assert re.search(r"Network state\s+: home network", monitor), monitor
    assert re.search(r"LAC 00A1, CID 0000B2C3", monitor), monitor
    assert re.search(r"GPRS\s+: attached", monitor), monitor

    sent = gammu("sendsms", "TEXT", NUMBER, "-unicode", "-report", "-len", "400", "-text", WARNING)
    assert sent.count("OK, message reference=") == 3, sent
    records = network.records
    assert [(r.sequence, r.total, r.encoding) for r in records] == [
        (s, 3, SmsEncoding.UCS2) for s in (1, 2, 3)
    ]
    assert all(r.status_report_requested for r in records)
    assert list(joined_texts(records).values()) == [WARNING]

    deadline = time.monotonic() + 10
    while len(simulator.reports_sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = gammu("getallsms")
    reports = re.findall(
        r"SMS status report\n(?:.*\n)*?Reference number\s+: (\d+)\n(?:.*\n)*?"
        r"Delivery status\s+: (\w+)",
        stored,
    )
    assert sorted(reports) == sorted((str(r.message_reference), "Delivered") for r in records)


def test_cnmi_lists_its_ranges_and_keeps_the_values_left_out(session: AtSession) -> None:
    assert session.command("AT+CNMI=?") == ["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]
    session.command("AT+CNMI=2,,,1")
    assert session.command("AT+CNMI?") == ["+CNMI: 2,0,0,1,0"]
    session.command("AT+CNMI=2,1")  # <ds> left out: stays 1
    assert session.command("AT+CNMI?") == ["+CNMI: 2,1,0,1,0"]
    for refused in ("AT+CNMI=2,1,0,3", "AT+CNMI=2,1,0,1,0,0", "AT+CNMI=x"):
        with pytest.raises(GsmError, match="303"):
            session.command(refused)
    assert session.command("AT+CNMI?") == ["+CNMI: 2,1,0,1,0"]  # nothing changed
    session.command("ATZ")
    assert session.command("AT+CNMI?") == ["+CNMI: 0,0,0,0,0"]


def test_creg_and_cgreg_report_the_location_when_asked(session: AtSession) -> None:
    assert session.command("AT+CREG?") == ["+CREG: 0,1"]
    session.command("AT+CREG=2")
    assert session.command("AT+CREG?") == ['+CREG: 2,1,"00A1","0000B2C3"']
    session.command("AT+CGREG=1")
    assert session.command("AT+CGREG?") == ["+CGREG: 1,1"]
    session.command("AT+CGREG=2")
    assert session.command("AT+CGREG?") == ['+CGREG: 2,1,"00A1","0000B2C3"']
    assert session.command("AT+CREG=?") == ["+CREG: (0-2)"]
    with pytest.raises(GsmError, match="50"):
        session.command("AT+CREG=3")
    session.command("AT+COPS=3,2")
    assert session.command("AT+COPS?") == ['+COPS: 0,2,"46000"']
