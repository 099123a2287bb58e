"""HTTP routes: `POST /event` for producers, call listings, health and metrics."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coach.errors import BusError, BusUnavailable
from coach.events import EVENT_ID_RE, EventError, is_call_id
from coach.web import bearer
from relay.auth import AuthError, Principal
from relay.hub import HubState

if TYPE_CHECKING:
    from relay.app import RelayState

log = logging.getLogger("relay.api")


def _state(request: Request) -> RelayState:
    state: RelayState = request.app.state.relay
    return state


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error body `{"error": message, ...}` with `status`."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _principal(request: Request) -> Principal:
    if "token" in request.query_params:
        # URLs end up in logs and histories; what a browser cannot fetch with a header will
        # get a short-lived signed URL of its own (DESIGN.md).
        raise AuthError("a token in the URL is refused: use Authorization: Bearer")
    principal = _state(request).auth.authenticate(bearer(request.headers.get("authorization")))
    if principal.service is not None and not principal.service.may("read"):
        raise AuthError(f"token {principal.service.name!r} may not read calls", status=403)
    return principal


class TooLarge(Exception):
    """The request body is over the limit."""


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise TooLarge
    return bytes(chunks)


async def post_event(request: Request) -> Response:
    """Accept one event (object) or a batch (list); all are stored or none is."""
    state = _state(request)
    try:
        producer = state.auth.require_service(bearer(request.headers.get("authorization")))
    except AuthError as exc:
        state.metrics.rejected.labels("401").inc()
        return error(401, exc.message)
    limit = state.settings.max_body_bytes
    try:
        body = await _read_body(request, limit)
    except TooLarge:
        state.metrics.rejected.labels("413").inc()
        return error(413, f"body larger than {limit} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        state.metrics.rejected.labels("400").inc()
        return error(400, f"body is not valid JSON: {exc}")
    single = isinstance(payload, dict)
    events = [payload] if single else payload
    if not isinstance(events, list) or not events:
        state.metrics.rejected.labels("400").inc()
        return error(400, "body must be an event object or a non-empty list of events")
    if len(events) > state.settings.max_batch:
        state.metrics.rejected.labels("413").inc()
        return error(413, f"batch larger than {state.settings.max_batch} events")
    assert producer.service is not None
    types = {str(e.get("type")) for e in events if isinstance(e, dict)}
    refused = sorted(t for t in types if not producer.service.may_publish(t))
    if refused:
        state.metrics.rejected.labels("403").inc()
        log.warning(
            "publish outside the token's scope",
            extra={"token": producer.service.name, "types": refused},
        )
        return error(
            403,
            f"token {producer.service.name!r} may not publish {', '.join(refused)}",
            types=refused,
        )
    try:
        stored = await state.bus.publish_many(events)
    except EventError as exc:
        state.metrics.rejected.labels("400").inc()
        extra = {"field": exc.field} if single else {"field": exc.field, "index": exc.index}
        return error(400, str(exc), **extra)
    except BusUnavailable as exc:
        state.metrics.rejected.labels("503").inc()
        log.warning("event refused: bus unavailable", extra={"error": str(exc)})
        return error(503, "bus unavailable, retry")
    except BusError as exc:
        state.metrics.rejected.labels("500").inc()
        log.error("event refused by redis", extra={"error": str(exc)})
        return error(500, str(exc))
    for event in stored:
        state.metrics.published.labels(event["type"]).inc()
    if single:
        return JSONResponse({"id": stored[0]["id"]})
    return JSONResponse({"ids": [e["id"] for e in stored]})


async def list_calls(request: Request) -> Response:
    """Active calls the caller may see, oldest first."""
    try:
        principal = _principal(request)
    except AuthError as exc:
        return error(exc.status, exc.message)
    try:
        calls = await _state(request).bus.active_calls()
    except BusUnavailable:
        return error(503, "bus unavailable, retry")
    visible = [c for c in calls.values() if principal.may_see(c.get("agent"))]
    visible.sort(key=lambda c: c.get("id", ""))
    return JSONResponse({"calls": visible})


async def call_events(request: Request) -> Response:
    """A call's stored events (`?since=<id>` for those after an id, `?limit=`)."""
    state = _state(request)
    try:
        principal = _principal(request)
    except AuthError as exc:
        return error(exc.status, exc.message)
    call_id = request.path_params["call_id"]
    if not is_call_id(call_id):
        return error(400, "malformed call id")
    since = request.query_params.get("since") or None
    if since is not None and not EVENT_ID_RE.match(since):
        return error(400, "since must be an event id like 1700000000000-0", field="since")
    limit_text = request.query_params.get("limit", "10000")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100_000:
        return error(400, "limit must be an integer from 1 to 100000", field="limit")
    try:
        agent = await state.hub.agent_of(call_id)
        if principal.role == "agent" and not principal.may_see(agent):
            return error(403 if agent else 404, "not your call" if agent else "unknown call")
        events = await state.bus.read_call(call_id, after=since, count=int(limit_text))
    except BusUnavailable:
        return error(503, "bus unavailable, retry")
    if not events and since is None and agent is None:
        return error(404, "unknown call")
    return Response(
        '{"events":[' + ",".join(e.json() for e in events) + "]}", media_type="application/json"
    )


async def health(request: Request) -> Response:
    """200 when the bus is reachable, 503 otherwise; body says what is going on."""
    state = _state(request)
    redis_ok = await state.bus.ping()
    body = {
        "status": "ok" if redis_ok else "degraded",
        "service": "relay",
        "redis": redis_ok,
        "embeddedRedis": state.embedded_redis_url,
        "busReader": state.hub.state.value,
        "clients": state.hub.client_count,
    }
    healthy = redis_ok and state.hub.state is HubState.CONNECTED
    return JSONResponse(body, status_code=200 if healthy else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(
        generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
