"""History search on a real PostgreSQL: language-aware full text (stemming, accents, phrases,
speaker), structured filters, snippets with the second of the hit, and cursor paging."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from coach.record.search import CursorError, Filters, search, segments
from coach.record.write import apply
from tests.callrecord import LINES_ES, T0, call_events, words
from tests.pg import RecordDb

pytestmark = pytest.mark.integration

_seq = [0]


async def load(db: RecordDb, events: list[dict[str, object]]) -> None:
    async with await psycopg.AsyncConnection.connect(db.url()) as conn, conn.transaction():
        for ev in events:
            _seq[0] += 1
            ev["id"] = f"{T0 + _seq[0]}-0"
        await apply(conn, events)


async def find(db: RecordDb, filters: Filters, **kw: object):
    async with await psycopg.AsyncConnection.connect(db.url("coach_reader")) as conn:
        return await search(conn, filters, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def loaded(record_db: RecordDb) -> RecordDb:
    await load(record_db, call_events("es1", agent="200", started_at=T0))
    await load(
        record_db,
        call_events(
            "es2",
            agent="201",
            started_at=T0 + 60_000,
            disposition="retained",
            sentiment="positive",
            rule="other-rule",
        ),
    )
    await load(
        record_db,
        call_events(
            "en1",
            agent="200",
            lang="en",
            started_at=T0 + 120_000,
            disposition="resolved",
            sentiment="neutral",
        ),
    )
    return record_db


async def test_phrase_search_finds_the_call_at_the_second_said(loaded: RecordDb) -> None:
    page = await find(loaded, Filters(q='"cancelar mi suscripcion"', agent="200"))
    assert [c["callId"] for c in page.calls] == ["es1"]
    (match,) = page.calls[0]["matches"]
    i = 1  # the customer's line with the phrase
    start, end = i * 5.0, i * 5.0 + 4.0
    said = words(LINES_ES[i][1], start, end)
    assert match["speaker"] == "customer" and match["start"] == start
    assert match["at"] == next(w["start"] for w in said if w["w"] == "cancelar")
    hits = [s["text"] for s in match["snippet"] if s["hit"]]
    assert "cancelar" in hits and "suscripción" in hits  # highlighted as said, accent and all


async def test_stemming_and_accents_by_the_calls_language(loaded: RecordDb) -> None:
    # "cancelamos" stems with "cancelar"; "suscripcion" matches "suscripción". (Accents go
    # before stemming, so "cancelaría" and "cancelaria" are one stem, not the stem of "cancelar".)
    assert {
        c["callId"] for c in (await find(loaded, Filters(q="cancelamos suscripcion"))).calls
    } == {"es1", "es2"}
    # English stemming on the English call: "refunds" finds "refund", "charged" finds "charge".
    assert [c["callId"] for c in (await find(loaded, Filters(q="refunds charged"))).calls] == [
        "en1"
    ]
    # Not a phrase: the words in another order still match; as a phrase they do not.
    assert (await find(loaded, Filters(q='"suscripción cancelar"'))).calls == []


async def test_speaker_filter(loaded: RecordDb) -> None:
    # "descuento" is only ever said by the agent.
    assert (await find(loaded, Filters(q="descuento", speaker="customer"))).calls == []
    assert len((await find(loaded, Filters(q="descuento", speaker="agent"))).calls) == 2


async def test_structured_filters(loaded: RecordDb) -> None:
    async def ids(**kw: object) -> set[str]:
        return {c["callId"] for c in (await find(loaded, Filters(**kw))).calls}  # type: ignore[arg-type]

    assert await ids() == {"es1", "es2", "en1"}
    assert await ids(agent="201") == {"es2"}
    assert await ids(dispositions=("retained", "resolved")) == {"es2", "en1"}
    assert await ids(sentiments=("negative",)) == {"es1"}
    assert await ids(rules=("other-rule",)) == {"es2"}
    assert await ids(min_duration=25.0) == {"es1", "es2"}  # the English call is 20 s
    assert await ids(max_duration=25.0) == {"en1"}
    assert await ids(since=datetime.fromtimestamp((T0 + 60_000) / 1000, tz=UTC)) == {"es2", "en1"}
    assert await ids(min_agent_talk_ratio=0.5, max_agent_talk_ratio=0.6) == {"es1", "es2", "en1"}
    assert await ids(min_agent_talk_ratio=0.6) == set()
    assert await ids(min_silence=2.0) == set()
    assert await ids(q="cancelar", dispositions=("retained",)) == {"es2"}


async def test_cursor_paging_visits_every_call_once(record_db: RecordDb) -> None:
    for n in range(7):
        await load(record_db, call_events(f"p{n}", started_at=T0 + n * 1000))
    for filters in (Filters(), Filters(q="cancelar")):
        seen: list[str] = []
        cursor = None
        while True:
            page = await find(record_db, filters, limit=2, cursor=cursor)
            seen += [c["callId"] for c in page.calls]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == [f"p{n}" for n in range(7)]
        assert len(seen) == 7
    newest_first = [c["callId"] for c in (await find(record_db, Filters(), limit=3)).calls]
    assert newest_first == ["p6", "p5", "p4"]
    page = await find(record_db, Filters(), limit=2)
    with pytest.raises(CursorError):
        await find(record_db, Filters(q="otra"), cursor=page.next_cursor)
    with pytest.raises(CursorError):
        await find(record_db, Filters(), cursor="not-a-cursor")


async def test_a_broad_query_lists_matching_calls_newest_first(record_db: RecordDb) -> None:
    for n in range(5):
        await load(record_db, call_events(f"b{n}", started_at=T0 + n * 1000))
    await load(record_db, call_events("en", lang="en", started_at=T0 + 9000))
    ranked = await find(record_db, Filters(q="cancelar"))
    assert ranked.order == "relevance"
    seen: list[str] = []
    cursor = None
    while True:
        # broad_calls=0: every query counts as broad (the threshold is what is under test).
        page = await find(record_db, Filters(q="cancelar"), limit=2, cursor=cursor, broad_calls=0)
        assert page.order == "recent"
        seen += [c["callId"] for c in page.calls]
        assert all(c["matches"] for c in page.calls)  # snippets and seconds as when ranked
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["b4", "b3", "b2", "b1", "b0"]  # newest first; the English call has no match
    # A cursor keeps its order even if the estimate would now say otherwise.
    first = await find(record_db, Filters(q="cancelar"), limit=2, broad_calls=0)
    rest = await find(record_db, Filters(q="cancelar"), limit=2, cursor=first.next_cursor)
    assert rest.order == "recent" and [c["callId"] for c in rest.calls] == ["b2", "b1"]


def test_segments_split_the_markers() -> None:
    assert segments("a \ue000b\ue001 c") == [
        {"text": "a ", "hit": False},
        {"text": "b", "hit": True},
        {"text": " c", "hit": False},
    ]
