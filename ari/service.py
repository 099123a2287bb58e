"""The `python -m ari` service: wires ARI REST + events, the controller, gateway, bus, HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from ari.ami import AmiClient
from ari.control import control_routes
from ari.controller import Controller
from ari.events_ws import EventsConnection, WsState
from ari.gateway import MediaGateway
from ari.metrics import Metrics
from ari.rest import AriRest
from ari.settings import Settings
from coach.bus import Bus
from coach.publisher import Publisher
from coach.service import redis_or_embedded, stop_event
from coach.tasks import TaskSet
from coach.tokens import ServiceTokens
from coach.web import EmbeddedServer, embedded_server, health_app

log = logging.getLogger("ari.service")

PUBLISH_CAPACITY = 1000
"""Events (call.started/answered/ended) held while Redis is away; coach.publisher's policy."""


class Service:
    """Start with `await start()`, stop with `await stop()`."""

    def __init__(self, settings: Settings, bus: Bus, *, serve_http: bool = True) -> None:
        self.s = settings
        self.bus = bus
        self.serve_http = serve_http
        self.metrics = Metrics()
        self.tasks = TaskSet("ari", registry=self.metrics.registry)
        """The service's own tasks: event handling, the publisher, the HTTP server."""
        self.media_tasks = TaskSet("ari", registry=self.metrics.registry)
        """The gateway's: STT uplinks and WebSocket media readers (closed with the gateway)."""
        self.rest = AriRest(
            settings.ari_url, settings.ari_user, settings.ari_pass, workers=settings.rest_workers
        )
        self.gateway = MediaGateway(
            bind=settings.media_bind,
            base_port=settings.base_port,
            port_count=settings.port_count,
            stt_url=settings.stt_url,
            token=settings.relay_token,
            buffer_seconds=settings.stt_buffer_seconds,
            tasks=self.media_tasks,
        )
        self.publisher = Publisher(bus, self.tasks, capacity=PUBLISH_CAPACITY)
        self.ami = (
            AmiClient(
                settings.ami_host,
                settings.ami_port,
                settings.ami_user,
                settings.ami_secret,
                tasks=self.tasks,
            )
            if settings.ami_secret
            else None
        )
        """AMI for pausing recordings (MixMonitorMute); None when AMI_SECRET is unset."""
        self.tokens = ServiceTokens(
            Path(settings.service_tokens_file) if settings.service_tokens_file else None,
            fallback=settings.relay_token,
        )
        """Who may use the control routes (scope `control`)."""
        self.controller: Controller | None = None
        self.events: EventsConnection | None = None
        self.http: EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to ARI (in the background, with retries) and start serving."""
        loop = asyncio.get_running_loop()
        self.publisher.start()
        self.controller = Controller(
            self.s, self.rest, self.gateway, self.publisher, self.metrics, ami=self.ami
        )
        if self.ami is not None:
            self.ami.start()
        self.tasks.spawn(self.controller.run(), "controller")
        self.events = EventsConnection(
            self.s.ari_url,
            self.s.ari_app,
            self.s.ari_user,
            self.s.ari_pass,
            loop=loop,
            on_event=self.controller.offer,
            on_connected=self.controller.on_connected,
        )
        self.events.start()
        if self.serve_http:
            self.http = embedded_server(self.app(), self.s.http_host, self.s.http_port)
            self._http_task = self.tasks.spawn(self.http.serve(), "http")

    async def stop(self) -> None:
        """Graceful stop: stop taking events, detach from calls (they stay up), close all."""
        if self.events is not None:
            # On our own pool: asyncio.to_thread would leave default-executor threads behind.
            await self.rest.run(self.events.stop)
        if self.controller is not None:
            await self.controller.detach()
        if self.ami is not None:
            await self.ami.close()
        await self.gateway.close()
        await self.media_tasks.close(wait=5)
        await self.publisher.close()
        if self.http is not None and self._http_task is not None:
            self.http.should_exit = True  # uvicorn finishes its responses, then returns
            await asyncio.gather(self._http_task, return_exceptions=True)
        await self.tasks.close(wait=5)
        self.rest.close()  # idle by now: joins its worker threads at once

    def health(self) -> dict[str, Any]:
        """What GET /health reports."""
        connected = self.events is not None and self.events.state is WsState.CONNECTED
        live = list(self.controller.calls.values()) if self.controller else []
        calls = len(live)
        body: dict[str, Any] = {
            "status": "ok" if connected else "degraded",
            "ari": self.events.state.value if self.events else "idle",
            "calls": calls,
            # Calls going on without a speaker's transcript (a tap failed).
            "degradedCalls": sum(1 for call in live if call.failed_taps),
            "taps": len(self.gateway.taps),
            "portsInUse": self.gateway.ports.in_use,
            "format": self.s.media_format,
            # Recording pause: off (no AMI_SECRET), or the AMI connection's state.
            "ami": self.ami.state.value if self.ami else "off",
        }
        if self.events is not None and self.events.error:
            body["status"], body["error"] = "failed", self.events.error
        return body

    def app(self) -> Starlette:
        """GET /health, GET /metrics, and the control routes (ari/control.py)."""

        async def health() -> dict[str, Any]:
            return self.health()

        app = health_app(health, self.metrics.registry)
        for route in control_routes(lambda: self.controller, self.tokens):
            assert isinstance(route, Route)
            app.router.routes.append(route)
        return app


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT."""
    redis_url, embedded = redis_or_embedded(settings.redis_url, log)
    bus = Bus.connect(redis_url, settings.bus)
    service = Service(settings, bus)
    stop = stop_event()
    await service.start()
    log.info(
        "ari started",
        extra={"ari": settings.ari_url, "app": settings.ari_app, "basePort": settings.base_port},
    )
    await stop.wait()
    log.info("stopping")
    await service.stop()
    await bus.close()
    if embedded is not None:
        embedded.stop()
