"""Pieces every HTTP/WebSocket service shares: bearer tokens, refusals with close codes, and
uvicorn embedded in a service's own loop with its `/health` and `/metrics` app."""

from __future__ import annotations

import contextlib
import enum
import hmac
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class CloseCode(enum.IntEnum):
    """WebSocket close codes of every service: RFC 6455's, and ours in 4000-4999 (4xxx mirrors
    the HTTP status it stands for)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003
    BAD_PAYLOAD = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    SERVICE_RESTART = 1012
    TRY_LATER = 1013
    SLOW_CONSUMER = 4008
    """The client read too slowly; the reason carries the last id it was sent."""
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    UNKNOWN_CALL = 4404


class Refused(Exception):
    """Close (or refuse) a WebSocket with `code` and a reason the client can show."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service's loop: the service, not uvicorn, owns the signal handlers
    (it stops its own work first, then the server)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals alone."""
        yield


def embedded_server(app: Any, host: str, port: int) -> EmbeddedServer:
    """An `EmbeddedServer` for `app` with the settings every service uses (no access log,
    logging left to `coach.logs`, no lifespan)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="off", access_log=False
    )
    return EmbeddedServer(config)


HealthFn = Callable[[], Awaitable[dict[str, Any]]]


def health_app(
    health: HealthFn,
    registry: CollectorRegistry | None = None,
    *,
    details: HealthFn | None = None,
    token: str | None = None,
) -> Starlette:
    """`GET /health` (200 when `status` is ok, else 503) and `GET /metrics` (`registry`, or
    prometheus_client's process-wide one). An anonymous caller gets `health()`; `details()`
    (addresses, error texts) only with `Authorization: Bearer <token>`."""

    async def health_route(request: Request) -> Response:
        presented = bearer(request.headers.get("authorization"))
        allowed = (
            details is not None
            and token is not None
            and presented is not None
            and hmac.compare_digest(presented.encode(), token.encode())
        )
        body = await (details() if allowed and details is not None else health())
        return JSONResponse(body, status_code=200 if body.get("status") == "ok" else 503)

    async def metrics_route(_: Request) -> Response:
        data = generate_latest(registry) if registry is not None else generate_latest()
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", health_route), Route("/metrics", metrics_route)])
