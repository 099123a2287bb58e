"""The per-call search document (`record.call_text`, migrations 0005) on a real PostgreSQL:
kept by the writer as finals arrive (a replay changes nothing, a newer version of an utterance
replaces its words), gone with its call (erasure, retention), backfilled by the migration; and
search on it: words anywhere in the call, phrases only within one utterance, the speaker's
words only, exact cursor paging while calls are added."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from coach.pg_server import EmbeddedPostgres
from coach.record import roles
from coach.record.migrate import current_version, migrate
from coach.record.retention import RecordStore
from coach.record.search import Filters, search
from coach.record.write import apply
from coach.retention import Erasure
from tests.callrecord import T0, call_events
from tests.pg import RecordDb, fresh_db

pytestmark = pytest.mark.integration

_seq = [0]


async def load(db: RecordDb, events: list[dict[str, Any]], *, fresh_ids: bool = True) -> None:
    async with await psycopg.AsyncConnection.connect(db.url()) as conn, conn.transaction():
        for ev in events:
            if fresh_ids or "id" not in ev:
                _seq[0] += 1
                ev["id"] = f"{T0 + _seq[0]}-0"
        await apply(conn, events)


async def ids(db: RecordDb, filters: Filters, **kw: Any) -> list[str]:
    async with await psycopg.AsyncConnection.connect(db.url(roles.READER)) as conn:
        return [c["callId"] for c in (await search(conn, filters, **kw)).calls]


def document(db: RecordDb, call_id: str) -> tuple[str, str] | None:
    """(row version, text) of a call's search document."""
    with psycopg.connect(db.url()) as conn:
        row = conn.execute(
            "SELECT xmin::text, es::text FROM record.call_text WHERE call_id = %s", [call_id]
        ).fetchone()
    return (row[0], row[1]) if row else None


def final(call_id: str, utt: str, text: str, speaker: str = "customer") -> dict[str, Any]:
    return {
        "type": "final",
        "callId": call_id,
        "speaker": speaker,
        "utteranceId": utt,
        "text": text,
        "start": 1.0,
        "end": 3.0,
        "lang": "es",
        "words": [{"w": w, "start": 1.0, "end": 1.5, "p": 0.9} for w in text.split()],
    }


async def test_the_document_follows_the_finals(record_db: RecordDb) -> None:
    events = call_events("c1")
    finals = [e for e in events if e["type"] == "final"]
    await load(record_db, [e for e in events if e["type"] != "final"] + finals[:2])
    assert await ids(record_db, Filters(q="cancelar")) == ["c1"]
    assert await ids(record_db, Filters(q="descuento")) == []  # not said yet
    await load(record_db, finals[2:3])
    assert await ids(record_db, Filters(q="descuento")) == ["c1"]
    before = document(record_db, "c1")
    assert before is not None and "'descuent':" in before[1]
    # A replayed final (same bus id) leaves the document as it was: not even rewritten.
    await load(record_db, finals[2:3], fresh_ids=False)
    assert document(record_db, "c1") == before
    # A newer version of an utterance replaces its words; the older one replayed changes nothing.
    old = final("c1", "u9", "quiero una factura")
    await load(record_db, [old])
    assert await ids(record_db, Filters(q="factura")) == ["c1"]
    await load(record_db, [final("c1", "u9", "quiero un reembolso")])
    await load(record_db, [old], fresh_ids=False)
    assert await ids(record_db, Filters(q="factura")) == []
    assert await ids(record_db, Filters(q="reembolso")) == ["c1"]


async def test_words_anywhere_phrases_within_one_utterance(record_db: RecordDb) -> None:
    await load(record_db, call_events("c1"))
    # "descuento" and "baja" are said in different utterances by the agent: the call matches.
    async with await psycopg.AsyncConnection.connect(record_db.url(roles.READER)) as conn:
        page = await search(conn, Filters(q="descuento tramito"))
    assert [c["callId"] for c in page.calls] == ["c1"]
    matches = page.calls[0]["matches"]
    assert [m["utteranceId"] for m in matches] == ["a2", "a4"]  # each says one of them
    assert page.calls[0]["hits"] == 2
    # The last word of one utterance and the first of the next are no phrase.
    assert await ids(record_db, Filters(q='"ayudarle hola"')) == []
    assert await ids(record_db, Filters(q='"hola quiero"')) == ["c1"]
    # Excluded words count for the whole call.
    assert await ids(record_db, Filters(q="cancelar -descuento")) == []
    assert await ids(record_db, Filters(q="cancelar -factura")) == ["c1"]


async def test_the_speakers_words_only(record_db: RecordDb) -> None:
    await load(record_db, call_events("c1"))
    # "descuento" is said by the agent only.
    assert await ids(record_db, Filters(q="descuento", speaker="customer")) == []
    assert await ids(record_db, Filters(q="descuento", speaker="agent")) == ["c1"]
    assert await ids(record_db, Filters(q='"cancelar mi"', speaker="customer")) == ["c1"]
    # Both say "cancelar"; only the customer says "cancelar mi suscripción" (mi: a stop word, still a position).
    assert await ids(record_db, Filters(q='"cancelar mi suscripcion"', speaker="agent")) == []
    assert await ids(record_db, Filters(q='"cancelar mi suscripcion"', speaker="customer")) == [
        "c1"
    ]
    assert await ids(record_db, Filters(q='"ofrecer un descuento"', speaker="agent")) == ["c1"]


@pytest.mark.parametrize("broad", [False, True])
async def test_cursor_paging_is_exact_while_calls_arrive(record_db: RecordDb, broad: bool) -> None:
    for n in range(7):
        await load(record_db, call_events(f"p{n}", started_at=T0 + n * 1000))
    kw: dict[str, Any] = {"broad_calls": 0} if broad else {}
    seen: list[str] = []
    cursor = None
    async with await psycopg.AsyncConnection.connect(record_db.url(roles.READER)) as conn:
        for page_no in range(10):
            page = await search(conn, Filters(q="cancelar"), limit=2, cursor=cursor, **kw)
            assert page.order == ("recent" if broad else "relevance")
            seen += [c["callId"] for c in page.calls]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            # Newer calls (and, ranked, calls sorting before the cursor) arrive between pages.
            await load(record_db, call_events(f"q{page_no}", started_at=T0 + 99_000 + page_no))
    # Every call that was there once, in order (equal ranks: by call id); none that came later.
    assert seen == [f"p{n}" for n in reversed(range(7))]


async def test_erasure_and_retention_take_the_document(record_db: RecordDb) -> None:
    await load(record_db, call_events("old", started_at=T0 - 40 * 86_400_000))
    await load(record_db, call_events("gone"))
    await load(record_db, call_events("kept"))
    store = await RecordStore.connect(record_db.url(roles.RETENTION))
    try:
        await store.purge_before(T0 - 30 * 86_400_000)
        await store.erase(Erasure("gone"))
    finally:
        await store.close()
    with psycopg.connect(record_db.url()) as conn:
        left = conn.execute("SELECT call_id FROM record.call_text").fetchall()
    assert left == [("kept",)]
    assert await ids(record_db, Filters(q="cancelar")) == ["kept"]


async def test_the_migration_makes_documents_of_existing_calls(
    pg_server: EmbeddedPostgres,
) -> None:
    db = fresh_db(pg_server, migrated=False)
    migrate(db.url(), target=4)
    with psycopg.connect(db.url()) as conn:
        # Rows as the version-4 writer left them (no search documents yet).
        conn.execute("INSERT INTO record.calls (call_id, lang) VALUES ('c1', 'es'), ('c2', 'en')")
        for call_id, utt, speaker, start, text, lang in (
            ("c1", "a0", "agent", 0.0, "Le puedo ofrecer un descuento", "es"),
            ("c1", "c1", "customer", 4.0, "Quiero cancelar mi suscripción", "es"),
            ("c2", "c0", "customer", 0.0, "I want a refund", "en"),
        ):
            conn.execute(
                "INSERT INTO record.utterances (call_id, utterance_id, seq, speaker, start_s,"
                " end_s, text, lang) VALUES (%s, %s, 1, %s, %s, %s, %s, %s)",
                [call_id, utt, speaker, start, start + 3, text, lang],
            )
    assert migrate(db.url()) == [5]
    with psycopg.connect(db.url()) as conn:
        assert current_version(conn) == 5
        rows = conn.execute("SELECT call_id FROM record.call_text ORDER BY 1").fetchall()
    assert rows == [("c1",), ("c2",)]
    assert await ids(db, Filters(q="descuentos")) == ["c1"]
    assert await ids(db, Filters(q="refunds")) == ["c2"]
    assert await ids(db, Filters(q="descuento", speaker="customer")) == []
    assert await ids(db, Filters(q='"cancelar mi suscripcion"', speaker="customer")) == ["c1"]
    # The migrated call takes new finals like any other.
    await load(db, [final("c1", "c9", "prefiero un reembolso")])
    assert await ids(db, Filters(q="reembolso descuento")) == ["c1"]


async def test_ranking_with_a_filter_pages_exactly(record_db: RecordDb) -> None:
    # More calls match the word than pass the agent filter: a ranked search within the filter
    # pages like any other.
    for n in range(6):
        await load(record_db, call_events(f"a{n}", agent="200", started_at=T0 + n * 1000))
    for n in range(9):
        await load(record_db, call_events(f"o{n}", agent="201", started_at=T0 + n * 1000))
    await load(record_db, call_events("a-en", agent="200", lang="en", started_at=T0))
    with psycopg.connect(record_db.url(), autocommit=True) as conn:
        conn.execute("ANALYZE record.calls")
        conn.execute("ANALYZE record.call_text")
    seen: list[str] = []
    cursor = None
    async with await psycopg.AsyncConnection.connect(record_db.url(roles.READER)) as conn:
        while True:
            page = await search(conn, Filters(q="cancelar", agent="200"), limit=4, cursor=cursor)
            assert page.order == "relevance"
            assert all(c["score"] is not None and c["matches"] for c in page.calls)
            seen += [c["callId"] for c in page.calls]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == [f"a{n}" for n in reversed(range(6))]  # equal ranks: by call id
