"""Call control over ari's own HTTP port (127.0.0.1 by default): what the relay asks of a live
call on a user's behalf. Only a service token with the `control` scope may ask (the relay's
RELAY_TOKEN; coach/tokens.py); the relay has already checked that the user may touch the call.

    POST /calls/{callId}/recording  {"state": "paused"|"resumed"}
      200 {"callId", "state", "at"} | 400 bad body | 401/403 token | 404 no such live call
      | 409 not recorded, or already in that state | 503 AMI not connected / pause off
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ari.recording import RecordingRefused
from coach.events import is_call_id
from coach.tokens import ServiceTokens
from coach.web import bearer

if TYPE_CHECKING:
    from ari.controller import Controller

log = logging.getLogger("ari.control")

MAX_BODY = 1024


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def control_routes(
    controller: Callable[[], Controller | None], tokens: ServiceTokens
) -> list[BaseRoute]:
    """The routes, bound to the service's controller (None until started) and tokens."""

    async def recording(request: Request) -> Response:
        holder = tokens.lookup(bearer(request.headers.get("authorization")))
        if holder is None:
            return _error(401, "a service token is required (Authorization: Bearer)")
        if not holder.may("control"):
            return _error(403, f"token {holder.name!r} lacks the 'control' scope")
        call_id = request.path_params["call_id"]
        if not is_call_id(call_id):
            return _error(400, "malformed call id")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'body must be JSON: {"state": "paused"|"resumed"}')
        state = payload.get("state") if isinstance(payload, dict) else None
        ctl = controller()
        if ctl is None:
            return _error(503, "call control is starting")
        try:
            result = await ctl.recordings.request(ctl.calls.get(call_id), str(state))
        except RecordingRefused as exc:
            log.info(
                "recording %s refused: %s",
                state,
                exc.message,
                extra={"callId": call_id, "status": exc.status, "token": holder.name},
            )
            return _error(exc.status, exc.message)
        return JSONResponse(result)

    return [Route("/calls/{call_id}/recording", recording, methods=["POST"])]
