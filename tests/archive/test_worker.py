"""The archiver on a real Redis and a real PostgreSQL: a call's events become its record,
a replay of every event changes nothing, out-of-order events keep the newest values, and a
poisoned event is dropped without losing its batch."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from archive.worker import Archiver, group_backlog
from coach.backoff import Backoff
from coach.bus import Bus
from coach.record.write import apply
from coach.tasks import TaskSet
from fakes.poll import until_async
from tests.callrecord import call_events
from tests.pg import RecordDb

pytestmark = pytest.mark.integration


def snapshot(db: RecordDb) -> dict[str, Any]:
    """Everything the record holds, in a comparable form."""
    with psycopg.connect(db.url()) as conn:
        out: dict[str, Any] = {}
        for table, order in (
            ("calls", "call_id"),
            ("utterances", "call_id, utterance_id"),
            ("coaching", "call_id, seq"),
            ("metrics", "call_id, seq"),
        ):
            rows = conn.execute(f"SELECT * FROM record.{table} ORDER BY {order}").fetchall()
            out[table] = [tuple(r) for r in rows]
        return out


def call_row(db: RecordDb, call_id: str) -> dict[str, Any]:
    with psycopg.connect(db.url()) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM record.calls WHERE call_id = %s", [call_id]).fetchone()
        assert row is not None
        return row


def count(db: RecordDb, table: str, call_id: str) -> int:
    with psycopg.connect(db.url()) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM record.{table} WHERE call_id = %s", [call_id]
        ).fetchone()
        return int(row[0]) if row else 0


async def run_until_idle(archiver: Archiver) -> None:
    """Step until a read comes back empty."""
    while await archiver.step():
        pass


async def test_a_call_becomes_its_record(bus: Bus, record_db: RecordDb) -> None:
    await bus.publish_many(
        call_events("c1", agent="200", answered_by="201", recording="/rec/c1.wav")
    )
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    await run_until_idle(archiver)
    await archiver.close()
    row = call_row(record_db, "c1")
    assert row["agent"] == "201" and row["dialled_agent"] == "200"  # who answered owns it
    assert row["lang"] == "es" and row["reason"] == "caller-hangup"
    assert row["recording_path"] == "/rec/c1.wav"
    assert row["disposition"] == "cancellation_requested" and row["sentiment"] == "negative"
    assert row["action_items"] == ["Process the cancellation"]
    assert row["duration_s"] == pytest.approx(30.0)
    assert row["agent_talk_ratio"] == pytest.approx(0.55)
    assert count(record_db, "utterances", "c1") == 6  # finals only; partials are not kept
    assert count(record_db, "coaching", "c1") == 1
    assert count(record_db, "metrics", "c1") == 1
    with psycopg.connect(record_db.url()) as conn:
        words = conn.execute(
            "SELECT words FROM record.utterance_words WHERE call_id = 'c1' AND utterance_id = 'c1'"
        ).fetchone()
    assert words is not None and words[0][0]["w"] == "Hola,"
    lag, pending = await group_backlog(bus, "archive")
    assert (lag, pending) == (0, 0)


async def test_replaying_every_event_changes_nothing(bus: Bus, record_db: RecordDb) -> None:
    await bus.publish_many(call_events("c1") + call_events("c2", agent="300"))
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    await run_until_idle(archiver)
    before = snapshot(record_db)
    # The same events again, through a second group reading from the start (a replay).
    replay = Archiver(bus, record_db.url(), group="replay", block_ms=50)
    await replay.start()
    await run_until_idle(replay)
    assert replay.written == archiver.written > 0
    assert snapshot(record_db) == before
    await archiver.close()
    await replay.close()


async def test_out_of_order_events_keep_the_newest(bus: Bus, record_db: RecordDb) -> None:
    events = await bus.publish_many(call_events("c1", answered_by="201"))
    later_summary = await bus.publish(
        {
            "type": "summary",
            "callId": "c1",
            "text": "Retained after all.",
            "disposition": "retained",
            "actionItems": [],
            "sentiment": "positive",
        }
    )
    async with await psycopg.AsyncConnection.connect(record_db.url()) as conn:
        # Newest first, then everything older (two replicas that raced, a late replay).
        async with conn.transaction():
            await apply(conn, [later_summary])
        async with conn.transaction():
            await apply(conn, list(reversed(events)))
    row = call_row(record_db, "c1")
    assert row["disposition"] == "retained" and row["summary_text"] == "Retained after all."
    assert row["agent"] == "201"  # call.started (older) did not undo call.answered
    # A newer version of an utterance, then the older one replayed: text and words stay new.
    newer = await bus.publish(
        {
            "type": "final",
            "callId": "c1",
            "speaker": "customer",
            "utteranceId": "c1",
            "text": "Quiero darme de baja",
            "start": 5.0,
            "end": 7.0,
            "confidence": 0.95,
            "lang": "es",
            "words": [{"w": "Quiero", "start": 5.0, "end": 5.4, "p": 0.9}],
        }
    )
    older = next(e for e in events if e.get("utteranceId") == "c1" and e["type"] == "final")
    async with await psycopg.AsyncConnection.connect(record_db.url()) as conn:
        for ev in (newer, older, older):
            async with conn.transaction():
                await apply(conn, [ev])
    with psycopg.connect(record_db.url()) as conn:
        assert conn.execute(
            "SELECT u.text, w.words FROM record.utterances u JOIN record.utterance_words w"
            " USING (call_id, utterance_id) WHERE call_id = 'c1' AND utterance_id = 'c1'"
        ).fetchone() == ("Quiero darme de baja", newer["words"])


async def test_a_refused_event_is_dropped_and_its_batch_kept(bus: Bus, record_db: RecordDb) -> None:
    await bus.publish_many(call_events("c1"))
    with psycopg.connect(record_db.url()) as conn:
        # A constraint the data violates, standing for any row the database refuses.
        conn.execute("ALTER TABLE record.coaching ADD CONSTRAINT no_alerts CHECK (kind <> 'alert')")
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    await run_until_idle(archiver)
    await archiver.close()
    assert count(record_db, "utterances", "c1") == 6
    assert count(record_db, "coaching", "c1") == 0
    assert call_row(record_db, "c1")["disposition"] == "cancellation_requested"
    assert (await group_backlog(bus, "archive"))[1] == 0  # acknowledged, not retried for ever


async def test_database_outage_loses_nothing(bus: Bus, record_db: RecordDb) -> None:
    """While the database refuses connections the archiver retries; events wait in the bus."""
    with psycopg.connect(record_db.admin, autocommit=True) as conn:
        conn.execute("ALTER ROLE coach_archive NOLOGIN")
    archiver = Archiver(
        bus, record_db.url(), block_ms=50, backoff=Backoff(initial=0.01, maximum=0.05)
    )
    await archiver.start()
    tasks = TaskSet("tests")
    tasks.spawn(archiver.run(), "archiver")
    try:
        await bus.publish_many(call_events("c1"))

        async def read_not_written() -> bool:
            return (await group_backlog(bus, "archive"))[1] > 0 and not archiver.db_up

        await until_async(read_not_written, what="events read while the db is away")
        with psycopg.connect(record_db.admin, autocommit=True) as conn:
            conn.execute("ALTER ROLE coach_archive LOGIN")

        async def done() -> bool:
            return (await group_backlog(bus, "archive")) == (0, 0) and archiver.written > 0

        await until_async(done, what="archived after the outage")
    finally:
        await tasks.close(5)
        await archiver.close()
    assert count(record_db, "utterances", "c1") == 6
