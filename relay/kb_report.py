"""The knowledge-base owner's report: which passages are shown and found useful, and which
questions found nothing (supervisors only).

- `GET /kb/report?limit=` JSON: per document and passage, times shown as a card
  (coach/knowledge/shown.py), useful / not useful marks (one per agent and card: the newest
  wins), last shown; and the unanswered questions (coach/knowledge/report.py misses) grouped by
  their wording (case, accents, punctuation and spacing ignored) with count, last seen, language
  and where they came from (`call`, `search`). At most `limit` (default 200) of each list.
- `GET /kb/report.csv?table=passages|unanswered` the same rows as CSV (`passages` by default).
  A cell that a spreadsheet would read as a formula (=, +, -, @ first) is prefixed with `'`.

Everything is read from the report's capped Redis streams, so the report covers their recent
past. Question text is masked again with the redactor before it leaves (`coach.redact`): call
questions are masked by STT already, but console searches are typed by agents and stored as
typed. Agents get 403, service tokens 403, no token 401; a Redis outage is a 503.
"""

from __future__ import annotations

import csv
import io
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coach.bus import Bus
from coach.errors import BusError
from coach.knowledge import KnowledgeBase
from coach.knowledge.report import MAX_ENTRIES, KBReport
from coach.knowledge.shown import Shown, ShownLog
from coach.redact import redact_text
from relay.api import _principal, error
from relay.auth import AuthError

DEFAULT_LIMIT: Final = 200
MAX_LIMIT: Final = 1000
TABLES: Final = ("passages", "unanswered")
PASSAGE_COLUMNS: Final = (
    "docId", "title", "passage", "section", "shown", "useful", "notUseful", "lastShown",
)  # fmt: skip
UNANSWERED_COLUMNS: Final = ("text", "lang", "count", "lastSeen", "fromCalls", "fromSearches")
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")
_PUNCT: Final = re.compile(r"[^\w\s\[\]]+")


def question_key(text: str) -> str:
    """What two wordings of one question share: no case, accents, punctuation or extra space."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", plain).split())


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-", maxsplit=1)[0])


@dataclass
class _Passage:
    passage: str
    title: str = ""
    section: str = ""
    shown: int = 0
    useful: int = 0
    not_useful: int = 0
    last_shown: int | None = None

    @property
    def doc_id(self) -> str:
        return self.passage.split("#", 1)[0]

    def row(self) -> dict[str, Any]:
        return {
            "docId": self.doc_id,
            "title": self.title,
            "passage": self.passage,
            "section": self.section,
            "shown": self.shown,
            "useful": self.useful,
            "notUseful": self.not_useful,
            "lastShown": self.last_shown,
        }


def _passages(
    shown: dict[str, Shown], marks: list[dict[str, str]], kb: KnowledgeBase | None
) -> list[_Passage]:
    out: dict[str, _Passage] = {}
    for pid, s in shown.items():
        out[pid] = _Passage(pid, s.title, s.section, s.count, last_shown=s.last_ms)
    seen: set[tuple[str, str, str]] = set()
    for m in marks:  # newest first: an agent's later mark of a card replaces the earlier one
        pid = m.get("passage", "")
        key = (m.get("callId", ""), m.get("cardId") or m.get("eventId", ""), m.get("agent", ""))
        if not pid or key in seen:
            continue
        seen.add(key)
        p = out.setdefault(pid, _Passage(pid))
        if m.get("useful") == "1":
            p.useful += 1
        else:
            p.not_useful += 1
    for p in out.values():
        if not p.title and kb is not None:
            src = kb.doc(p.doc_id)
            p.title = src.doc.title if src is not None else ""
    return sorted(out.values(), key=lambda p: (-p.not_useful, -p.shown, p.passage))


def _documents(passages: list[_Passage]) -> list[dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for p in passages:
        d = docs.setdefault(
            p.doc_id,
            {"docId": p.doc_id, "title": p.title, "shown": 0, "useful": 0, "notUseful": 0,
             "passages": []},
        )  # fmt: skip
        d["title"] = d["title"] or p.title
        d["shown"] += p.shown
        d["useful"] += p.useful
        d["notUseful"] += p.not_useful
        d["passages"].append({k: v for k, v in p.row().items() if k not in ("docId", "title")})
    return sorted(docs.values(), key=lambda d: (-d["notUseful"], -d["shown"], d["docId"]))


def _unanswered(misses: list[dict[str, str]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for m in misses:  # newest first: the first of a group is its latest wording
        text = redact_text(m.get("text", "")).text.strip()
        key = question_key(text)
        if not key:
            continue
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "text": text, "lang": m.get("lang", ""), "count": 0,
                "lastSeen": _ms(m["id"]), "fromCalls": 0, "fromSearches": 0,
            }  # fmt: skip
        g["count"] += 1
        g["fromSearches" if m.get("source") == "search" else "fromCalls"] += 1
    return sorted(groups.values(), key=lambda g: (-g["count"], -g["lastSeen"]))


class KBReportRoutes:
    """The report's routes over the report's streams (and the KB's titles when it has one)."""

    def __init__(self, report: KBReport, shown: ShownLog, kb: KnowledgeBase | None = None) -> None:
        self.report = report
        self.shown = shown
        self.kb = kb

    @classmethod
    def create(cls, bus: Bus, kb: KnowledgeBase | None) -> KBReportRoutes:
        """The report of the bus's Redis (`{prefix}:kb:*`)."""
        prefix = bus.config.prefix
        return cls(KBReport(bus.redis, prefix), ShownLog(bus.redis, prefix), kb)

    def routes(self) -> list[Route]:
        """The routes to mount in the app."""
        return [
            Route("/kb/report", self.json, methods=["GET"]),
            Route("/kb/report.csv", self.csv, methods=["GET"]),
        ]

    async def build(self, limit: int) -> dict[str, Any]:
        """The report (raises BusError when Redis cannot be read)."""
        raw = await self.report.read(MAX_ENTRIES)
        counts = await self.shown.counts()
        passages = _passages(counts, raw["feedback"], self.kb)
        misses = raw["misses"]
        return {
            "generatedAt": int(time.time() * 1000),
            "since": {
                "shown": min((s.last_ms for s in counts.values()), default=None),
                "marks": _ms(raw["feedback"][-1]["id"]) if raw["feedback"] else None,
                "misses": _ms(misses[-1]["id"]) if misses else None,
            },
            "documents": _documents(passages)[:limit],
            "passages": [p.row() for p in passages[:limit]],
            "unanswered": _unanswered(misses)[:limit],
        }

    async def _guarded(self, request: Request) -> dict[str, Any] | Response:
        try:
            principal = _principal(request)
        except AuthError as exc:
            return error(exc.status, exc.message)
        if principal.role != "supervisor":
            return error(403, "the knowledge report is for supervisors")
        limit_text = request.query_params.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            return error(400, f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
        try:
            return await self.build(int(limit_text))
        except BusError:
            return error(503, "bus unavailable, retry")

    async def json(self, request: Request) -> Response:
        """`GET /kb/report`."""
        body = await self._guarded(request)
        if isinstance(body, Response):
            return body
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def csv(self, request: Request) -> Response:
        """`GET /kb/report.csv?table=`."""
        table = request.query_params.get("table", "passages")
        if table not in TABLES:
            return error(400, f"table must be one of {', '.join(TABLES)}", field="table")
        body = await self._guarded(request)
        if isinstance(body, Response):
            return body
        columns = PASSAGE_COLUMNS if table == "passages" else UNANSWERED_COLUMNS
        return Response(
            to_csv(columns, body[table]),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="kb-{table}.csv"',
                "Cache-Control": "no-store",
            },
        )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text


def to_csv(columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV under a header of `columns` (formula-looking cells defused)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = list(columns)
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()
