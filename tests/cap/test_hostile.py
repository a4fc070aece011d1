"""External-entity attacks: parsing reads no local file, opens no connection, and rejects."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from broadcaster.cap import parse_cap
from broadcaster.cap.parse import safe_parser
from broadcaster.errors import CapError
from tests.conftest import CAP_SAMPLES

SECRET = "s3cr3t-passwd-line"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP listener that records whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def trap_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A secret file and a FIFO: a parser that opens the FIFO blocks until released."""
    secret = tmp_path / "passwd"
    secret.write_text(SECRET)
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    yield secret, fifo
    # Release a reader stuck on the FIFO, if any, so no thread outlives the test.
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(descriptor)


def _hostile(port: int, secret: Path, fifo: Path) -> str:
    return f"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY % remote SYSTEM "http://127.0.0.1:{port}/payload.dtd">
  <!ENTITY leak SYSTEM "file://{secret}">
  <!ENTITY block SYSTEM "file://{fifo}">
  %remote;
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>x</identifier><sender>s</sender><sent>2024-01-01T00:00:00-00:00</sent>
<status>Test</status><msgType>Alert</msgType><scope>Public</scope>
<note>&leak;&block;</note>
</alert>"""


def _parse_in_thread(data: bytes) -> CapError:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            parse_cap(data)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the parser opened the FIFO entity and blocked"
    error = outcome[0]
    assert isinstance(error, CapError), error
    return error


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_entities_neither_read_files_nor_connect(
    encoding: str, listener: socket.socket, trap_files: tuple[Path, Path]
) -> None:
    secret, fifo = trap_files
    text = _hostile(listener.getsockname()[1], secret, fifo)
    data = text.replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding}"?>')
    error = _parse_in_thread(data.encode(encoding))
    assert [(p.path, p.rule) for p in error.problems] == [("/", "xml-dtd-forbidden")]
    assert SECRET not in str(error) and SECRET not in repr(error.problems)
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_parser_settings_alone_load_nothing(
    listener: socket.socket, trap_files: tuple[Path, Path]
) -> None:
    # The second wall, without the DOCTYPE refusal in front of it.
    secret, fifo = trap_files
    data = _hostile(listener.getsockname()[1], secret, fifo).encode()
    local_only = data.replace(b"  %remote;\n", b"")
    outcome: list[object] = []

    def run() -> None:
        for document in (data, local_only):
            try:
                outcome.append(etree.tostring(etree.fromstring(document, safe_parser())))
            except (etree.XMLSyntaxError, CapError) as exc:
                outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the parser opened the FIFO entity and blocked"
    assert isinstance(outcome[0], CapError)  # the remote DTD was refused, not fetched
    assert [p.rule for p in outcome[0].problems] == ["xml-dtd-forbidden"]
    assert isinstance(outcome[1], bytes) and b"&leak;" in outcome[1]
    assert SECRET.encode() not in outcome[1]
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_published_xee_sample_without_doctype_still_rejected() -> None:
    text = (CAP_SAMPLES / "hostile" / "google_xee.xml").read_text()
    start, end = text.index("<!DOCTYPE"), text.index("]>") + 2
    stripped = (text[:start] + text[end:]).replace("&xxe;", "")
    with pytest.raises(CapError) as caught:
        parse_cap(stripped)
    found = {(p.path, p.rule) for p in caught.value.problems}
    assert ("/alert/x", "unexpected-element") in found
    assert ("/alert/y", "unexpected-element") in found


def test_undeclared_entity_is_not_well_formed() -> None:
    data = b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>&xxe;</note></alert>'
    with pytest.raises(CapError) as caught:
        parse_cap(data)
    assert [p.rule for p in caught.value.problems] == ["xml-wellformed"]
