"""Knowledge cards: the company's answer to the customer's question, from the knowledge base.

For each live customer final that asks something (`questions.is_question`) the knowledge base
is searched: with the question alone when it names its topic, with the last few finals too when
it leans on them ("¿y eso cuánto cuesta?"). The best passage at or above KB_MIN_SCORE becomes a
`coach` event (`kind: knowledge`, `source: kb`, DESIGN.md) unless the call was shown that
passage already (de-duplication, rebuilt after a restart from the call's own stream) or had a
card less than KB_COOLDOWN_S ago. A question that finds nothing goes to the KB owner's report.

With an LLM, a card is followed by an answer written *only* from the retrieved passages,
streamed as later `coach` events with the same `cardId` carrying `answer` {text, done, cites}
(orchestrator/kb_answer.py: cumulative text, bounded event rate, final event with the cites,
uncited answers dropped). Answers run in tracked tasks, at most one per call (a newer card
cancels an older answer). Every card shown is logged for the KB owner's report (`ShownLog`).

Searching costs a few tens of milliseconds of CPU (BM25 plus one query embedding), so it runs
in a worker thread: the event loop keeps publishing other calls' events meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from coach.errors import BusError
from coach.knowledge import Hit, KnowledgeBase
from coach.knowledge.report import KBReport
from coach.knowledge.settings import KBSettings
from coach.knowledge.shown import ShownLog
from coach.tasks import TaskSet
from orchestrator.callstate import Utterance
from orchestrator.kb_answer import (
    ANSWER_PASSAGES,
    ANSWER_SCHEMA,
    AnswerStream,
    answer_messages,
    parse_answer,
)
from orchestrator.llm.client import Completer
from orchestrator.llm.errors import LLMError
from orchestrator.questions import anaphoric, is_question

__all__ = ["Card", "KnowledgeAssist", "answer_messages", "card_id", "parse_answer"]

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], Awaitable[Any]]
ANSWER_KIND: Final = "kb-answer"
"""The `task` label of answer tasks in `coach_task_failures_total`."""
SHOWN_LIMIT: Final = 200
"""Passages remembered per call for de-duplication (a call never shows more)."""
CONTEXT_WEIGHTS: Final = (0.4, 0.25, 0.15, 0.1, 0.1)
"""Weight of the previous finals' words in a borrowed-context search, newest first."""
SHOWN_KIND: Final = "kb-shown"
"""The `task` label of the tasks that log a shown card."""


@dataclass
class _Call:
    shown: set[str] = field(default_factory=set)
    last_card: float = float("-inf")
    answer: asyncio.Task[None] | None = None


@dataclass
class Card:
    """A card to publish and what its answer needs."""

    event: dict[str, Any]
    hits: list[Hit]
    question: str
    lang: str


class KnowledgeAssist:
    """Turns customer questions into knowledge cards (and LLM answers) for every call."""

    def __init__(
        self,
        kb: KnowledgeBase,
        settings: KBSettings,
        publish: Publish,
        llm: Completer | None = None,
        report: KBReport | None = None,
        *,
        shown: ShownLog | None = None,
        tasks: TaskSet | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kb = kb
        self.settings = settings
        self._publish = publish
        self.llm = llm
        self.report = report
        self.shown_log = shown
        self.tasks = tasks if tasks is not None else TaskSet("orchestrator")
        self.clock = clock
        self._calls: dict[str, _Call] = {}
        self.outcomes: dict[str, int] = {}

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def observe(self, call_id: str, event: dict[str, Any]) -> None:
        """See every event of the call's stream (replayed or live): our own cards restore what
        the call was shown, so a restarted worker does not show a passage twice."""
        if event.get("type") == "coach" and event.get("source") == "kb" and not event.get("answer"):
            doc = event.get("doc") or {}
            call = self._calls.setdefault(call_id, _Call())
            if isinstance(doc, dict) and doc.get("id") and len(call.shown) < SHOWN_LIMIT:
                call.shown.add(str(doc["id"]))

    async def cards(
        self,
        call_id: str,
        finals: list[dict[str, Any]],
        transcript: list[Utterance],
        lang: str | None,
    ) -> list[Card]:
        """Cards for the new live finals of a call (customer questions only)."""
        out: list[Card] = []
        call = self._calls.setdefault(call_id, _Call())
        for final in finals:
            if final.get("speaker") not in ("customer", "mix"):
                continue
            uid = str(final.get("utteranceId") or "")
            text = _masked(uid, transcript) or str(final.get("text") or "")
            if not is_question(text):
                continue
            self._count("question")
            now = self.clock()
            if now - call.last_card < self.settings.cooldown_s:
                self._count("cooldown")
                continue
            qlang = str(final.get("lang") or lang or "es").split("-")[0]
            context = _context(uid, transcript, self.settings.context_finals, text)
            hits = await asyncio.to_thread(
                self.kb.search, text, k=ANSWER_PASSAGES, lang=qlang, context=context,
                min_score=self.settings.min_score,
            )  # fmt: skip
            if not hits:
                self._count("nothing")
                await self._miss(call_id, uid, text, qlang)
                continue
            best = hits[0]
            if best.passage.id in call.shown:
                # The agent has this card already; a weaker runner-up would only add noise.
                self._count("repeat")
                continue
            call.shown.add(best.passage.id)
            call.last_card = now
            self._count("card")
            out.append(Card(_event(call_id, uid, best), hits, text, qlang))
        return out

    async def _miss(self, call_id: str, uid: str, text: str, lang: str) -> None:
        if self.report is None:
            return
        try:
            await self.report.miss(call_id, text, lang, source="call", utterance_id=uid)
        except (BusError, OSError) as exc:  # the report is best effort; cards go on
            log.warning("knowledge miss not recorded", extra={"callId": call_id, "error": str(exc)})

    def answer(self, card: Card) -> None:
        """The card is on the bus: log it as shown, and ask the LLM for its answer in a tracked
        task (replacing an older one of the call)."""
        call_id = str(card.event["callId"])
        if self.shown_log is not None:
            self.tasks.spawn(self._log_shown(card), SHOWN_KIND, call_id=call_id)
        if self.llm is None:
            return
        call = self._calls.setdefault(call_id, _Call())
        if call.answer and not call.answer.done():
            call.answer.cancel()  # the conversation moved on: the newer card is what matters
        call.answer = self.tasks.spawn(self._answer(card), ANSWER_KIND, call_id=call_id)

    async def _log_shown(self, card: Card) -> None:
        assert self.shown_log is not None
        doc = card.event["doc"]
        try:
            await self.shown_log.add(
                str(doc["id"]), title=str(doc.get("title") or ""),
                section=str(doc.get("section") or ""), card_id=str(card.event["cardId"]),
            )  # fmt: skip
        except BusError as exc:  # the report is best effort; cards go on
            log.warning(
                "knowledge card not logged as shown",
                extra={"callId": card.event["callId"], "error": str(exc)},
            )

    async def _answer(self, card: Card) -> None:
        assert self.llm is not None
        stream = AnswerStream(
            card.event,
            {h.passage.id for h in card.hits},
            self._publish,
            interval_s=self.llm.settings.answer_interval_ms / 1000,
            clock=self.clock,
        )
        try:
            done = await self.llm.complete(
                answer_messages(card.question, card.hits, card.lang),
                schema=ANSWER_SCHEMA,
                schema_name="kb_answer",
                deadline_s=self.llm.settings.tip_deadline_s,
                on_text=stream.update,
            )
        except LLMError as exc:
            # The client has retried what could be retried (cut stream, 5xx, timeouts).
            self._count(f"answer_{exc.failure.value}")
            await stream.drop()
            return
        except asyncio.CancelledError:
            await stream.abandon()
            raise
        self._count(await stream.finish(done.text, done.model))

    async def forget(self, call_id: str) -> None:
        """The call ended: cancel its answer and drop its state."""
        call = self._calls.pop(call_id, None)
        if call and call.answer and not call.answer.done():
            await self.tasks.cancel(call.answer)

    async def close(self) -> None:
        """Cancel every answer task."""
        for call_id in list(self._calls):
            await self.forget(call_id)

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        return {
            **self.kb.stats(),
            "semantic": self.kb.embedder.name if self.kb.embedder else "off",
            "minScore": self.settings.min_score,
            "outcomes": dict(self.outcomes),
        }


def card_id(utterance_id: str, passage_id: str) -> str:
    """A card id stable across a worker's replay (the same question, the same passage)."""
    digest = hashlib.blake2b(f"{utterance_id}\0{passage_id}".encode(), digest_size=10)
    return f"kb-{digest.hexdigest()}"


def _event(call_id: str, uid: str, hit: Hit) -> dict[str, Any]:
    p = hit.passage
    doc: dict[str, Any] = {"id": p.id, "title": p.title[:500], "url": p.url}
    if p.section:
        doc["section"] = p.section[:500]
    return {
        "type": "coach",
        "callId": call_id,
        "kind": "knowledge",
        "severity": "info",
        "source": "kb",
        "text": hit.text[:2000],
        "doc": doc,
        "score": hit.score,
        "cardId": card_id(uid, p.id),
        "refs": [uid] if uid else [],
    }


def _masked(uid: str, transcript: list[Utterance]) -> str | None:
    for u in reversed(transcript):
        if u.uid == uid:
            return u.text
    return None


def _context(
    uid: str, transcript: list[Utterance], n: int, text: str
) -> tuple[tuple[str, float], ...]:
    """The previous finals (both speakers), weighted, when the question leans on them."""
    if n <= 0 or not anaphoric(text):
        return ()
    before: list[Utterance] = []
    for u in reversed(transcript):
        if u.uid == uid:
            continue
        before.append(u)
        if len(before) >= min(n, len(CONTEXT_WEIGHTS)):
            break
    return tuple((u.text, CONTEXT_WEIGHTS[i]) for i, u in enumerate(before))
