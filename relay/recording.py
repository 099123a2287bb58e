"""`POST /calls/{callId}/recording` {"state": "paused"|"resumed"}: a browser pauses or resumes
a live call's recording (e.g. while a card number is taken).

Who: the call's agent (`call.answered.agent`, else `call.started.agent`: the hub's agent_of) or
a supervisor; an agent gets 404 for another agent's call, as for a call that does not exist.
Service tokens are refused (403): pausing is a person's decision.
How: the relay asks ari's control route (`ARI_CONTROL_URL`, ari's HTTP port on 127.0.0.1)
with its RELAY_TOKEN (scope `control`), and answers with what ari answered. ari, not the
relay, publishes the `call.recording` event, once AMI has muted (or unmuted) MixMonitor.
A synchronous HTTP call rather than a Redis control stream: the user learns at once whether
the recording is really paused (409 not recording, 503 AMI down), and no Redis user gains
write access to a stream that controls calls.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coach.errors import BusUnavailable
from coach.events import is_call_id
from coach.web import bearer
from relay.api import error
from relay.auth import AuthError

if TYPE_CHECKING:
    from relay.app import RelayState

log = logging.getLogger("relay.recording")

MAX_BODY = 1024
STATES = ("paused", "resumed")
TIMEOUT = 10.0
"""Seconds for ari's answer (it waits up to 5 s for AMI's)."""
PASSED_ON = (200, 404, 409, 503)
"""ari's answers the relay hands on as they are; others become 502."""


class CallControl:
    """The relay's client of ari's control routes (one pooled connection)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/")
        self._token = token
        self._client: httpx.AsyncClient | None = None

    async def set_recording(self, call_id: str, state: str) -> tuple[int, dict[str, object]]:
        """(status, body) of ari's answer; 503 when ari cannot be reached."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        try:
            resp = await self._client.post(
                f"{self.base}/calls/{call_id}/recording",
                json={"state": state},
                headers={"Authorization": f"Bearer {self._token}"},
            )
        except httpx.HTTPError as exc:
            log.warning("call control unreachable: %s", exc, extra={"callId": call_id})
            return 503, {"error": "call control (ari) unreachable, retry"}
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:200]}
        if not isinstance(body, dict):
            body = {"error": "unexpected answer from call control"}
        return resp.status_code, body

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def set_recording(request: Request) -> Response:
    """Pause or resume a live call's recording for its agent or a supervisor."""
    state: RelayState = request.app.state.relay
    try:
        if "token" in request.query_params:
            raise AuthError("a token in the URL is refused: use Authorization: Bearer")
        principal = state.auth.authenticate(bearer(request.headers.get("authorization")))
    except AuthError as exc:
        return error(exc.status, exc.message)
    if principal.role == "service":
        return error(403, "a person pauses recordings: use an agent or supervisor token")
    call_id = request.path_params["call_id"]
    if not is_call_id(call_id):
        return error(400, "malformed call id")
    body = await request.body()
    if len(body) > MAX_BODY:
        return error(413, f"body larger than {MAX_BODY} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return error(400, 'body must be JSON: {"state": "paused"} or {"state": "resumed"}')
    want = payload.get("state") if isinstance(payload, dict) else None
    if want not in STATES:
        return error(400, "state must be 'paused' or 'resumed'", field="state")
    try:
        agent = await state.hub.agent_of(call_id)
    except BusUnavailable:
        return error(503, "bus unavailable, retry")
    if agent is None or not principal.may_see(agent):
        # Another agent's call looks exactly like no call at all.
        return error(404, "unknown call")
    status, answer = await state.control.set_recording(call_id, str(want))
    if status == 404:
        # The relay knows the call but ari has no live call by that id: it has ended.
        status, answer = 409, {"error": "the call is not being recorded (it has ended)"}
    elif status not in PASSED_ON:
        log.error("call control answered %d", status, extra={"callId": call_id})
        status, answer = 502, {"error": f"call control answered {status}"}
    log.info(
        "recording %s: %d",
        want,
        status,
        extra={"callId": call_id, "role": principal.role, "agent": principal.agent},
    )
    return JSONResponse(answer, status_code=status)
