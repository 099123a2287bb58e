"""The STT web app: WS /stream, GET /health, GET /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from coach.bus import Bus
from coach.events import SPEAKERS, is_call_id
from coach.publisher import Publisher, PublisherState
from coach.redact import CallContexts
from coach.tasks import TaskSet, first_completed
from coach.tokens import ServiceTokens
from coach.web import CloseCode, Refused, bearer
from stt.engine import EngineConfig, WhisperEngine
from stt.language import CallLanguages, valid_lang
from stt.metrics import SttMetrics
from stt.scheduler import DecodeScheduler, JobKind
from stt.settings import SttSettings
from stt.stream import StreamFailed, StreamParams, SttStream

log = logging.getLogger("stt.app")

SEND_QUEUE = 256
"""Events queued for one client socket. Full: partials are dropped; a final that cannot be
queued within FINAL_SEND_TIMEOUT closes the socket (1008, client not reading)."""
FINAL_SEND_TIMEOUT = 5.0
END_TIMEOUT = 30.0
"""Longest wait for the last finals after `{"type":"end"}` or a vanished client."""


@dataclass
class SttState:
    """Process-wide state: one model, one scheduler, one publisher, the open streams."""

    settings: SttSettings
    engine: WhisperEngine
    scheduler: DecodeScheduler
    publisher: Publisher | None
    """None without REDIS_URL: events only go back on the socket."""
    metrics: SttMetrics
    bus: Bus | None
    tasks: TaskSet
    tokens: ServiceTokens | None = None
    """Who may stream (the `stream` scope); built from the settings when None."""
    streams: set[SttStream] = field(default_factory=set)
    languages: CallLanguages = field(default_factory=CallLanguages)
    """Languages detected per call (`lang=auto`), shared by its streams."""
    redaction: CallContexts = field(default_factory=CallContexts)
    """What each call's finals tell the redactor of its other leg (a payment, a question)."""
    audio_s: float = 0.0
    started: float = field(default_factory=time.monotonic)


def _params(ws: WebSocket, settings: SttSettings) -> StreamParams:
    q = ws.query_params
    call_id = q.get("callId", "")
    if not is_call_id(call_id):
        raise Refused(CloseCode.BAD_REQUEST, "callId is missing or malformed")
    speaker = q.get("speaker", "")
    if speaker not in SPEAKERS:
        raise Refused(CloseCode.BAD_REQUEST, f"speaker must be one of {', '.join(SPEAKERS)}")
    rate_text = q.get("rate", "")
    if rate_text not in ("8000", "16000"):
        raise Refused(CloseCode.BAD_REQUEST, "rate must be 8000 or 16000")
    try:
        offset = float(q.get("offset", "0") or 0)
    except ValueError:
        raise Refused(CloseCode.BAD_REQUEST, "offset must be seconds (a number)") from None
    if not 0 <= offset < 1e7:
        raise Refused(CloseCode.BAD_REQUEST, "offset must be >= 0")
    lang = q.get("lang") or settings.lang
    if lang is not None and not valid_lang(lang):
        raise Refused(CloseCode.BAD_REQUEST, "lang must be a Whisper language code or auto")
    if lang == "auto":
        lang = None
    return StreamParams(call_id, speaker, int(rate_text), lang, offset)


async def stream_endpoint(ws: WebSocket) -> None:
    """WS /stream: PCM16 in, partial/final events out."""
    state: SttState = ws.app.state.stt
    settings = state.settings
    await ws.accept()
    stream: SttStream | None = None
    sender: asyncio.Task[None] | None = None
    code: int = CloseCode.NORMAL
    reason = "end of stream"
    try:
        if "token" in ws.query_params:
            raise Refused(
                CloseCode.UNAUTHORIZED, "a token in the URL is refused: use Authorization: Bearer"
            )
        if state.tokens is None:
            path = settings.service_tokens_file
            state.tokens = ServiceTokens(Path(path) if path else None, settings.relay_token)
        holder = state.tokens.lookup(bearer(ws.headers.get("authorization")))
        if holder is None:
            raise Refused(CloseCode.UNAUTHORIZED, "missing or wrong service token")
        if not holder.may("stream"):
            raise Refused(CloseCode.FORBIDDEN, f"token {holder.name!r} may not stream audio")
        params = _params(ws, settings)
        if len(state.streams) >= settings.max_streams:
            raise Refused(CloseCode.TRY_LATER, f"server busy: {settings.max_streams} streams open")
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SEND_QUEUE)
        sender = state.tasks.spawn(_send_loop(ws, outbox), "ws-sender", call_id=params.call_id)

        async def emit(event: dict[str, Any]) -> None:
            state.metrics.events.labels(event["type"]).inc()
            if state.publisher is not None:
                state.publisher.offer(event)
            if sender.done():
                return  # socket gone: the bus still gets everything
            if event["type"] == "partial":
                with contextlib.suppress(asyncio.QueueFull):
                    outbox.put_nowait(event)
                return
            try:
                await asyncio.wait_for(outbox.put(event), FINAL_SEND_TIMEOUT)
            except TimeoutError:
                sender.cancel()

        stream = SttStream(
            params,
            state.engine,
            state.scheduler,
            emit,
            settings.stream,
            on_final=lambda lag, how: state.metrics.final_lag.labels(how).observe(lag),
            registry=state.metrics.registry,
            languages=state.languages,
            redaction=state.redaction,
        )
        state.streams.add(stream)
        state.metrics.open_streams.set(len(state.streams))
        log.info(
            "stream opened",
            extra={"callId": params.call_id, "speaker": params.speaker, "stream": stream.id},
        )
        code, reason = await _receive_loop(ws, stream, state)
        if code == CloseCode.NORMAL:
            await asyncio.wait_for(stream.finish(), END_TIMEOUT)
            # Let the sender flush what finish() emitted before we close.
            await _flush(outbox, sender)
        elif code == CloseCode.GOING_AWAY:
            # Client vanished mid-utterance: still publish its last words to the bus.
            await asyncio.wait_for(stream.finish(), END_TIMEOUT)
    except Refused as refused:
        code, reason = refused.code, refused.reason
    except StreamFailed as failed:
        # Logged and counted where it happened (coach.tasks); the client reconnects.
        code, reason = CloseCode.INTERNAL, str(failed)
    except TimeoutError:
        code, reason = CloseCode.INTERNAL, "timed out flushing the last utterance"
    except Exception:
        log.exception("stream failed", extra={"callId": ws.query_params.get("callId")})
        code, reason = CloseCode.INTERNAL, "internal error"
    finally:
        if stream is not None:
            await stream.abort()
            state.streams.discard(stream)
            state.metrics.open_streams.set(len(state.streams))
        if sender is not None:
            await state.tasks.cancel(sender)
        state.metrics.closes.labels(str(int(code))).inc()
        if ws.client_state is WebSocketState.CONNECTED and code != CloseCode.GOING_AWAY:
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code=int(code), reason=reason[:120])


async def _receive_loop(ws: WebSocket, stream: SttStream, state: SttState) -> tuple[int, str]:
    max_bytes = state.settings.max_frame_bytes
    bytes_per_s = 2 * stream.params.rate
    while True:
        try:
            message = await ws.receive()
        except WebSocketDisconnect:
            return CloseCode.GOING_AWAY, "client gone"
        if message["type"] == "websocket.disconnect":
            return CloseCode.GOING_AWAY, "client gone"
        data = message.get("bytes")
        if data is not None:
            if len(data) > max_bytes:
                raise Refused(
                    CloseCode.TOO_BIG,
                    f"binary frame of {len(data)} bytes; the limit is {max_bytes}",
                )
            if len(data) % 2:
                raise Refused(CloseCode.BAD_PAYLOAD, "PCM16 frames must have an even byte count")
            state.audio_s += len(data) / bytes_per_s
            state.metrics.audio_seconds.inc(len(data) / bytes_per_s)
            await stream.feed(data)
            continue
        text = message.get("text") or ""
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if isinstance(command, dict) and command.get("type") == "end":
            return CloseCode.NORMAL, "end of stream"
        raise Refused(
            CloseCode.UNSUPPORTED, 'text frames must be {"type":"end"}; audio goes in binary frames'
        )


async def _send_loop(ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        event = await outbox.get()
        try:
            await ws.send_text(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        except (WebSocketDisconnect, OSError):
            return  # the client went away: not a failure (the bus still gets every event)
        outbox.task_done()


async def _flush(outbox: asyncio.Queue[dict[str, Any]], sender: asyncio.Task[None]) -> None:
    """Wait until the sender has sent everything queued (or has stopped, or the timeout)."""
    await first_completed(outbox.join(), sender, wait=FINAL_SEND_TIMEOUT)


async def health(request: Request) -> JSONResponse:
    """Model, device, compute type, open streams, queues and bus state."""
    state: SttState = request.app.state.stt
    s = state.settings
    pub = state.publisher
    return JSONResponse(
        {
            # Degraded: transcription works but events are only buffered, not on the bus.
            "status": "degraded" if pub is not None and pub.state is PublisherState.DOWN else "ok",
            "model": s.model_size,
            "modelPath": s.model_path,
            "device": state.engine.device,
            "computeType": state.engine.compute_type,
            "lang": s.lang or "auto",
            "openStreams": len(state.streams),
            "queue": state.scheduler.depth,
            "bus": pub.state.value if pub is not None else "disabled",
            "busBuffered": pub.depth if pub is not None else 0,
        }
    )


async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    state: SttState = request.app.state.stt
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def build_state(settings: SttSettings, engine: WhisperEngine | None = None) -> SttState:
    """Load the model (unless given) and wire scheduler, publisher and metrics."""
    if engine is None:
        engine = WhisperEngine(
            EngineConfig(
                model_path=settings.model_path,
                device=settings.device,
                compute_type=settings.compute_type,
                cpu_threads=settings.cpu_threads,
                num_workers=settings.decode_workers,
                lang=settings.lang,
                beam_size_final=settings.beam_size,
                min_window_s=settings.min_window_s,
            )
        )
    m = SttMetrics()

    def observe(kind: JobKind, seconds: float) -> None:
        m.decode_seconds.labels(kind.value).observe(seconds)

    scheduler = DecodeScheduler(
        settings.decode_workers,
        settings.max_pending_finals,
        observe,
        registry=m.registry,
        batch_max=settings.batch_max,
        batch_wait_s=settings.batch_wait_ms / 1000,
        batch_observer=m.batch_size.observe,
    )
    tasks = TaskSet("stt", registry=m.registry)
    bus = Bus.connect(settings.redis_url, settings.bus) if settings.redis_url else None
    publisher = Publisher(bus, tasks, capacity=settings.bus_buffer) if bus is not None else None
    state = SttState(settings, engine, scheduler, publisher, m, bus, tasks)
    m.bind(
        lambda: scheduler.depth,
        lambda: scheduler.stats.busy_s / state.audio_s if state.audio_s else 0.0,
        lambda: scheduler.stats.dropped_partials,
        lambda: publisher.depth if publisher is not None else 0,
        lambda: publisher.dropped if publisher is not None else {},
    )
    return state


def create_app(settings: SttSettings, engine: WhisperEngine | None = None) -> Starlette:
    """The ASGI app; the model loads at start-up (lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await asyncio.to_thread(build_state, settings, engine)
        app.state.stt = state
        state.scheduler.start()
        if state.publisher is not None:
            state.publisher.start()
        else:
            log.warning("REDIS_URL is not set: events go back on the socket only")
        log.info(
            "stt ready",
            extra={
                "model": settings.model_path,
                "device": state.engine.device,
                "computeType": state.engine.compute_type,
            },
        )
        try:
            yield
        finally:
            # uvicorn has closed the sockets by now; streams abort, then the queues drain.
            for stream in list(state.streams):
                await stream.abort()
            await state.scheduler.close()
            if state.publisher is not None:
                await state.publisher.close(wait=3.0)
            if state.bus is not None:
                await state.bus.close()
            await state.tasks.close(wait=5.0)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            WebSocketRoute("/stream", stream_endpoint),
        ],
        lifespan=lifespan,
    )
