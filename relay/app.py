"""Builds the relay's Starlette app from settings and a bus."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from coach.bus import Bus
from coach.tasks import TaskSet
from coach.tokens import ServiceTokens
from relay import api, erasure, history, ws
from relay.auth import Authenticator
from relay.headers import SecurityHeaders
from relay.hub import Hub
from relay.kb import KBRoutes
from relay.kb_report import KBReportRoutes
from relay.metrics import RelayMetrics
from relay.recording import CallControl, set_recording
from relay.settings import RelaySettings

log = logging.getLogger("relay")


@dataclass
class RelayState:
    """What the routes share: settings, bus, hub, auth, metrics, the relay's task set."""

    settings: RelaySettings
    bus: Bus
    hub: Hub
    auth: Authenticator
    metrics: RelayMetrics
    tasks: TaskSet
    control: CallControl
    """ari's control routes (recording pause), reached at ARI_CONTROL_URL."""
    embedded_redis_url: str | None = None


def create_app(
    settings: RelaySettings, bus: Bus | None = None, embedded_redis_url: str | None = None
) -> Starlette:
    """The ASGI app; the hub starts and stops with the app's lifespan."""
    if bus is None:
        if settings.redis_url is None and embedded_redis_url is None:
            raise ValueError("create_app needs a bus, REDIS_URL, or an embedded Redis URL")
        bus = Bus.connect(settings.redis_url or str(embedded_redis_url), settings.bus)
    metrics = RelayMetrics()
    tasks = TaskSet("relay", registry=metrics.registry)
    state = RelayState(
        settings=settings,
        bus=bus,
        hub=Hub(bus, metrics, tasks),
        auth=Authenticator(
            ServiceTokens(settings.service_tokens_file, fallback=settings.relay_token),
            settings.auth_secret,
        ),
        metrics=metrics,
        tasks=tasks,
        control=CallControl(settings.ari_control_url, settings.relay_token),
        embedded_redis_url=embedded_redis_url,
    )

    records = history.create_history(settings)
    knowledge = KBRoutes.create(settings.kb, bus)
    knowledge_report = KBReportRoutes.create(bus, knowledge.kb)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await records.open()
        await state.hub.start()
        knowledge.start(tasks)
        log.info("relay started", extra={"port": settings.port})
        try:
            yield
        finally:
            await state.hub.stop()
            await state.control.close()
            await tasks.close(wait=5.0)
            await records.close()
            await bus.close()
            log.info("relay stopped")

    routes = [
        Route("/event", api.post_event, methods=["POST"]),
        Route("/calls", api.list_calls, methods=["GET"]),
        Route("/calls/{call_id}/events", api.call_events, methods=["GET"]),
        Route("/calls/{call_id}/recording", set_recording, methods=["POST"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        WebSocketRoute("/ws", ws.websocket_endpoint),
        *erasure.ROUTES,
        *history.routes(),
        *knowledge.routes(),
        *knowledge_report.routes(),
    ]
    if settings.web_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=settings.web_dir, html=True), name="web"))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.relay = state
    app.state.history = records
    return app
