"""`WS /ws?callId=<id>|*&since=<id>`: replay a call's history, then stream it live.

Authentication never rides in the URL (URLs end up in proxy logs and browser history): a
service or tool sends `Authorization: Bearer <token>` with the handshake; a browser, which
cannot set headers on a WebSocket, sends `{"type":"auth","token":"..."}` as its first message
within AUTH_TIMEOUT_S. `?token=` is refused.

Frames to the client hold one or more JSON objects, one per line (NDJSON; under load the
relay batches what is queued for a client into one frame): bus events (with `id`), plus two
relay notices:
`{"type":"relay.live","lastId":...}` when the replay is done, and `{"type":"relay.gap",
"firstId":...}` when `since` is older than what the bus still holds (events were trimmed).
A client resumes after any disconnect by reconnecting with `since=<last id it saw>`.

Close codes: 4400 bad request, 4401 missing/invalid/expired token, 4403 not allowed to see
the call, 4404 unknown call (agents only), 4008 too slow (see subscriber.py), 1011 bus down
during the replay or a failed writer/reader task (retry), 1012 relay shutting down (retry).
The codes are `coach.web.CloseCode`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from coach.bus import BusEvent
from coach.errors import BusUnavailable
from coach.events import EVENT_ID_RE, is_call_id, parse_id
from coach.tasks import TaskSet, first_completed
from coach.web import CloseCode, Refused, bearer
from relay.auth import AuthError, Principal
from relay.subscriber import Subscriber, SubState

if TYPE_CHECKING:
    from relay.app import RelayState

log = logging.getLogger("relay.ws")

PAGE = 1000
"""Events read from Redis per replay page."""
FRAME_BYTES = 64 * 1024
"""Most bytes of events batched into one frame (clients' default frame limits are 1 MiB)."""
SEND_BATCH = 256
"""Events the writer takes from the queue at a time."""
AUTH_TIMEOUT_S = 5.0
"""How long a connection without an Authorization header has to send its auth message."""
AUTH_MESSAGE_BYTES = 4096
"""Largest auth message read (a browser token is ~200 bytes)."""


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one browser or tool connection."""
    state: RelayState = websocket.app.state.relay
    await websocket.accept()
    sub: Subscriber | None = None
    try:
        principal, call_id, since = await _admit(websocket, state)
        dropped = state.metrics.dropped
        sub = Subscriber(
            principal, call_id, state.settings.client_buffer, lambda t: dropped.labels(t).inc()
        )
        state.hub.subscribe(sub)
        log.info(
            "client subscribed",
            extra={
                "callId": call_id,
                "role": principal.role,
                "agent": principal.agent,
                "since": since,
            },
        )
        await _replay(websocket, state, sub, since)
        sub.go_live()
        await _pump(websocket, sub, state)
    except Refused as refused:
        await _close(websocket, refused.code, refused.reason, state)
    except BusUnavailable as exc:
        log.warning(
            "bus unavailable during replay",
            extra={"callId": sub.call_id if sub else None, "error": str(exc)},
        )
        await _close(websocket, CloseCode.INTERNAL, "bus unavailable; reconnect", state)
    except WebSocketDisconnect:
        pass
    finally:
        if sub is not None:
            state.hub.unsubscribe(sub)
            if sub.state is SubState.CLOSED and websocket.client_state is WebSocketState.CONNECTED:
                resume = f"; reconnect with since={sub.last_sent}" if sub.last_sent else ""
                await _close(
                    websocket, CloseCode.SERVICE_RESTART, "relay shutting down" + resume, state
                )
            sub.close()


async def _admit(websocket: WebSocket, state: RelayState) -> tuple[Principal, str, str | None]:
    params = websocket.query_params
    call_id = params.get("callId")
    if not call_id:
        raise Refused(CloseCode.BAD_REQUEST, "callId is required (a call id or *)")
    if call_id != "*" and not is_call_id(call_id):
        raise Refused(CloseCode.BAD_REQUEST, "callId is malformed")
    since = params.get("since") or None
    if since is not None and not EVENT_ID_RE.match(since):
        raise Refused(CloseCode.BAD_REQUEST, "since must be an event id like 1700000000000-0")
    if "token" in params:
        raise Refused(
            CloseCode.UNAUTHORIZED, 'a token in the URL is refused: send {"type":"auth"} first'
        )
    credential = bearer(websocket.headers.get("authorization"))
    if credential is None:
        credential = await _auth_message(websocket)
    try:
        principal = state.auth.authenticate(credential)
    except AuthError as exc:
        raise Refused(CloseCode.UNAUTHORIZED, exc.message) from None
    if principal.service is not None and not principal.service.may("read"):
        raise Refused(CloseCode.FORBIDDEN, f"token {principal.service.name!r} may not read calls")
    if call_id != "*" and principal.role == "agent":
        agent = await state.hub.agent_of(call_id)
        if agent is None:
            raise Refused(CloseCode.UNKNOWN_CALL, "unknown call")
        if not principal.may_see(agent):
            raise Refused(CloseCode.FORBIDDEN, "this call belongs to another agent")
    return principal, call_id, since


async def _auth_message(websocket: WebSocket) -> str:
    """The token of the client's first message `{"type":"auth","token":"..."}`."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            message = await websocket.receive()
    except TimeoutError:
        raise Refused(
            CloseCode.UNAUTHORIZED, f"no auth message within {AUTH_TIMEOUT_S:g} s"
        ) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if not isinstance(text, str) or len(text) > AUTH_MESSAGE_BYTES:
        raise Refused(CloseCode.UNAUTHORIZED, 'the first message must be {"type":"auth"}')
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("type") != "auth":
        raise Refused(CloseCode.UNAUTHORIZED, 'the first message must be {"type":"auth"}')
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise Refused(CloseCode.UNAUTHORIZED, "missing token")
    return token


async def _replay(
    websocket: WebSocket, state: RelayState, sub: Subscriber, since: str | None
) -> None:
    bus = state.bus
    if sub.call_id != "*":
        if since is not None:
            await _gap_notice(websocket, await bus.first_id(sub.call_id), since)
        after = since
        while True:
            page = await bus.read_call(sub.call_id, after=after, count=PAGE)
            await _send_events(websocket, sub, page)
            if page:
                after = page[-1].id
                sub.call_floor[sub.call_id] = parse_id(after)
            if len(page) < PAGE:
                break
        if after is not None:
            sub.call_floor[sub.call_id] = parse_id(after)
    elif since is not None:
        # Resume of the all-calls feed: the global stream holds every call in id order.
        await _gap_notice(websocket, await bus.first_id(), since)
        after = since
        sub.floor = parse_id(since)
        while True:
            page = await bus.read_all(after, PAGE)
            await _send_events(
                websocket, sub, [e for e in page if sub.principal.may_see(await _agent(state, e))]
            )
            if page:
                after = page[-1].id
                sub.floor = parse_id(after)
            if len(page) < PAGE:
                break
    else:
        # Fresh all-calls feed: the history of each active call the principal may see, up to
        # a watermark taken first, without partials (superseded by finals; the next live
        # partial follows shortly). Everything after the watermark comes live, in id order,
        # so the last id a client saw is always a safe `since` for resuming.
        watermark = await bus.last_id()
        sub.floor = parse_id(watermark)
        merged: list[BusEvent] = []
        for call_id, started in (await bus.active_calls()).items():
            if not sub.principal.may_see(started.get("agent")):
                continue
            after_call: str | None = None
            while True:
                page = await bus.read_call(call_id, after=after_call, count=PAGE)
                merged.extend(
                    e for e in page if e.type != "partial" and parse_id(e.id) <= sub.floor
                )
                if page:
                    after_call = page[-1].id
                if len(page) < PAGE or parse_id(page[-1].id) > sub.floor:
                    break
        merged.sort(key=lambda e: parse_id(e.id))
        await _send_events(websocket, sub, merged)
    await websocket.send_text(json.dumps({"type": "relay.live", "lastId": sub.last_sent}))


async def _send_events(websocket: WebSocket, sub: Subscriber, events: list[BusEvent]) -> None:
    """Replayed events, batched into frames."""
    for frame, last_id in _frames([(e.json(), e.id) for e in events]):
        await websocket.send_text(frame)
        sub.last_sent = last_id


def _frames(items: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Group (json, id) pairs into frames of one event per line, each at most FRAME_BYTES
    (a single larger event goes alone); yields (frame, id of its last event)."""
    lines: list[str] = []
    size = 0
    for i, (text, _event_id) in enumerate(items):
        if lines and size + len(text) > FRAME_BYTES:
            yield "\n".join(lines), items[i - 1][1]
            lines, size = [], 0
        lines.append(text)
        size += len(text) + 1
    if lines:
        yield "\n".join(lines), items[-1][1]


async def _agent(state: RelayState, event: BusEvent) -> str | None:
    if event.type == "call.started":
        agent = event.data().get("agent")
        return agent if isinstance(agent, str) else None
    return await state.hub.agent_of(event.call_id)


async def _gap_notice(websocket: WebSocket, first_id: str | None, since: str) -> None:
    if first_id is not None and parse_id(first_id) > parse_id(since):
        # We cannot tell "trimmed" from "since predates the call"; both mean: events between
        # `since` and `firstId` may be missing from this replay.
        await websocket.send_text(
            json.dumps({"type": "relay.gap", "firstId": first_id, "since": since})
        )


async def _pump(websocket: WebSocket, sub: Subscriber, state: RelayState) -> None:
    """Run the writer, a reader (to notice the client leaving) and the overflow watch until one
    ends. The watch matters: a stalled client blocks the writer inside `send`. A writer or
    reader that fails is logged with the call id and counted by the task set; the client is
    closed with 1011 and the id to resume from."""
    call_id = sub.call_id if sub.call_id != "*" else None
    async with TaskSet("relay", registry=state.metrics.registry) as tasks:
        writer = tasks.spawn(_write(websocket, sub), "ws-writer", call_id=call_id)
        reader = tasks.spawn(_read(websocket), "ws-reader", call_id=call_id)
        watch = tasks.spawn(sub.cut_off.wait(), "ws-overflow", call_id=call_id)
        done = await first_completed(writer, reader, watch)
    resume = f"reconnect with since={sub.last_sent or ''}"
    if watch in done:
        raise Refused(CloseCode.SLOW_CONSUMER, f"too slow; {resume}")
    if any(not task.cancelled() and task.exception() is not None for task in done):
        raise Refused(CloseCode.INTERNAL, f"relay error; {resume}")


async def _write(websocket: WebSocket, sub: Subscriber) -> None:
    """Send what the hub queued until the subscription closes or the client leaves."""
    try:
        while True:
            await sub.wakeup.wait()
            if sub.state is SubState.CLOSED:
                return
            # Everything queued goes in one frame, one event per line: under load a client gets
            # fewer, bigger frames, which costs both ends far less than one frame per event.
            batch = sub.take(SEND_BATCH)
            for frame, last_id in _frames([(m.text, m.id) for m in batch]):
                await websocket.send_text(frame)
                sub.last_sent = last_id
    except WebSocketDisconnect:
        return  # the client left mid-send: not a failure


async def _read(websocket: WebSocket) -> None:
    """Return when the client leaves."""
    while True:
        message = await websocket.receive()
        # Clients have nothing to say after connecting; frames are read (size-capped by the
        # server) and ignored, so that a disconnect is noticed at once.
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int, reason: str, state: RelayState) -> None:
    state.metrics.disconnects.labels(str(int(code))).inc()
    if websocket.client_state is WebSocketState.CONNECTED:
        # A stalled client may never read the close frame: do not wait for it for long.
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            async with asyncio.timeout(state.settings.ws_close_timeout):
                await websocket.close(code=code, reason=reason[:120])
