"""Knowledge-base routes: the console's search box, the sources cards link to, card feedback,
and the KB owner's report.

- `GET /kb/search?q=&lang=&k=` (any browser role): passages for the agent's own query, as a
  response (not bus events). A query that finds nothing is kept for the report.
- `GET /kb/docs/{docId}` (any browser role): the document a card links to, as JSON sections
  (anchor, title, text) for the console to render as text. The id is looked up in the index
  and never joined to a path, so nothing outside KB_DIR can be reached; the original file
  (which may hold scripts or macros) is never served.
- `POST /calls/{callId}/feedback` {eventId, useful} (the call's agent, or a supervisor): a mark
  on a knowledge card of that call; 404 for a call or card the caller may not see.
- the KB owner's report (`GET /kb/report`, `/kb/report.csv`) is relay/kb_report.py.

Without KB_DIR the routes answer 404 "no knowledge base"; bad input gets a 400 naming it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coach.bus import Bus
from coach.errors import BusError, BusUnavailable
from coach.events import EVENT_ID_RE, is_call_id
from coach.knowledge import KnowledgeBase
from coach.knowledge.report import KBReport
from coach.knowledge.settings import KBSettings
from coach.knowledge.watch import keep_indexed, open_kb
from coach.tasks import TaskSet
from relay.api import TooLarge, _principal, _read_body, error
from relay.auth import AuthError, Principal

if TYPE_CHECKING:
    from relay.app import RelayState

log = logging.getLogger("relay.kb")

MAX_QUERY: Final = 500
"""Longest search query (characters)."""
MAX_RESULTS: Final = 10
MAX_FEEDBACK_BODY: Final = 4096
DOC_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
LANGS: Final = ("es", "en")


@dataclass
class KBRoutes:
    """The knowledge base as the relay serves it."""

    settings: KBSettings
    kb: KnowledgeBase | None
    report: KBReport

    @classmethod
    def create(cls, settings: KBSettings, bus: Bus) -> KBRoutes:
        """Open KB_DIR (indexed by `start`); the report lives on the bus's Redis."""
        return cls(settings, open_kb(settings), KBReport(bus.redis, bus.config.prefix))

    def start(self, tasks: TaskSet) -> None:
        """Index the folder and keep it current, in a tracked task."""
        if self.kb is not None:
            tasks.spawn(keep_indexed(self.kb, self.settings.poll_s), "kb-index")

    def routes(self) -> list[Route]:
        """The routes to mount in the app."""
        return [
            Route("/kb/search", self.search, methods=["GET"]),
            Route("/kb/docs/{doc_id}", self.doc, methods=["GET"]),
            Route("/calls/{call_id}/feedback", self.feedback, methods=["POST"]),
        ]

    def _browser(self, request: Request) -> Principal:
        principal = _principal(request)
        if principal.role == "service":
            raise AuthError("knowledge routes are for browser tokens", status=403)
        return principal

    async def search(self, request: Request) -> Response:
        """Passages for the agent's query."""
        try:
            self._browser(request)
        except AuthError as exc:
            return error(exc.status, exc.message)
        if self.kb is None:
            return error(404, "no knowledge base (KB_DIR is not set)")
        q = (request.query_params.get("q") or "").strip()
        if not q:
            return error(400, "q is required", field="q")
        if len(q) > MAX_QUERY:
            return error(400, f"q is longer than {MAX_QUERY} characters", field="q")
        lang = request.query_params.get("lang") or None
        if lang is not None and lang not in LANGS:
            return error(400, f"lang must be one of {', '.join(LANGS)}", field="lang")
        k_text = request.query_params.get("k", "5")
        if not k_text.isdigit() or not 1 <= int(k_text) <= MAX_RESULTS:
            return error(400, f"k must be an integer from 1 to {MAX_RESULTS}", field="k")
        hits = await asyncio.to_thread(
            self.kb.search, q, k=int(k_text), lang=lang, min_score=self.settings.min_score
        )
        if not hits:
            try:
                await self.report.miss(None, q, lang, source="search")
            except BusError as exc:
                log.warning("search miss not recorded", extra={"error": str(exc)})
        return JSONResponse(
            {
                "query": q,
                "minScore": self.settings.min_score,
                "results": [
                    {
                        "id": h.passage.id,
                        "docId": h.passage.doc_id,
                        "title": h.passage.title,
                        "section": h.passage.section,
                        "url": h.passage.url,
                        "lang": h.passage.lang,
                        "text": h.text,
                        "score": h.score,
                    }
                    for h in hits
                ],
            }
        )

    async def doc(self, request: Request) -> Response:
        """A document's sections, looked up by id."""
        try:
            self._browser(request)
        except AuthError as exc:
            return error(exc.status, exc.message)
        if self.kb is None:
            return error(404, "no knowledge base (KB_DIR is not set)")
        doc_id = request.path_params["doc_id"]
        if not DOC_ID.match(doc_id):
            return error(400, "malformed document id (lower-case letters, digits and -)")
        src = self.kb.doc(doc_id)
        if src is None:
            return error(404, "unknown document")
        return JSONResponse(
            {
                "id": src.id,
                "title": src.doc.title,
                "format": src.doc.format,
                "lang": src.lang,
                "sections": [
                    {"anchor": s.anchor, "title": s.title, "level": s.level, "text": s.text}
                    for s in src.doc.sections
                ],
            },
            headers={"Cache-Control": "no-store"},
        )

    async def feedback(self, request: Request) -> Response:
        """An agent's useful / not useful mark on a knowledge card of a call."""
        state: RelayState = request.app.state.relay
        try:
            principal = self._browser(request)
        except AuthError as exc:
            return error(exc.status, exc.message)
        call_id = request.path_params["call_id"]
        if not is_call_id(call_id):
            return error(400, "malformed call id")
        try:
            raw = await _read_body(request, MAX_FEEDBACK_BODY)
            body = json.loads(raw)
        except TooLarge:
            return error(413, f"body larger than {MAX_FEEDBACK_BODY} bytes")
        except (ValueError, UnicodeDecodeError):
            return error(400, "body must be a JSON object {eventId, useful}")
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object {eventId, useful}")
        event_id, useful = body.get("eventId"), body.get("useful")
        if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
            return error(400, "eventId must be an event id like 1700000000000-0", field="eventId")
        if not isinstance(useful, bool):
            return error(400, "useful must be true or false", field="useful")
        try:
            agent = await state.hub.agent_of(call_id)
            if agent is None or not principal.may_see(agent):
                return error(404, "unknown call")  # someone else's call is not confirmed
            card = await _event(state, call_id, event_id)
        except (BusUnavailable, RedisError):
            return error(503, "bus unavailable, retry")
        if card is None or card.get("type") != "coach" or card.get("source") != "kb":
            return error(404, "no knowledge card with that eventId in this call", field="eventId")
        doc = card.get("doc") if isinstance(card.get("doc"), dict) else {}
        try:
            entry = await self.report.feedback(
                call_id,
                event_id,
                useful,
                card_id=str(card.get("cardId") or ""),
                passage=str((doc or {}).get("id") or ""),
                agent=principal.agent or principal.role,
            )
        except BusError:
            return error(503, "bus unavailable, retry")
        log.info(
            "knowledge card marked",
            extra={"callId": call_id, "eventId": event_id, "useful": useful},
        )
        return JSONResponse({"ok": True, "id": entry})


async def _event(state: RelayState, call_id: str, event_id: str) -> dict[str, Any] | None:
    """One stored event of a call by its id, or None."""
    entries = await state.bus.redis.xrange(state.bus.call_key(call_id), event_id, event_id, 1)
    if not entries:
        return None
    _, fields = entries[0]
    if not fields:
        return None
    data: dict[str, Any] = json.loads(fields["e"])
    return data
