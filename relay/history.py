"""The call record's HTTP routes (DESIGN.md "Call record"), read from PostgreSQL as the
read-only role `coach_reader` (DATABASE_URL):

- `GET /history?q=&agent=&from=&to=&disposition=&sentiment=&rule=&minDuration=&maxDuration=
  &minSilence=&minAgentTalkRatio=&maxAgentTalkRatio=&minOvertalk=&speaker=&lang=&limit=&cursor=`
- `GET /history/export.csv?…` (the same filters; every matching call, no cap)
- `GET /history/{callId}`, `GET /history/{callId}/export?format=json|vtt|srt|txt`
- `GET /history/{callId}/audio` (HTTP Range) and `POST /history/{callId}/media-url`

Browsers authenticate as on the other routes (`Authorization: Bearer`); the audio element,
which cannot send a header, uses the signed URL `media-url` returns (valid `MEDIA_URL_TTL`
seconds, for that call only). A supervisor sees every call; an agent only the calls it
answered, and gets 404 — not 403 — for any other, on every route, so a call id reveals
nothing. The agent filter of an agent's search is its own id, whatever it asks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from coach import recordings
from coach.events import DISPOSITIONS, SENTIMENTS, SPEAKERS, is_call_id
from coach.record import read
from coach.record.search import MAX_LIMIT, CursorError, Filters, search
from relay import history_export
from relay.api import _principal, error
from relay.auth import AuthError, Principal
from relay.history_audio import recording_response

if TYPE_CHECKING:
    from relay.settings import RelaySettings

log = logging.getLogger("relay.history")

MEDIA_URL_TTL = 120
"""Seconds a signed media URL stays valid (DESIGN.md: at most 120)."""
POOL_MAX = 8
"""Database connections of one relay for history; more requests wait for one."""
POOL_TIMEOUT_S = 5.0
"""How long a request waits for a connection before 503."""
CSV_PAGE = MAX_LIMIT
"""Calls fetched per query while streaming a CSV export."""

SEARCH_PARAMS = frozenset(
    {
        "q",
        "agent",
        "from",
        "to",
        "disposition",
        "sentiment",
        "rule",
        "minDuration",
        "maxDuration",
        "minSilence",
        "minAgentTalkRatio",
        "maxAgentTalkRatio",
        "minOvertalk",
        "speaker",
        "lang",
    }
)
EXPORT_FORMATS = {
    "json": "application/json",
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


class BadParam(ValueError):
    """A query parameter that is malformed (400, naming it)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class History:
    """The history routes' database pool and media-URL signer."""

    def __init__(self, database_url: str | None, secret: str, recordings_dir: Path | None) -> None:
        self.pool = (
            AsyncConnectionPool(
                database_url,
                min_size=1,
                max_size=POOL_MAX,
                timeout=POOL_TIMEOUT_S,
                open=False,
                kwargs={"autocommit": True},
            )
            if database_url
            else None
        )
        # A key of its own, so a media signature is never also a valid token signature.
        self._key = hmac.new(secret.encode(), b"coach media-url v1", hashlib.sha256).digest()
        self.recordings_dir = recordings_dir

    async def open(self) -> None:
        """Open the pool without waiting for the database (requests get 503 until it is up)."""
        if self.pool is not None:
            await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool."""
        if self.pool is not None:
            await self.pool.close()

    def sign(self, call_id: str, expires: int) -> str:
        """Signature of a media URL for `call_id` valid until `expires` (epoch seconds)."""
        msg = f"{call_id}\n{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def signed(self, call_id: str, exp: str | None, sig: str | None) -> bool:
        """Whether (`exp`, `sig`) is a valid, unexpired media signature for `call_id`."""
        if not exp or not sig or not exp.isdigit():
            return False
        expires = int(exp)
        if expires < time.time() or expires > time.time() + MEDIA_URL_TTL + 5:
            return False
        return hmac.compare_digest(self.sign(call_id, expires).encode(), sig.encode())

    def audio_file(self, path: str) -> Path | None:
        """The file of a recording path as ari reported it, inside RECORDINGS_DIR only."""
        if self.recordings_dir is None:
            return None
        return recordings.locate(path, self.recordings_dir)


def history(request: Request) -> History:
    """The app's History."""
    found: History = request.app.state.history
    return found


def create_history(settings: RelaySettings) -> History:
    """The History of a relay with `settings`."""
    return History(settings.database_url, settings.auth_secret, settings.recordings_dir)


# -- parameters ----------------------------------------------------------------------------


def _float(params: Any, name: str, lo: float = 0.0, hi: float | None = None) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(name, "must be a number") from None
    if math.isnan(value) or value < lo or (hi is not None and value > hi):
        bound = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise BadParam(name, f"must be a number {bound}")
    return value


def _when(params: Any, name: str, end: bool) -> datetime | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            # A date as `to` includes that whole day.
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(name, "must be a date (2026-12-01) or an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _choices(params: Any, name: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    values = tuple(v.strip() for raw in params.getlist(name) for v in raw.split(",") if v.strip())
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise BadParam(name, f"{bad[0]!r} is not one of {', '.join(allowed)}")
    if any(len(v) > 128 for v in values):
        raise BadParam(name, "values are at most 128 characters")
    return values


def parse_filters(params: Any, principal: Principal) -> Filters | None:
    """The search a request asks for; an agent's is limited to its own calls (None: an agent
    asked for another agent's calls, which finds nothing rather than an error that would
    confirm they exist)."""
    unknown = sorted(set(params.keys()) - SEARCH_PARAMS - {"cursor", "limit"})
    if unknown:
        raise BadParam(unknown[0], f"unknown parameter (known: {', '.join(sorted(SEARCH_PARAMS))})")
    q = params.get("q") or None
    if q is not None and len(q) > 500:
        raise BadParam("q", "at most 500 characters")
    speaker = params.get("speaker") or None
    if speaker is not None and speaker not in SPEAKERS:
        raise BadParam("speaker", f"must be one of {', '.join(SPEAKERS)}")
    agent = params.get("agent") or None
    if agent is not None and len(agent) > 64:
        raise BadParam("agent", "at most 64 characters")
    if principal.role == "agent":
        if agent not in (None, principal.agent):
            return None
        agent = principal.agent
    lang = params.get("lang") or None
    if lang is not None and len(lang) > 16:
        raise BadParam("lang", "at most 16 characters")
    return Filters(
        q=q,
        speaker=speaker,
        agent=agent,
        since=_when(params, "from", end=False),
        until=_when(params, "to", end=True),
        dispositions=_choices(params, "disposition", DISPOSITIONS),
        sentiments=_choices(params, "sentiment", SENTIMENTS),
        rules=_choices(params, "rule", None),
        min_duration=_float(params, "minDuration"),
        max_duration=_float(params, "maxDuration"),
        min_silence=_float(params, "minSilence"),
        min_agent_talk_ratio=_float(params, "minAgentTalkRatio", 0.0, 1.0),
        max_agent_talk_ratio=_float(params, "maxAgentTalkRatio", 0.0, 1.0),
        min_overtalk=_float(params, "minOvertalk"),
        lang=lang,
    )


def _limit(params: Any) -> int:
    raw = params.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadParam("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


# -- routes --------------------------------------------------------------------------------


def _who(request: Request) -> Principal | Response:
    try:
        principal = _principal(request)
    except AuthError as exc:
        return error(exc.status, exc.message)
    return principal


def _unavailable() -> Response:
    return error(503, "the call record is not available, retry")


async def list_history(request: Request) -> Response:
    """`GET /history`: one page of matching calls and the cursor of the next."""
    principal = _who(request)
    if isinstance(principal, Response):
        return principal
    h = history(request)
    if h.pool is None:
        return error(503, "the call record is not configured (DATABASE_URL)")
    try:
        filters = parse_filters(request.query_params, principal)
        limit = _limit(request.query_params)
    except BadParam as exc:
        return error(400, str(exc), field=exc.name)
    if filters is None:
        return JSONResponse({"calls": [], "nextCursor": None, "order": "time"})
    try:
        async with h.pool.connection() as conn:
            page = await search(conn, filters, limit, request.query_params.get("cursor") or None)
    except CursorError as exc:
        return error(400, str(exc), field="cursor")
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable, TimeoutError) as exc:
        log.warning("history search failed", extra={"error": str(exc)})
        return _unavailable()
    return JSONResponse({"calls": page.calls, "nextCursor": page.next_cursor, "order": page.order})


async def export_csv(request: Request) -> Response:
    """`GET /history/export.csv`: every call the search matches, streamed as CSV."""
    principal = _who(request)
    if isinstance(principal, Response):
        return principal
    h = history(request)
    pool = h.pool
    if pool is None:
        return error(503, "the call record is not configured (DATABASE_URL)")
    try:
        filters = parse_filters(request.query_params, principal)
        if "cursor" in request.query_params or "limit" in request.query_params:
            raise BadParam("cursor", "an export has every matching call: no cursor or limit")
    except BadParam as exc:
        return error(400, str(exc), field=exc.name)

    async def rows() -> AsyncIterator[str]:
        yield history_export.csv_header()
        if filters is None:
            return
        cursor: str | None = None
        while True:
            async with pool.connection() as conn:
                page = await search(conn, filters, CSV_PAGE, cursor)
            yield history_export.csv_rows(page.calls)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


async def _visible_call(request: Request, principal: Principal) -> tuple[str, Response | None]:
    """The path's call id, and a response if the caller may not have it (404 alike for a call
    that does not exist and for another agent's)."""
    call_id = request.path_params["call_id"]
    if not is_call_id(call_id):
        return call_id, error(400, "malformed call id")
    pool = history(request).pool
    if pool is None:
        return call_id, error(503, "the call record is not configured (DATABASE_URL)")
    try:
        async with pool.connection() as conn:
            exists, agent = await read.call_agent(conn, call_id)
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable, TimeoutError):
        return call_id, _unavailable()
    if not exists or not principal.may_see(agent):
        return call_id, error(404, "unknown call")
    return call_id, None


async def _load(request: Request, call_id: str) -> dict[str, Any] | Response:
    pool = history(request).pool
    assert pool is not None  # checked by _visible_call
    try:
        async with pool.connection() as conn:
            call = await read.load_call(conn, call_id)
    except (psycopg.OperationalError, TimeoutError):
        return _unavailable()
    return call if call is not None else error(404, "unknown call")


async def get_call(request: Request) -> Response:
    """`GET /history/{callId}`: the call, transcript, coaching, summary and metrics, and the
    transcript of record beside the live one (`recordTranscript`: {status, model, lang,
    finishedAt, utterances}, null before the second pass queued it)."""
    principal = _who(request)
    if isinstance(principal, Response):
        return principal
    call_id, refused = await _visible_call(request, principal)
    if refused is not None:
        return refused
    call = await _load(request, call_id)
    return call if isinstance(call, Response) else JSONResponse(call)


async def export_call(request: Request) -> Response:
    """`GET /history/{callId}/export?format=json|vtt|srt|txt`, as a download."""
    principal = _who(request)
    if isinstance(principal, Response):
        return principal
    fmt = request.query_params.get("format", "json")
    if fmt not in EXPORT_FORMATS:
        return error(400, f"format must be one of {', '.join(EXPORT_FORMATS)}", field="format")
    call_id, refused = await _visible_call(request, principal)
    if refused is not None:
        return refused
    call = await _load(request, call_id)
    if isinstance(call, Response):
        return call
    headers = {"Content-Disposition": f'attachment; filename="{quote(call_id)}.{fmt}"'}
    if fmt == "json":
        return JSONResponse(call, headers=headers)
    body = {"vtt": history_export.vtt, "srt": history_export.srt, "txt": history_export.txt}[fmt](
        call
    )
    return Response(body, media_type=EXPORT_FORMATS[fmt], headers=headers)


async def media_url(request: Request) -> Response:
    """`POST /history/{callId}/media-url`: a signed audio URL for this call, valid 120 s."""
    principal = _who(request)
    if isinstance(principal, Response):
        return principal
    call_id, refused = await _visible_call(request, principal)
    if refused is not None:
        return refused
    expires = int(time.time()) + MEDIA_URL_TTL
    sig = history(request).sign(call_id, expires)
    return JSONResponse(
        {
            "url": f"/history/{quote(call_id)}/audio?exp={expires}&sig={sig}",
            "expiresAt": expires,
        }
    )


async def audio(request: Request) -> Response:
    """`GET /history/{callId}/audio`: the call's recording, with HTTP Range; a signed URL
    (`exp`, `sig`) or a bearer token."""
    h = history(request)
    call_id = request.path_params["call_id"]
    if not is_call_id(call_id):
        return error(400, "malformed call id")
    if "exp" in request.query_params or "sig" in request.query_params:
        if not h.signed(call_id, request.query_params.get("exp"), request.query_params.get("sig")):
            return error(401, "the media URL is invalid or expired: ask for a new one")
    else:
        principal = _who(request)
        if isinstance(principal, Response):
            return principal
        _, refused = await _visible_call(request, principal)
        if refused is not None:
            return refused
    if h.pool is None:
        return error(503, "the call record is not configured (DATABASE_URL)")
    try:
        async with h.pool.connection() as conn:
            path = await read.recording_path(conn, call_id)
    except (psycopg.OperationalError, TimeoutError):
        return _unavailable()
    found = h.audio_file(path) if path else None
    if found is None:
        return error(404, "no recording for this call")
    return recording_response(found, request)


def routes() -> list[Route]:
    """The history routes, in matching order (export.csv before the call id)."""
    return [
        Route("/history", list_history, methods=["GET"]),
        Route("/history/export.csv", export_csv, methods=["GET"]),
        Route("/history/{call_id}", get_call, methods=["GET"]),
        Route("/history/{call_id}/export", export_call, methods=["GET"]),
        Route("/history/{call_id}/audio", audio, methods=["GET"]),
        Route("/history/{call_id}/media-url", media_url, methods=["POST"]),
    ]
