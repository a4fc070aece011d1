"""One modem against the simulator over a real pty: set-up, sends, reports, errors, faults."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from drivers.gsm.config import ReportMode
from drivers.gsm.errors import (
    GsmConfigError,
    GsmModemFaultError,
    GsmNetworkError,
    GsmPermanentError,
    GsmPortError,
    GsmProtocolError,
    GsmRejectedError,
    GsmRetryableError,
    GsmTimeoutError,
    cms_error,
)
from drivers.gsm.modem import GsmModemClient
from drivers.gsm.pdu import StatusReportPdu, SubmitPdu, encode_status_report, encode_submit
from drivers.gsm.simulator import ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    STATUS_DELIVERED,
    STATUS_REMOTE_BUSY,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)

from .conftest import SimulatorFactory, fast_config

NUMBER = "+8613800000001"


class Recorder:
    """Collects what the client reports from its threads."""

    def __init__(self) -> None:
        self.reports: queue.Queue[StatusReportPdu] = queue.Queue()
        self.lost: queue.Queue[GsmPortError] = queue.Queue()

    def on_report(self, name: str, report: StatusReportPdu) -> None:
        self.reports.put(report)

    def on_lost(self, name: str, error: GsmPortError) -> None:
        self.lost.put(error)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clients() -> Iterator[list[GsmModemClient]]:
    made: list[GsmModemClient] = []
    yield made
    for client in made:
        client.close()


def client_for(
    port: str, recorder: Recorder, clients: list[GsmModemClient], **settings: object
) -> GsmModemClient:
    client = GsmModemClient(fast_config(port, **settings), recorder.on_report, recorder.on_lost)
    clients.append(client)
    return client


def pdu(text: str = "hello", **options: bool) -> SubmitPdu:
    return encode_submit(NUMBER, text, **options)[0]  # type: ignore[arg-type]


def test_connect_sets_pdu_mode_without_reports_and_reads_signal(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(rssi=99, registration=5)
    client = client_for(simulator.device_path, recorder, clients)
    signal = client.connect()
    assert signal.rssi is None and signal.registered and signal.registration == 5
    assert "AT+CMGF=0" in simulator.commands_seen
    assert "AT+CNMI=2,1,0,0,0" in simulator.commands_seen
    assert client.port_settings["rtscts"] is False
    assert client.port_settings["dsrdtr"] is False


def test_message_references_come_from_the_modem_and_wrap(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(first_reference=254)
    client = client_for(simulator.device_path, recorder, clients)
    client.connect()
    assert [client.send_pdu(pdu()) for _ in range(3)] == [254, 255, 0]
    assert [r.text for r in simulator.network.records] == ["hello"] * 3


@pytest.mark.parametrize("mode", [ReportMode.STORED, ReportMode.DIRECT])
def test_status_reports_arrive_in_both_modes(
    mode: ReportMode,
    make_simulator: SimulatorFactory,
    network: SimulatedNetwork,
    recorder: Recorder,
    clients: list[GsmModemClient],
) -> None:
    network.rules[NUMBER] = RecipientRule(RecipientBehaviour.TEMPORARY_THEN_DELIVER)
    simulator = make_simulator()
    client = client_for(
        simulator.device_path, recorder, clients, status_reports=True, report_mode=mode
    )
    client.connect()
    reference = client.send_pdu(pdu(request_status_report=True))
    first = recorder.reports.get(timeout=5)
    second = recorder.reports.get(timeout=5)
    assert [first.status, second.status] == [STATUS_REMOTE_BUSY, STATUS_DELIVERED]
    assert {first.message_reference, second.message_reference} == {reference}
    assert first.recipient == NUMBER
    assert f"AT+CNMI=2,1,0,{mode.cnmi_ds},0" in simulator.commands_seen
    if mode is ReportMode.STORED:
        client.signal()  # one more round trip: the report reads are done by now
        assert simulator.stored_reports == {}
        assert "AT+CMGD=2" in simulator.commands_seen


def test_split_cds_header_and_pdu_make_one_report(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(split_cds=True))
    client = client_for(
        simulator.device_path,
        recorder,
        clients,
        status_reports=True,
        report_mode=ReportMode.DIRECT,
    )
    client.connect()
    reference = client.send_pdu(pdu(request_status_report=True))
    assert recorder.reports.get(timeout=5).message_reference == reference


def test_network_errors_are_retryable_and_invalid_pdus_permanent(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cms_errors=[331, 332, 500]))
    client = client_for(simulator.device_path, recorder, clients)
    client.connect()
    for code in (331, 332, 500):
        with pytest.raises(GsmNetworkError) as caught:
            client.send_pdu(pdu())
        assert caught.value.code == code
    good = pdu()
    with pytest.raises(GsmRejectedError, match="304"):
        client.send_pdu(SubmitPdu(good.hex, good.tpdu_length + 1, good.segment))
    assert client.send_pdu(good) == 0
    assert len(simulator.network.records) == 1


def test_a_modem_answering_garbage_gives_a_protocol_error(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(garbage=True))
    client = client_for(simulator.device_path, recorder, clients, command_timeout=0.2)
    with pytest.raises(GsmProtocolError, match="garbage"):
        client.connect()
    assert not client.connected


def test_a_modem_that_never_answers_times_out(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(stall=True))
    client = client_for(simulator.device_path, recorder, clients, command_timeout=0.1)
    with pytest.raises(GsmTimeoutError, match="never answers"):
        client.connect()
    assert not client.connected


def test_a_stall_mid_send_times_out(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator()
    client = client_for(simulator.device_path, recorder, clients, prompt_timeout=0.1)
    client.connect()
    simulator.faults.stall = True
    with pytest.raises(GsmTimeoutError, match="no answer"):
        client.send_pdu(pdu())


def test_the_port_vanishing_mid_send_is_a_port_error(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(close_on_send=True))
    client = client_for(simulator.device_path, recorder, clients)
    client.connect()
    with pytest.raises(GsmPortError):
        client.send_pdu(pdu())
    assert isinstance(recorder.lost.get(timeout=5), GsmPortError)
    assert not client.connected
    assert simulator.network.records == []


def test_a_missing_port_is_a_port_error(recorder: Recorder, clients: list[GsmModemClient]) -> None:
    client = client_for("/dev/does-not-exist-gsm", recorder, clients)
    with pytest.raises(GsmPortError, match="cannot open"):
        client.connect()


def test_sim_pin_is_entered_or_reported(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    locked = make_simulator("locked", pin="1234")
    with pytest.raises(GsmConfigError, match="needs a PIN"):
        client_for(locked.device_path, recorder, clients).connect()
    with pytest.raises(GsmConfigError, match="refused the PIN"):
        client_for(locked.device_path, recorder, clients, pin="9999").connect()
    client_for(locked.device_path, recorder, clients, pin="1234").connect()
    assert locked.pin_unlocked


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": ""}, "modem name"),
        ({"baudrate": 0}, "baudrate"),
        ({"pin": "12"}, "pin"),
        ({"command_timeout": 0}, "command_timeout"),
        ({"min_send_interval": -1}, "min_send_interval"),
    ],
)
def test_bad_modem_config_is_rejected(settings: dict[str, object], message: str) -> None:
    name = str(settings.pop("name", "m1"))
    with pytest.raises(GsmConfigError, match=message):
        fast_config("/dev/null", name, **settings)


def test_reports_kept_while_disconnected_are_read_at_connect(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator()
    moment = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    kept = StatusReportPdu(42, NUMBER, moment, moment, STATUS_DELIVERED)
    simulator.store_report(*encode_status_report(kept))
    client = client_for(simulator.device_path, recorder, clients, status_reports=True)
    client.connect()
    assert recorder.reports.get(timeout=5) == kept
    client.signal()
    assert simulator.stored_reports == {}


def test_a_garbage_status_report_is_counted_and_the_next_one_still_arrives(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator()
    client = client_for(
        simulator.device_path,
        recorder,
        clients,
        status_reports=True,
        report_mode=ReportMode.DIRECT,
    )
    client.connect()
    simulator.send_line("+CDS: 25")
    simulator.send_line("0006ZZ-not-a-pdu")
    reference = client.send_pdu(pdu(request_status_report=True))
    assert recorder.reports.get(timeout=5).message_reference == reference
    assert client.garbage_lines == 1


@pytest.mark.parametrize("line", ["RING", '+CMTI: "SM",3', "+CREG: 1", "^BOOT:1,0,0,0,0"])
def test_unsolicited_lines_mid_send_do_not_disturb_the_reply(
    line: str, make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator(first_reference=9)
    client = client_for(simulator.device_path, recorder, clients)
    client.connect()
    simulator.faults.unsolicited_after_prompt = line
    assert client.send_pdu(pdu()) == 9
    assert client.signal().registered


def test_the_service_centre_is_set_when_configured(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator()
    client_for(simulator.device_path, recorder, clients, smsc="+8613800471500").connect()
    assert 'AT+CSCA="+8613800471500",145' in simulator.commands_seen
    with pytest.raises(GsmConfigError, match="smsc"):
        fast_config(simulator.device_path, smsc="13800471500")


def test_a_second_driver_cannot_share_the_port(
    make_simulator: SimulatorFactory, recorder: Recorder, clients: list[GsmModemClient]
) -> None:
    simulator = make_simulator()
    client_for(simulator.device_path, recorder, clients).connect()
    with pytest.raises(GsmPortError, match="lock"):
        client_for(simulator.device_path, recorder, clients, name="m2").connect()


def test_the_pin_is_not_shown_in_the_config_repr() -> None:
    assert "1234" not in repr(fast_config("/dev/ttyUSB0", pin="1234"))


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        (331, GsmNetworkError, True),
        (332, GsmNetworkError, True),
        (500, GsmNetworkError, True),
        (330, GsmModemFaultError, True),
        (310, GsmModemFaultError, True),
        (304, GsmRejectedError, False),
        (321, GsmRejectedError, False),
    ],
)
def test_cms_codes_map_onto_the_tree(code: int, kind: type, retryable: bool) -> None:
    error = cms_error(code, "AT+CMGS=20")
    assert type(error) is kind and error.code == code
    assert isinstance(error, GsmRetryableError) is retryable
    assert isinstance(error, GsmPermanentError) is not retryable
    assert str(code) in str(error)
