"""Erasure on request: `DELETE /history/{callId}` queues it, `GET /history/{callId}/erasure`
says how it went.

The relay cannot delete anything itself (it reads the call record as a read-only role), so it
writes the request to the erasure queue (coach/erasure.py) and answers 202 with the status URL;
the retention worker (`python -m retention`) erases the call's Redis streams, recordings and
record rows and writes the outcome.

Who may: a supervisor's browser token only. An agent gets 404 for a call that is not theirs
(as on every history route: it does not learn the call exists) and 403 for their own (known
from the bus, or from the call record once the call's stream has expired); a service token
gets 403. A call still in progress gets 409: what it says next would not be erased.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coach.erasure import ErasureQueue, QueueFull
from coach.errors import BusUnavailable
from coach.events import is_call_id
from coach.record import read
from relay.api import _principal, error
from relay.auth import AuthError, Principal

if TYPE_CHECKING:
    from relay.app import RelayState

log = logging.getLogger("relay.erasure")


def _state(request: Request) -> RelayState:
    state: RelayState = request.app.state.relay
    return state


def status_url(call_id: str) -> str:
    """Where the erasure of `call_id` can be followed."""
    return f"/history/{call_id}/erasure"


async def _refusal(request: Request) -> tuple[Principal | None, str, Response | None]:
    """The supervisor asking about a well-formed call id, or the response that refuses."""
    call_id = request.path_params["call_id"]
    try:
        principal = _principal(request)
    except AuthError as exc:
        return None, call_id, error(exc.status, exc.message)
    if not is_call_id(call_id):
        return None, call_id, error(400, "malformed call id")
    if principal.role == "supervisor":
        return principal, call_id, None
    if principal.role == "service":
        return None, call_id, error(403, "erasure needs a supervisor's token")
    try:
        agent = await _agent_of(request, call_id)
    except BusUnavailable:
        return None, call_id, error(503, "bus unavailable, retry")
    if agent is None or not principal.may_see(agent):
        return None, call_id, error(404, "unknown call")
    return None, call_id, error(403, "only a supervisor may erase a call")


async def _agent_of(request: Request, call_id: str) -> str | None:
    """The call's agent: from the bus while its stream lives, else from the call record (an
    unreachable record counts as not knowing: the agent is refused with 404 either way)."""
    agent = await _state(request).hub.agent_of(call_id)
    records = getattr(request.app.state, "history", None)
    pool = getattr(records, "pool", None)
    if agent is not None or pool is None:
        return agent
    try:
        async with pool.connection() as conn:
            _, agent = await read.call_agent(conn, call_id)
    except (psycopg.Error, TimeoutError):
        return None
    return agent


async def request_erasure(request: Request) -> Response:
    """`DELETE /history/{callId}`: queue the call's erasure; 202 with its status."""
    principal, call_id, refused = await _refusal(request)
    if refused is not None:
        return refused
    assert principal is not None
    state = _state(request)
    try:
        if call_id in await state.bus.active_calls():
            return error(409, "the call is in progress: erase it once it has ended")
        status = await ErasureQueue(state.bus.redis, state.settings.bus.prefix).request(
            call_id, by=principal.role
        )
    except QueueFull as exc:
        log.error("erasure queue full", extra={"callId": call_id, "error": str(exc)})
        return error(503, "too many erasures are waiting; retry later")
    except (BusUnavailable, RedisError, OSError):
        return error(503, "bus unavailable, retry")
    log.info("erasure requested", extra={"callId": call_id, "by": principal.role})
    url = status_url(call_id)
    return JSONResponse({**status, "statusUrl": url}, status_code=202, headers={"Location": url})


async def erasure_status(request: Request) -> Response:
    """`GET /history/{callId}/erasure`: the state of the call's erasure (supervisors)."""
    _, call_id, refused = await _refusal(request)
    if refused is not None:
        return refused
    state = _state(request)
    try:
        status = await ErasureQueue(state.bus.redis, state.settings.bus.prefix).status(call_id)
    except (RedisError, OSError):
        return error(503, "bus unavailable, retry")
    if status is None:
        return error(404, "no erasure was requested for this call")
    return JSONResponse(status)


ROUTES = [
    Route("/history/{call_id}", request_erasure, methods=["DELETE"]),
    Route("/history/{call_id}/erasure", erasure_status, methods=["GET"]),
]
"""Mounted by relay/app.py."""
