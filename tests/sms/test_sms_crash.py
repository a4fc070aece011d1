"""SIGKILL the server between two segments of an SMS, with an earlier SMS still waiting for its
status reports; the network answers while the server is down; restart it. Every recipient gets
each segment once, the cut message is completed so the phone joins it, and every delivery ends
confirmed by reports, early, stored or late. And SIGKILL it right after the last segment, while
reports stream in, with one recipient's reports lost by the network: every delivery settles
within the confirmation timeout of the restart, never waiting for its alert to expire.

The AT-modem simulator runs in this process on a real pty; the server is a real
``broadcaster serve`` process that opens it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from broadcaster.cap.serialize import to_xml
from drivers.gsm.simulator_network import (
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)
from tests.processes import ServeProcess, api, wait_until

from .conftest import SimulatorFactory
from .oracle import received_messages
from .test_sms_service import bilingual_alert, group, numbers

TOKEN = "sms-crash-token-7"


def recorded_segments(server: ServeProcess) -> int:
    """Segments in the SMS channel's submission records, read from the server's store file."""
    path = server.data_dir / "broadcaster.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT value FROM channel_records WHERE channel = 'sms' AND key LIKE 'submission:%'"
        ).fetchall()
    conn.close()
    return sum(len(json.loads(value)["segments"]) for (value,) in rows)


@pytest.mark.slow
def test_sigkill_between_segments_sends_nothing_twice_and_late_reports_confirm(
    make_simulator: SimulatorFactory,
    network: SimulatedNetwork,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = 3600  # reports only when the test says so
    recipients = numbers(0, 3)

    def stall_at_the_fourth_segment(record: NetworkRecord) -> None:
        if len(network.records) == 4:
            simulator.faults.stall = True  # answers this +CMGS, ignores the next segment

    network.listeners.append(stall_at_the_fourth_segment)
    server = sms_server(tmp_path, simulator.device_path, recipients, confirm_timeout=120)
    processes.append(server.start())
    alert_id = api(server.base, "/api/v1/alerts", TOKEN, to_xml(bilingual_alert("sms-sigkill")))[
        "id"
    ]
    wait_until(lambda: recorded_segments(server) == 4, "the fourth segment's record")
    processes[0].send_signal(signal.SIGKILL)
    processes[0].wait(timeout=10)

    before = network.records
    assert len(before) == 4 and before[0].number == before[2].number != before[3].number
    whole, cut = before[0].number, before[3].number
    for earlier in before[:3]:  # the network reports while the server is down: the modem keeps them
        simulator.emit_report(earlier, 0x00)
    network.listeners.clear()
    network.report_delay = 0.1  # what is sent from now on is reported at once
    simulator.faults.stall = False
    processes.append(server.start())
    simulator.emit_report(before[3], 0x00)  # a late report for a segment of the killed run

    body = server.completed(alert_id, timeout=30)
    processes[1].send_signal(signal.SIGTERM)
    assert processes[1].wait(timeout=20) == 0

    assert body["summary"] == {"sms": {"confirmed": 3}}, body["summary"]
    records = network.records
    assert Counter((r.number, r.sequence) for r in records) == Counter(
        {(n, s): 1 for n in recipients for s in (1, 2, 3)}
    )
    for number in recipients:
        assert len({r.concat_reference for r in records if r.number == number}) == 1
    received = received_messages(records)
    assert all(len(received[n]) == 1 for n in recipients)
    assert received[cut] == received[whole]
    assert simulator.stored_reports == {}


@pytest.mark.slow
def test_sigkill_while_reports_stream_in_settles_every_sms_within_the_confirmation_timeout(
    make_simulator: SimulatorFactory,
    network: SimulatedNetwork,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    simulator = make_simulator("sim0")
    recipients = numbers(0, 4)
    *reported, lost = recipients
    network.report_delay = 0.05  # the kill comes while the modem takes in the reports
    network.rules[lost] = RecipientRule(RecipientBehaviour.SILENT)
    timeout = 6
    server = sms_server(tmp_path, simulator.device_path, recipients, confirm_timeout=timeout)
    processes.append(server.start())
    alert_id = api(server.base, "/api/v1/alerts", TOKEN, to_xml(bilingual_alert("sms-reports")))[
        "id"
    ]
    wait_until(lambda: recorded_segments(server) == 12, "every segment's record")
    processes[0].send_signal(signal.SIGKILL)  # reports of the last messages are still coming
    processes[0].wait(timeout=10)
    network.rules.clear()  # from now on the network reports every message

    restarted = time.monotonic()
    processes.append(server.start())
    body = server.completed(alert_id, timeout=timeout + 20)
    took = time.monotonic() - restarted
    processes[1].send_signal(signal.SIGTERM)
    assert processes[1].wait(timeout=20) == 0

    assert body["summary"] == {"sms": {"confirmed": 4}}, body["summary"]
    assert took < timeout + 8, f"settled {took:.1f} s after the restart"
    sent = Counter((r.number, r.sequence) for r in network.records)
    # reports of the killed run (handled, kept by the modem or late) confirm without a copy;
    # the message whose reports the network lost is sent again after the timeout
    assert sent == Counter(
        {(n, s): 1 if n in reported else 2 for n in recipients for s in (1, 2, 3)}
    )
    assert simulator.stored_reports == {}


def sms_server(
    tmp_path: Path, device: str, recipients: list[str], *, confirm_timeout: float
) -> ServeProcess:
    """A ``broadcaster serve`` configuration with one SMS channel on one simulated modem."""
    channels = f"""[channels.sms]
type = "sms"
concurrency = 1
confirm_timeout_seconds = {confirm_timeout}
[[channels.sms.modems]]
name = "m0"
port = "{device}"
command_timeout_seconds = 10
reconnect_interval_seconds = 0.05
"""
    return ServeProcess(tmp_path, [group("t", recipients)], channels, TOKEN)
