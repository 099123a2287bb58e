"""The streamed knowledge answer (orchestrator/kb_answer.py): the partial answer read from
growing JSON, the event rate bound, and, through the real engine, real Redis and the fake LLM
server speaking SSE a token at a time: events in order with growing text under the card's
cardId, a final `done` with the cites, an uncited answer taken back, a cut stream retried and
one that keeps failing ended cleanly."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from coach.bus import Bus
from coach.events import validate
from coach.knowledge import KnowledgeBase
from coach.knowledge.report import KBReport
from coach.knowledge.settings import KBSettings
from coach.knowledge.shown import ShownLog
from fakes.fake_llm import FakeLLM
from fakes.poll import until_async
from orchestrator.engine import Orchestrator
from orchestrator.kb_answer import AnswerStream, partial_answer
from orchestrator.llm.thread import LLMThread
from orchestrator.playbook_store import PlaybookStore
from orchestrator.settings import PLAYBOOK_DIR, LLMSettings, Settings

pytestmark = pytest.mark.integration

MARKER = "PASSAGES (data)"
PENALTY = "baja#penalizacion-por-permanencia"
ANSWER = "Paga 10 € por cada mes que falte hasta cumplir los 12 meses de permanencia."
QUESTION = "¿Cuánto pago si me doy de baja antes de los doce meses de permanencia?"
KB_FILES = {
    "baja.md": "# Baja\n\n## Penalización por permanencia\n\nSi se da de baja antes de cumplir "
    "los 12 meses de permanencia paga 10 € por cada mes que falte.\n\n## Devolución del router\n\n"
    "El router se devuelve en 30 días en una tienda; si no, se cobran 60 €.\n",
}


# -- unit: the partial answer and the rate bound ---------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("", ""),
        ('{"ans', ""),
        ('{"answer": "', ""),
        ('{"answer": "Paga 10', "Paga 10"),
        ('{"answer": "Paga 10 \\u20ac', "Paga 10 €"),
        ('{"answer": "Dice \\"no', 'Dice "no'),
        ('{"answer": "Paga.", "cites": ["a', "Paga."),
        ("Pregunta al cliente", ""),  # not JSON: only the final event can tell
    ],
)
def test_the_answer_is_read_from_incomplete_json(raw: str, text: str) -> None:
    assert partial_answer(raw) == text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stream(sent: list[dict[str, Any]], clock: Clock, interval_s: float = 0.2) -> AnswerStream:
    async def publish(event: dict[str, Any]) -> None:
        validate(event)  # every event the stream makes passes the contract
        sent.append(event)

    card = {
        "type": "coach", "callId": "c1", "kind": "knowledge", "severity": "info",
        "source": "kb", "text": "Si se da de baja paga 10 €.", "cardId": "kb-1",
        "doc": {"id": PENALTY, "title": "Baja"}, "score": 0.8, "refs": ["u1"],
    }  # fmt: skip
    return AnswerStream(card, {PENALTY}, publish, interval_s=interval_s, clock=clock)


def _tokens(reply: str) -> list[str]:
    """The cumulative text after each word, as the client's on_text sees it."""
    words = reply.split(" ")
    return [" ".join(words[: i + 1]) for i in range(len(words))]


@pytest.mark.unit
async def test_partials_are_cumulative_and_bounded_in_rate() -> None:
    sent: list[dict[str, Any]] = []
    clock = Clock()
    stream = _stream(sent, clock, interval_s=0.2)
    reply = json.dumps({"answer": ANSWER, "cites": [PENALTY]}, ensure_ascii=False)
    for text in _tokens(reply):
        await stream.update(text)
        clock.now += 0.05  # a token every 50 ms: one event in four
    texts = [e["answer"]["text"] for e in sent]
    assert texts[0] == "Paga"  # the first words go out at once
    assert 3 <= len(sent) <= len(_tokens(reply)) // 4 + 1
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(texts))
    assert all(
        e["answer"] == {"text": e["answer"]["text"], "done": False, "cites": []} for e in sent
    )
    assert await stream.finish(reply, "fake/m") == "answer"
    assert sent[-1]["answer"] == {"text": ANSWER, "done": True, "cites": [PENALTY]}
    assert sent[-1]["model"] == "fake/m" and {e["cardId"] for e in sent} == {"kb-1"}


@pytest.mark.unit
async def test_an_uncited_answer_takes_back_what_was_shown() -> None:
    sent: list[dict[str, Any]] = []
    clock = Clock()
    stream = _stream(sent, clock, interval_s=0.0)
    reply = json.dumps({"answer": "Le regalamos el router.", "cites": ["invented#x"]})
    for text in _tokens(reply):
        await stream.update(text)
    assert sent and sent[-1]["answer"]["text"] == "Le regalamos el router."
    assert await stream.finish(reply, "fake/m") == "answer_invalid"
    assert sent[-1]["answer"] == {"text": "", "done": True, "cites": [], "dropped": True}


@pytest.mark.unit
async def test_an_answer_dropped_before_any_text_publishes_nothing() -> None:
    sent: list[dict[str, Any]] = []
    stream = _stream(sent, Clock())
    await stream.update('{"answer": "')
    assert await stream.finish('{"answer": "", "cites": []}', "fake/m") == "answer_none"
    await stream.abandon()
    assert sent == []


# -- integration: engine, real Redis, fake LLM over SSE --------------------------------------


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    for name, text in KB_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    base = KnowledgeBase(tmp_path)
    base.refresh()
    return base


async def _engine(bus: Bus, kb: KnowledgeBase, llm: LLMThread) -> Orchestrator:
    store = PlaybookStore(PLAYBOOK_DIR)
    store.load()
    settings = Settings(
        consumer="orch-kb-answer",
        metrics_interval_s=30,
        lease_ttl_ms=1000,
        kb=KBSettings(min_score=0.3, cooldown_s=0.0),
    )
    report = KBReport(bus.redis, bus.config.prefix)
    engine = Orchestrator(bus, settings, store, llm, kb=kb, kb_report=report, tick_s=0.2)
    await engine.start()
    return engine


async def _ask(bus: Bus, call_id: str, text: str = QUESTION) -> None:
    await bus.publish(
        {"type": "call.started", "callId": call_id, "agent": "200",
         "caller": {"number": "600000000"}, "startedAt": 1_700_000_000_000, "lang": "es"}
    )  # fmt: skip
    await bus.publish(
        {"type": "final", "callId": call_id, "speaker": "customer", "utteranceId": f"{call_id}-u1",
         "text": text, "start": 1.0, "end": 4.0, "confidence": 0.9, "lang": "es"}
    )  # fmt: skip


async def _kb_events(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    return [
        e.data()
        for e in await bus.read_call(call_id)
        if e.type == "coach" and e.data().get("source") == "kb"
    ]


async def _until_done(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    events = await _kb_events(bus, call_id)
    return events if events and (events[-1].get("answer") or {}).get("done") else []


@pytest.fixture
def llm(llm_settings: LLMSettings) -> LLMThread:
    return LLMThread(llm_settings)


async def test_the_answer_streams_under_the_cards_id(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    fake_llm.on(MARKER, "slow", content=json.dumps({"answer": ANSWER, "cites": [PENALTY]}),
                token_delay_s=0.05)  # fmt: skip
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-1")
        events = await until_async(lambda: _until_done(bus, "kba-1"), 15)
    finally:
        await engine.stop()
        await llm.aclose()
    card, partials, final = events[0], events[1:-1], events[-1]
    assert "answer" not in card and card["doc"]["id"] == PENALTY
    assert len(partials) >= 2  # streamed, not one event at the end
    texts = [e["answer"]["text"] for e in partials]
    assert all(len(b) > len(a) and b.startswith(a) for a, b in itertools.pairwise(texts))
    assert ANSWER.startswith(texts[-1])
    ids = [tuple(int(n) for n in e["id"].split("-")) for e in events]
    assert ids == sorted(ids)  # the bus order is the order they were made in
    assert {e["cardId"] for e in events} == {card["cardId"]}
    assert all(e["answer"]["done"] is False and e["answer"]["cites"] == [] for e in partials)
    assert final["answer"] == {"text": ANSWER, "done": True, "cites": [PENALTY]}
    # 19 tokens at one every 50 ms, events at most every 150 ms: fewer events than tokens.
    assert len(partials) < fake_llm.tokens_sent - 1
    shown = await ShownLog(bus.redis, bus.config.prefix).counts()
    assert shown[PENALTY].count == 1 and shown[PENALTY].title == "Baja"


async def test_an_uncited_streamed_answer_is_taken_back(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    fake_llm.on(
        MARKER, "ok", content=json.dumps({"answer": "Le regalamos el router.", "cites": ["x#y"]})
    )
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-2")
        events = await until_async(lambda: _until_done(bus, "kba-2"), 15)
    finally:
        await engine.stop()
        await llm.aclose()
    assert any(not e["answer"]["done"] and e["answer"]["text"] for e in events[1:-1])
    assert events[-1]["answer"] == {"text": "", "done": True, "cites": [], "dropped": True}
    assert all(not e.get("answer", {}).get("cites") for e in events)


async def test_a_cut_stream_is_retried_and_the_answer_completes(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    content = json.dumps({"answer": ANSWER, "cites": [PENALTY]}, ensure_ascii=False)
    fake_llm.on(MARKER, "cut", "ok", content=content, cut_after=6)
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-3")
        events = await until_async(lambda: _until_done(bus, "kba-3"), 15)
        outcomes = dict(engine.knowledge.outcomes) if engine.knowledge else {}
    finally:
        await engine.stop()
        await llm.aclose()
    assert len(fake_llm.seen(MARKER)) == 2  # the cut request, then its retry
    assert events[-1]["answer"] == {"text": ANSWER, "done": True, "cites": [PENALTY]}
    assert outcomes.get("answer") == 1


async def test_a_stream_that_keeps_breaking_ends_the_answer_cleanly(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    content = json.dumps({"answer": ANSWER, "cites": [PENALTY]}, ensure_ascii=False)
    fake_llm.on(MARKER, "cut", content=content, cut_after=6)  # every attempt, every model
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-4")
        events = await until_async(lambda: _until_done(bus, "kba-4"), 15)
        outcomes = dict(engine.knowledge.outcomes) if engine.knowledge else {}
    finally:
        await engine.stop()
        await llm.aclose()
    assert len(fake_llm.seen(MARKER)) >= 2
    assert any(not e["answer"]["done"] for e in events[1:-1])  # partial text had been shown
    assert events[-1]["answer"] == {"text": "", "done": True, "cites": [], "dropped": True}
    assert outcomes.get("answer_server") == 1


async def test_a_server_error_before_the_stream_is_retried(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    fake_llm.on(MARKER, "503", "ok")
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-5")
        events = await until_async(lambda: _until_done(bus, "kba-5"), 15)
    finally:
        await engine.stop()
        await llm.aclose()
    # The fake's default answer: the first sentence of the passage it was sent, cited.
    assert events[-1]["answer"]["cites"] == [PENALTY]
    assert "10 €" in events[-1]["answer"]["text"]


async def test_tokens_slower_than_the_read_timeout_end_the_answer_cleanly(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    # Compact JSON, so the first token already holds a word of the answer (shown, then taken
    # back); a token a second against LLM_READ_TIMEOUT_S 0.6: every attempt stalls after it.
    content = json.dumps(
        {"answer": ANSWER, "cites": [PENALTY]}, separators=(",", ":"), ensure_ascii=False
    )
    fake_llm.on(MARKER, "slow", content=content, token_delay_s=1.0)
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-6")
        events = await until_async(lambda: _until_done(bus, "kba-6"), 15)
        outcomes = dict(engine.knowledge.outcomes) if engine.knowledge else {}
    finally:
        await engine.stop()
        await llm.aclose()
    assert len(fake_llm.seen(MARKER)) >= 2  # retried in the client, then given up
    assert [e["answer"]["text"] for e in events[1:-1]] == ["Paga"]  # once: same text on retry
    assert events[-1]["answer"] == {"text": "", "done": True, "cites": [], "dropped": True}
    assert outcomes.get("answer_timeout") == 1


async def test_a_newer_card_takes_back_the_older_unfinished_answer(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    fake_llm.on(MARKER, "slow", token_delay_s=0.08)  # the fake answers from the top passage
    engine = await _engine(bus, kb, llm)
    try:
        await _ask(bus, "kba-7")

        async def shown() -> bool:
            return any(e.get("answer") for e in await _kb_events(bus, "kba-7"))

        await until_async(shown, 10)  # the first answer is streaming
        await bus.publish(
            {"type": "final", "callId": "kba-7", "speaker": "customer", "utteranceId": "kba-7-u2",
             "text": "¿Cuánto me cobran si no devuelvo el router?", "start": 6.0, "end": 9.0,
             "confidence": 0.9, "lang": "es"}
        )  # fmt: skip

        async def both_done() -> list[dict[str, Any]]:
            events = await _kb_events(bus, "kba-7")
            done = [e for e in events if (e.get("answer") or {}).get("done")]
            return events if len({e["cardId"] for e in done}) == 2 else []

        events = await until_async(both_done, 15)
    finally:
        await engine.stop()
        await llm.aclose()
    first, second = events[0]["cardId"], next(e["cardId"] for e in events[1:] if "answer" not in e)
    assert first != second
    last = {e["cardId"]: e["answer"] for e in events if e.get("answer")}
    assert last[first] == {"text": "", "done": True, "cites": [], "dropped": True}
    assert last[second]["done"] is True and last[second]["cites"] == ["baja#devolucion-del-router"]
