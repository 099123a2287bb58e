"""What every worker service's `main()` and `run()` do the same way: check settings before
logging exists, stop on SIGTERM/SIGINT, start an embedded Redis when `REDIS_URL` is unset, and
stop its health/metrics server after its own work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from coach import logs
from coach.redis_server import EmbeddedRedis
from coach.settings import Env, SettingsError, service_env
from coach.web import EmbeddedServer

HTTP_STOP_S = 3.0
"""How long the health server may take to close its connections at shutdown."""


class ServiceSettings(Protocol):
    """The one field `main()` needs of a service's settings."""

    @property
    def log_level(self) -> str:
        """Log level name (LOG_LEVEL)."""
        ...


S = TypeVar("S", bound=ServiceSettings)


def main(
    name: str,
    load: Callable[[Env], S],
    run: Callable[[S], Coroutine[Any, Any, None]],
    environ: dict[str, Any] | None = None,
    *,
    fatal: tuple[type[Exception], ...] = (),
) -> int:
    """Load settings (2 and a message naming the variable when one is bad), set up JSON logs,
    run until stopped; an exception of a `fatal` type (bad content found at start, such as
    a playbook) is logged and also exits 2."""
    env = Env(environ) if environ is not None else service_env()
    try:
        settings = load(env)
    except SettingsError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)  # before logging exists
        return 2
    logs.setup(name, settings.log_level)
    try:
        asyncio.run(run(settings))
    except fatal as exc:
        logging.getLogger(name).error("cannot start", extra={"error": str(exc)})
        return 2
    return 0


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (the service stops its own work, then exits)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def redis_or_embedded(url: str | None, log: logging.Logger) -> tuple[str, EmbeddedRedis | None]:
    """`url`, or the URL of an embedded Redis started here (the caller stops it) when unset."""
    if url is not None:
        return url, None
    embedded = EmbeddedRedis().start()
    log.warning("REDIS_URL not set: started an embedded Redis", extra={"url": embedded.url})
    return embedded.url, embedded


async def stop_http(server: EmbeddedServer, http: asyncio.Task[None]) -> None:
    """Ask the health/metrics server to exit and give it `HTTP_STOP_S` to do so."""
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(http), timeout=HTTP_STOP_S)
