"""Run the real relay (uvicorn, real sockets) on 127.0.0.1 inside the test's event loop."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis, free_port
from coach.tasks import TaskSet
from fakes.poll import until
from relay.app import create_app
from relay.auth import make_token
from relay.settings import RelaySettings
from tests.events import final, partial, started

__all__ = ["final", "partial", "started"]  # event factories, re-exported for relay tests

SERVICE_TOKEN = "service-token-for-tests-0123456789"
SECRET = "x" * 40
SERVERS = TaskSet("tests")
"""The relays the tests run in their own loop."""


@dataclass
class RelayServer:
    """A running relay and the means to talk to it."""

    settings: RelaySettings
    server: uvicorn.Server
    task: asyncio.Task[None]
    bus: Bus

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def ws_url(self, call_id: str, since: str | None = None) -> str:
        url = f"ws://127.0.0.1:{self.settings.port}/ws?callId={call_id}"
        if since:
            url += f"&since={since}"
        return url

    def token(
        self, role: str, agent: str | None = None, ttl: int = 3600, now: float | None = None
    ) -> str:
        return make_token(SECRET, role, agent, ttl, now=now)

    async def connect(self, call_id: str, token: str | None = None, **kw: Any) -> ClientConnection:
        """Connect as a browser does: the token in the first message, not in the URL."""
        ws = await websockets.connect(self.ws_url(call_id, kw.pop("since", None)), **kw)
        await ws.send(json.dumps({"type": "auth", "token": token or SERVICE_TOKEN}))
        return ws

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)


async def start_relay(redis_url: str, bus_config: BusConfig, **overrides: Any) -> RelayServer:
    settings = RelaySettings(
        relay_token=SERVICE_TOKEN,
        auth_secret=SECRET,
        redis_url=redis_url,
        host="127.0.0.1",
        port=free_port(),
        bus=bus_config,
    )
    settings = replace(settings, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_config=None,
        ws_max_size=settings.ws_max_message_bytes,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = SERVERS.spawn(server.serve(), "relay-server")
    await until(lambda: server.started or task.done(), what="the relay to listen")
    if task.done():
        task.result()  # start-up failed: raise its error
    await app.state.relay.hub.wait_connected()
    return RelayServer(settings, server, task, app.state.relay.bus)


@pytest.fixture
async def relay(redis_server: EmbeddedRedis, bus_config: BusConfig) -> AsyncIterator[RelayServer]:
    """A relay on the session's Redis with a per-test key prefix."""
    server = await start_relay(redis_server.url, bus_config)
    yield server
    await server.stop()


# Events a frame carried beyond the one returned (a frame holds one or more, one per line).
_pending: weakref.WeakKeyDictionary[ClientConnection, deque[str]] = weakref.WeakKeyDictionary()


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """Next event as JSON (fails the test after `timeout` seconds of silence)."""
    pending = _pending.setdefault(ws, deque())
    while not pending:
        frame = await asyncio.wait_for(ws.recv(), timeout)
        text = frame if isinstance(frame, str) else frame.decode()
        pending.extend(line for line in text.split("\n") if line)
    data: dict[str, Any] = json.loads(pending.popleft())
    return data


async def recv_until(
    ws: ClientConnection, stop: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Frames up to and including the first one for which `stop` is true."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await recv_json(ws, timeout)
            out.append(event)
            if stop(event):
                return out
