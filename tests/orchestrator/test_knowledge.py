"""Knowledge cards from the orchestrator: the question detector, cards on the real bus (Redis),
de-duplication, cooldown, borrowed context, the KB owner's report, and LLM answers that must
cite what was retrieved (against the fake LLM server)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from coach.bus import Bus
from coach.events import validate
from coach.knowledge import KnowledgeBase
from coach.knowledge.report import KBReport
from coach.knowledge.settings import KBSettings
from fakes.fake_llm import FakeLLM
from fakes.poll import until_async
from orchestrator.engine import Orchestrator
from orchestrator.knowledge import card_id, parse_answer
from orchestrator.llm.thread import LLMThread
from orchestrator.playbook_store import PlaybookStore
from orchestrator.prompts import InvalidOutput
from orchestrator.questions import anaphoric, is_question
from orchestrator.settings import PLAYBOOK_DIR, LLMSettings, Settings

pytestmark = pytest.mark.integration

KB_FILES = {
    "roaming.md": "# Roaming\n\n## Roaming fuera de la Unión Europea\n\nFuera de la UE el bono "
    "Viajero cuesta 5 € al día por 1 GB y 30 minutos. Estados Unidos está en la zona 1.\n\n"
    "## Activar o desactivar el roaming\n\nEl roaming se desactiva desde la app, en Viajes.\n",
    "baja.md": "# Baja\n\n## Penalización por permanencia\n\nSi se da de baja antes de cumplir "
    "los 12 meses de permanencia paga 10 € por cada mes que falte.\n\n## Devolución del router\n\n"
    "El router se devuelve en 30 días en una tienda; si no, se cobran 60 €.\n",
}


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    for name, text in KB_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    base = KnowledgeBase(tmp_path)
    base.refresh()
    return base


def _settings(**kb: Any) -> Settings:
    return Settings(
        consumer="orch-kb",
        metrics_interval_s=30,
        lease_ttl_ms=1000,
        kb=KBSettings(**{"min_score": 0.3, "cooldown_s": 0.0, **kb}),
    )


async def _engine(bus: Bus, kb: KnowledgeBase, llm: Any = None, **kb_settings: Any) -> Orchestrator:
    store = PlaybookStore(PLAYBOOK_DIR)
    store.load()
    report = KBReport(bus.redis, bus.config.prefix)
    engine = Orchestrator(
        bus, _settings(**kb_settings), store, llm, kb=kb, kb_report=report, tick_s=0.2
    )
    await engine.start()
    return engine


class Call:
    def __init__(self, bus: Bus, call_id: str) -> None:
        self.bus, self.call_id, self.n = bus, call_id, 0

    async def start(self) -> None:
        await self.bus.publish(
            {
                "type": "call.started",
                "callId": self.call_id,
                "agent": "200",
                "caller": {"number": "600000000"},
                "startedAt": int(time.time() * 1000),
                "lang": "es",
            }
        )

    async def say(self, speaker: str, text: str) -> str:
        self.n += 1
        uid = f"{self.call_id}-u{self.n}"
        await self.bus.publish(
            {
                "type": "final",
                "callId": self.call_id,
                "speaker": speaker,
                "utteranceId": uid,
                "text": text,
                "start": float(self.n * 5),
                "end": float(self.n * 5 + 3),
                "confidence": 0.9,
                "lang": "es",
            }
        )
        return uid


async def _cards(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    return [
        e.data()
        for e in await bus.read_call(call_id)
        if e.type == "coach" and e.data().get("source") == "kb"
    ]


async def _finals_seen(engine: Orchestrator, n: int) -> None:
    await until_async(lambda: _true(engine.stats["finals"] >= n), 10)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "¿Cuánto cuesta el roaming en Estados Unidos?",
        "Quería saber cuánto me cobran si me voy antes",
        "y cuánto cuesta eso al día",
        "Puedo devolver el router en una tienda",
        "How do I turn off roaming",
        "I was wondering what the fee is",
        "Can I keep my number",
        "quiero darme de baja de la fibra",
    ],
)
def test_questions_are_detected(text: str) -> None:
    assert is_question(text)


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "Vale, muchas gracias.",
        "Mi número es el seis cero cero.",
        "Sí, eso es.",
        "The weather is nice today.",
        "Buenos días.",
    ],
)
def test_statements_are_not_questions(text: str) -> None:
    assert not is_question(text)


@pytest.mark.unit
def test_short_or_pointing_questions_borrow_context() -> None:
    assert anaphoric("¿Y eso cuánto cuesta?")
    assert anaphoric("how much is it?")
    assert not anaphoric("¿Cuánto cuesta el roaming en Estados Unidos al día?")


@pytest.mark.unit
def test_an_answer_must_cite_a_retrieved_passage() -> None:
    retrieved = {"baja#penalizacion-por-permanencia"}
    ok = json.dumps(
        {"answer": "Paga 10 € por mes.", "cites": ["baja#penalizacion-por-permanencia", "x"]}
    )
    assert parse_answer(ok, retrieved) == (
        "Paga 10 € por mes.",
        ["baja#penalizacion-por-permanencia"],
    )
    with pytest.raises(InvalidOutput, match="cites no retrieved"):
        parse_answer(json.dumps({"answer": "Paga 10 €.", "cites": ["other#doc"]}), retrieved)
    with pytest.raises(InvalidOutput):
        parse_answer("Paga diez euros.", retrieved)
    assert parse_answer(json.dumps({"answer": "", "cites": []}), retrieved) == ("", [])


async def test_a_customer_question_gets_one_card(bus: Bus, kb: KnowledgeBase) -> None:
    engine = await _engine(bus, kb)
    try:
        call = Call(bus, "kb-1")
        await call.start()
        await call.say("agent", "¿Cuánto cuesta el roaming en Estados Unidos?")  # agent: no card
        uid = await call.say("customer", "¿Cuánto me cuesta el roaming en Estados Unidos al día?")
        cards = await until_async(lambda: _cards(bus, "kb-1"), 10)
        card = cards[0]
        validate({k: v for k, v in card.items() if k != "id"})
        assert card["kind"] == "knowledge" and card["severity"] == "info"
        assert card["doc"] == {
            "id": "roaming#roaming-fuera-de-la-union-europea",
            "title": "Roaming",
            "section": "Roaming fuera de la Unión Europea",
            "url": "/kb/docs/roaming#roaming-fuera-de-la-union-europea",
        }
        assert card["refs"] == [uid] and card["cardId"] == card_id(uid, card["doc"]["id"])
        assert 0.3 <= card["score"] <= 1 and "5 € al día" in card["text"]
        # The same passage is not shown twice in a call; a statement gets nothing.
        await call.say("customer", "¿Y cuánto vale el roaming en Estados Unidos por día?")
        await call.say("customer", "Vale, gracias.")
        await _finals_seen(engine, 4)
        assert len(await _cards(bus, "kb-1")) == 1
        assert engine.knowledge is not None and engine.knowledge.outcomes["repeat"] == 1
    finally:
        await engine.stop()


async def test_short_questions_search_what_was_said_before(bus: Bus, kb: KnowledgeBase) -> None:
    engine = await _engine(bus, kb)
    try:
        call = Call(bus, "kb-2")
        await call.start()
        await call.say("customer", "Me quiero ir antes de acabar la permanencia de doce meses.")
        await call.say("customer", "¿Y eso cuánto me cuesta?")
        cards = await until_async(lambda: _cards(bus, "kb-2"), 10)
        assert cards[0]["doc"]["id"] == "baja#penalizacion-por-permanencia"
    finally:
        await engine.stop()


async def test_cooldown_and_misses_go_to_the_report(bus: Bus, kb: KnowledgeBase) -> None:
    engine = await _engine(bus, kb, cooldown_s=600.0)
    try:
        call = Call(bus, "kb-3")
        await call.start()
        await call.say("customer", "¿Qué tiempo hará mañana en Sevilla?")
        await call.say("customer", "¿Cuánto me cobran si no devuelvo el router?")
        await until_async(lambda: _cards(bus, "kb-3"), 10)
        await call.say("customer", "¿Cómo desactivo el roaming en la app?")  # within cooldown
        await _finals_seen(engine, 3)
        assert [c["doc"]["id"] for c in await _cards(bus, "kb-3")] == ["baja#devolucion-del-router"]
        report = await KBReport(bus.redis, bus.config.prefix).read()
        assert [(m["callId"], m["text"], m["source"]) for m in report["misses"]] == [
            ("kb-3", "¿Qué tiempo hará mañana en Sevilla?", "call")
        ]
    finally:
        await engine.stop()


@pytest.mark.slow
async def test_a_restarted_worker_does_not_repeat_cards(bus: Bus, kb: KnowledgeBase) -> None:
    engine = await _engine(bus, kb)
    call = Call(bus, "kb-4")
    await call.start()
    await call.say("customer", "¿Cuánto me cobran si no devuelvo el router?")
    await until_async(lambda: _cards(bus, "kb-4"), 10)
    await engine.stop()
    engine = await _engine(bus, kb)
    try:
        await call.say("customer", "¿Y si no devuelvo el router cuánto pago?")
        await call.say("customer", "¿Cómo desactivo el roaming en la app?")
        cards = await until_async(lambda: _two(bus, "kb-4"), 10)
        assert [c["doc"]["id"] for c in cards] == [
            "baja#devolucion-del-router",
            "roaming#activar-o-desactivar-el-roaming",
        ]
    finally:
        await engine.stop()


async def _two(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    cards = await _cards(bus, call_id)
    return cards if len(cards) >= 2 else []


async def _done(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    cards = await _cards(bus, call_id)
    return cards if cards and (cards[-1].get("answer") or {}).get("done") else []


@pytest.fixture
def llm(fake_llm: FakeLLM, llm_settings: LLMSettings) -> Any:
    return LLMThread(llm_settings)


async def test_llm_answer_follows_the_card_and_cites_it(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    marker = "PASSAGES (data)"
    fake_llm.on(marker, "ok")
    fake_llm.markers[marker][0].content = json.dumps(
        {
            "answer": "Paga 10 € por cada mes que falte.",
            "cites": ["baja#penalizacion-por-permanencia"],
        }
    )
    engine = await _engine(bus, kb, llm)
    try:
        call = Call(bus, "kb-5")
        await call.start()
        await call.say(
            "customer", "¿Cuánto pago si me doy de baja antes de los doce meses de permanencia?"
        )
        cards = await until_async(lambda: _done(bus, "kb-5"), 10)
        card, answered = cards[0], cards[-1]
        assert "answer" not in card
        assert answered["cardId"] == card["cardId"] and answered["doc"] == card["doc"]
        assert answered["answer"] == {
            "text": "Paga 10 € por cada mes que falte.",
            "done": True,
            "cites": ["baja#penalizacion-por-permanencia"],
        }
        sent = fake_llm.seen(marker)[0].text
        assert "10 € por cada mes" in sent and "12 meses" in sent  # the passages went with it
    finally:
        await engine.stop()
        await llm.aclose()


async def test_an_answer_citing_nothing_retrieved_is_dropped(
    bus: Bus, kb: KnowledgeBase, fake_llm: FakeLLM, llm: LLMThread
) -> None:
    marker = "PASSAGES (data)"
    fake_llm.on(marker, "ok")
    fake_llm.markers[marker][0].content = json.dumps(
        {"answer": "Le regalamos el router.", "cites": ["invented#passage"]}
    )
    engine = await _engine(bus, kb, llm)
    try:
        call = Call(bus, "kb-6")
        await call.start()
        await call.say("customer", "¿Cuánto me cobran si no devuelvo el router?")
        await until_async(lambda: _cards(bus, "kb-6"), 10)
        knowledge = engine.knowledge
        assert knowledge is not None
        await until_async(lambda: _true(knowledge.outcomes.get("answer_invalid", 0) == 1), 10)
        cards = await _cards(bus, "kb-6")
        # The streamed text was shown, so a final event takes it back (orchestrator/kb_answer.py).
        assert "answer" not in cards[0] and len(cards) >= 3
        assert all(c["answer"]["done"] is False for c in cards[1:-1])
        assert cards[-1]["answer"] == {"text": "", "done": True, "cites": [], "dropped": True}
    finally:
        await engine.stop()
        await llm.aclose()
