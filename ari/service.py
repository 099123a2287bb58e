"""The `python -m ari` service: wires ARI REST + events, the controller, gateway, bus, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ari.controller import Controller
from ari.events_ws import EventsConnection, WsState
from ari.gateway import MediaGateway
from ari.metrics import Metrics
from ari.publisher import Publisher
from ari.rest import AriRest
from ari.settings import Settings
from coach.bus import Bus
from coach.redis_server import EmbeddedRedis

log = logging.getLogger("ari.service")


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the service, not uvicorn, owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals alone."""
        yield


class Service:
    """Start with `await start()`, stop with `await stop()`."""

    def __init__(self, settings: Settings, bus: Bus, *, serve_http: bool = True) -> None:
        self.s = settings
        self.bus = bus
        self.serve_http = serve_http
        self.metrics = Metrics()
        self.rest = AriRest(settings.ari_url, settings.ari_user, settings.ari_pass,
                            workers=settings.rest_workers)
        self.gateway = MediaGateway(
            bind=settings.media_bind, base_port=settings.base_port,
            port_count=settings.port_count, stt_url=settings.stt_url,
            token=settings.relay_token, buffer_seconds=settings.stt_buffer_seconds,
        )
        self.publisher: Publisher | None = None
        self.controller: Controller | None = None
        self.events: EventsConnection | None = None
        self.http: EmbeddedServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Connect to ARI (in the background, with retries) and start serving."""
        loop = asyncio.get_running_loop()
        self.publisher = Publisher(self.bus)
        self.controller = Controller(self.s, self.rest, self.gateway, self.publisher, self.metrics)
        self._tasks.append(asyncio.create_task(self.controller.run(), name="ari-controller"))
        self.events = EventsConnection(
            self.s.ari_url, self.s.ari_app, self.s.ari_user, self.s.ari_pass, loop=loop,
            on_event=self.controller.offer, on_connected=self.controller.on_connected,
        )
        self.events.start()
        if self.serve_http:
            config = uvicorn.Config(
                self.app(), host=self.s.http_host, port=self.s.http_port, log_config=None,
                lifespan="off", access_log=False,
            )
            self.http = EmbeddedServer(config)
            self._tasks.append(asyncio.create_task(self.http.serve(), name="ari-http"))

    async def stop(self) -> None:
        """Graceful stop: stop taking events, detach from calls (they stay up), close all."""
        if self.events is not None:
            # On our own pool: asyncio.to_thread would leave default-executor threads behind.
            await self.rest.run(self.events.stop)
        if self.controller is not None:
            await self.controller.detach()
        await self.gateway.close()
        if self.publisher is not None:
            await self.publisher.close()
        if self.http is not None:
            self.http.should_exit = True
        for task in self._tasks:
            if task.get_name() != "ari-http":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.rest.close()  # idle by now: joins its worker threads at once

    def health(self) -> dict[str, Any]:
        """What GET /health reports."""
        connected = self.events is not None and self.events.state is WsState.CONNECTED
        calls = len(self.controller.calls) if self.controller else 0
        body: dict[str, Any] = {
            "status": "ok" if connected else "degraded",
            "ari": self.events.state.value if self.events else "idle",
            "calls": calls, "taps": len(self.gateway.taps),
            "portsInUse": self.gateway.ports.in_use, "format": self.s.media_format,
        }
        if self.events is not None and self.events.error:
            body["status"], body["error"] = "failed", self.events.error
        return body

    def app(self) -> Starlette:
        """GET /health and GET /metrics."""
        async def health(_: Request) -> Response:
            body = self.health()
            return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return Starlette(routes=[Route("/health", health), Route("/metrics", metrics)])


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT."""
    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis().start()
        redis_url = embedded.url
        log.info("REDIS_URL unset: started an embedded Redis at %s", redis_url)
    bus = Bus.connect(redis_url, settings.bus)
    service = Service(settings, bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    log.info("ari started", extra={"ari": settings.ari_url, "app": settings.ari_app,
                                   "basePort": settings.base_port})
    await stop.wait()
    log.info("stopping")
    await service.stop()
    await bus.close()
    if embedded is not None:
        embedded.stop()
