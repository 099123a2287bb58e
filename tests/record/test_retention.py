"""The record's retention store on a real PostgreSQL, as the retention role."""

from __future__ import annotations

import psycopg
import pytest

from coach.record import record_write, roles
from coach.record.record_write import RecordUtterance
from coach.record.retention import RecordStore
from coach.record.write import apply
from coach.retention import Erasure, KnowsRecordings, Store
from tests.callrecord import T0, call_events
from tests.pg import RecordDb

pytestmark = pytest.mark.integration


async def load(db: RecordDb, *calls: list[dict[str, object]]) -> None:
    async with await psycopg.AsyncConnection.connect(db.url()) as conn, conn.transaction():
        n = 0
        for events in calls:
            for ev in events:
                n += 1
                ev["id"] = f"{T0 + n}-0"
            await apply(conn, events)


def calls_left(db: RecordDb) -> list[str]:
    with psycopg.connect(db.url()) as conn:
        return [r[0] for r in conn.execute("SELECT call_id FROM record.calls ORDER BY 1")]


async def test_purge_and_erase(record_db: RecordDb) -> None:
    await load(
        record_db,
        call_events("old", started_at=T0 - 40 * 86_400_000, recording="/rec/old.wav"),
        call_events("new", started_at=T0, recording="/rec/new.wav"),
        call_events("gone", started_at=T0),
    )
    # Each call also has its transcript of record (second_pass/, schema v4).
    async with await psycopg.AsyncConnection.connect(record_db.url(), autocommit=True) as conn:
        for call_id in ("old", "new", "gone"):
            await record_write.mark_pending(conn, call_id, f"/rec/{call_id}.wav", "es")
            await record_write.store(
                conn,
                call_id,
                [RecordUtterance("customer", 1.0, 2.0, "hola")],
                model="m",
                lang="es",
                audio_s=3.0,
                decode_s=1.0,
            )
    store = await RecordStore.connect(record_db.url(roles.RETENTION))
    try:
        assert isinstance(store, Store) and isinstance(store, KnowsRecordings)
        assert await store.recordings("new") == {"new.wav"}
        removed = await store.purge_before(T0 - 30 * 86_400_000)
        assert [r.call_id for r in removed] == ["old"]
        assert await store.purge_before(T0 - 30 * 86_400_000) == []  # idempotent
        erased = await store.erase(Erasure("gone"))
        assert erased[0].rows == 1
        assert (await store.erase(Erasure("gone")))[0].rows == 0
    finally:
        await store.close()
    assert calls_left(record_db) == ["new"]
    with psycopg.connect(record_db.url()) as conn:
        left = conn.execute("SELECT DISTINCT call_id FROM record.utterances").fetchall()
    assert left == [("new",)]  # the rows of purged and erased calls went with them
    with psycopg.connect(record_db.url()) as conn:
        for table in ("record_transcripts", "record_utterances"):
            rows = conn.execute(f"SELECT DISTINCT call_id FROM record.{table}").fetchall()
            assert rows == [("new",)], table  # the transcript of record too
