"""What deliveries sent, stored once per distinct content (schema v18), on both engines: a
batch's deliveries that send one content share one row, later batches and equal copies find
it again, a step without content keeps the one sent, a late content is kept; and a database of
the version before moves each delivery's own content there and reads back what it held."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from broadcaster.delivery import DeliveryState, Transition
from broadcaster.store.db import Database, open_database, schema_files
from broadcaster.store.outbox import Outbox
from broadcaster.store.postgres import pg_schema_files
from broadcaster.testing.pgserver import PgServer
from tests.core.support import seed_outbox

S = DeliveryState
CONTENT_VERSION = 18
"""The schema version that moved contents out of the deliveries."""


def _contents(db: Database, outbox: Outbox) -> dict[int, object]:
    return {r["id"]: r["content"] for r in db.call(outbox.deliveries, "a")}


def _stored(db: Database) -> list[str]:
    rows = db.call(db.query, "SELECT body FROM delivery_contents ORDER BY id")
    return [str(r["body"]) for r in rows]


def test_deliveries_sending_one_content_share_one_row(database: Database) -> None:
    db, outbox = database, Outbox(database)

    seed_outbox(db, "log", ["sending"] * 6)
    play = {"text": "洪水警报", "audio": {"id": "x", "seconds": 12.5}}
    first = [Transition(n, S.ACCEPTED, content=play) for n in (1, 2)]
    first.append(Transition(3, S.ACCEPTED, content=dict(play)))  # an equal copy
    first.append(Transition(4, S.ACCEPTED, content={"text": "other"}))
    assert db.call(outbox.apply, first, 1.0) == 4
    # A later batch with the same content; a step without content keeps the one sent.
    later = [
        Transition(5, S.ACCEPTED, content=json.loads(json.dumps(play))),
        Transition(1, S.CONFIRMED),
    ]
    assert db.call(outbox.apply, later, 2.0) == 2
    assert _contents(db, outbox) == {
        1: play,
        2: play,
        3: play,
        4: {"text": "other"},
        5: play,
        6: None,
    }
    assert sorted(json.loads(body)["text"] for body in _stored(db)) == ["other", "洪水警报"]


def test_a_late_content_is_kept_when_the_delivery_has_none(database: Database) -> None:
    db, outbox = database, Outbox(database)

    seed_outbox(db, "log", ["confirmed"])
    late = Transition(1, S.ACCEPTED, content={"text": "sent"}, provider_ref="r1")
    assert db.call(outbox.apply, [late], 1.0) == 0  # no step: the delivery is final
    rows = db.call(outbox.deliveries, "a")
    assert (rows[0]["state"], rows[0]["content"], rows[0]["provider_ref"]) == (
        "confirmed",
        {"text": "sent"},
        "r1",
    )


OLD_CONTENTS = {1: {"text": "警报", "parts": 2}, 2: {"text": "警报", "parts": 2}, 3: None}


def _text(content: dict[str, object] | None) -> str | None:
    return None if content is None else json.dumps(content, ensure_ascii=False)


@pytest.fixture
def older_database(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database at the version before contents moved, holding alert ``a`` and deliveries 1-3
    with their own contents (:data:`OLD_CONTENTS`): its SQLite path or PostgreSQL URL."""
    rows = [
        (n, f"t{n}", json.dumps({"id": f"t{n}", "channel": "log"}), f"k{n}", _text(content))
        for n, content in OLD_CONTENTS.items()
    ]
    alert = (
        "INSERT INTO alerts (id, sender, identifier, sent, status, msg_type, scope,"
        " effective_at, expires_at, state, priority, channels, origin, cap_version,"
        " raw_xml, document, received_at) VALUES ('a', 's', 'i', 't', 'Actual',"
        " 'Alert', 'Public', 0, 9e9, 'active', 0, '[]', 'test', '1.2', '', '{}', 0)"
    )
    delivery = (
        "INSERT INTO deliveries (id, alert_id, channel, target_id, target, state, priority,"
        " next_attempt_at, expires_at, idempotency_key, updated_at, content)"
        " VALUES ({p}, 'a', 'log', {p}, {p}, 'accepted', 0, 0, 9e9, {p}, 0, {p})"
    )
    if engine == "sqlite":
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path, isolation_level=None)
        for version, sql in schema_files()[: CONTENT_VERSION - 1]:
            conn.executescript(f"{sql}\nPRAGMA user_version = {version};")
        conn.execute(alert)
        conn.executemany(delivery.format(p="?"), rows)
        conn.close()
        yield str(path)
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.fresh()
    with psycopg.connect(url, autocommit=True) as pg:
        for _, sql in pg_schema_files()[: CONTENT_VERSION - 1]:
            pg.execute(sql.encode("utf-8"))
        pg.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        pg.execute("INSERT INTO schema_version (version) VALUES (%s)", (CONTENT_VERSION - 1,))
        pg.execute(alert)
        pg.cursor().executemany(delivery.format(p="%s"), rows)
    yield url
    server.drop(url)


def test_an_older_database_moves_each_content_and_reads_back_the_same(
    engine: str, older_database: str, tmp_path: Path
) -> None:
    url = None if engine == "sqlite" else older_database
    db = open_database(
        Path(older_database if url is None else tmp_path / "unused.db"), url, None, 30.0
    )
    try:
        assert db.schema_version == len(schema_files())
        outbox = Outbox(db)
        assert _contents(db, outbox) == OLD_CONTENTS
        # Moved as they were, one row per delivery that had one; new contents are shared.
        assert len(_stored(db)) == 2
        db.call(outbox.apply, [Transition(3, S.CONFIRMED, content=OLD_CONTENTS[1])], 1.0)
        assert _contents(db, outbox)[3] == OLD_CONTENTS[1]
        assert len(_stored(db)) == 3
    finally:
        db.close()
