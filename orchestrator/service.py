"""`python -m orchestrator`: settings, bus, engine, and the health/metrics HTTP server."""

from __future__ import annotations

import logging
import sys
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette

from coach import service as shell
from coach.bus import Bus
from coach.knowledge.report import KBReport
from coach.knowledge.watch import open_kb
from coach.service import redis_or_embedded, stop_event, stop_http
from coach.tasks import TaskSet
from coach.web import embedded_server, health_app
from orchestrator.engine import Orchestrator
from orchestrator.llm.thread import LLMThread
from orchestrator.playbook import PlaybookError
from orchestrator.playbook_store import PlaybookStore
from orchestrator.settings import Settings

log = logging.getLogger("orchestrator")

SWITCH_INTERVAL_S = 0.0005
"""Interpreter thread switch interval when the LLM thread runs (default 0.005)."""


def connect_bus(url: str, settings: Settings) -> Bus:
    """A bus whose pool waits for a free connection instead of failing.

    redis-py's default pool raises "Too many connections" past 100 concurrent commands; with
    hundreds of calls each catching up at once that error would look like a Redis outage.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_connections,
        timeout=10,
        decode_responses=True,
        socket_connect_timeout=2.0,
        health_check_interval=10,
    )
    return Bus(aioredis.Redis(connection_pool=pool), settings.bus)


def make_app(engine: Orchestrator, health_token: str | None = None) -> Starlette:
    """GET /health and GET /metrics of the process-wide registry (nothing else: the
    orchestrator talks through the bus). The LLM's address and error texts are shown only to
    a caller with ORCH_HEALTH_TOKEN."""

    async def with_bus(body: dict[str, Any]) -> dict[str, Any]:
        body["bus"] = "up" if await engine.bus.ping() else "down"
        if body["bus"] == "down":
            body["status"] = "degraded"
        return body

    async def health() -> dict[str, Any]:
        return await with_bus(engine.public_health())

    async def details() -> dict[str, Any]:
        return await with_bus(engine.health())

    return health_app(health, details=details, token=health_token)


async def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down in order."""
    store = PlaybookStore(settings.playbook_dir, settings.default_lang)
    store.load()
    url, embedded = redis_or_embedded(settings.redis_url, log)
    bus = connect_bus(url, settings)
    llm = LLMThread(settings.llm) if settings.llm.enabled else None
    if llm is not None:
        # Two busy threads share the interpreter lock; the default 5 ms hand-over would be
        # added to playbook alerts whenever the LLM thread is parsing streams.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    if llm is None:
        log.warning(
            "OPENROUTER_API_KEY not set: rules-only mode (playbook alerts, extractive summaries)"
        )
    else:
        log.info(
            "LLM coaching on",
            extra={"baseUrl": settings.llm.base_url, "models": list(settings.llm.models)},
        )
    kb = open_kb(settings.kb)
    if kb is None:
        log.info("KB_DIR not set: no knowledge cards")
    # Otherwise the engine indexes it in a tracked task: embedding a large knowledge base
    # takes a while, and the health port and the playbook alerts must not wait for it.
    report = KBReport(bus.redis, settings.bus.prefix)
    engine = Orchestrator(bus, settings, store, llm, kb=kb, kb_report=report)
    server = embedded_server(make_app(engine, settings.health_token), settings.host, settings.port)
    tasks = TaskSet("orchestrator")
    stop = stop_event()
    await engine.start()
    http = tasks.spawn(server.serve(), "http")
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await engine.stop()
        await stop_http(server, http)
        await tasks.close(1)
        if llm:
            await llm.aclose()
        await bus.close()
        if embedded:
            embedded.stop()


def main(environ: dict[str, Any] | None = None) -> int:
    """Entry point: 2 = bad configuration or playbook (the message says which)."""
    return shell.main("orchestrator", Settings.from_env, run, environ, fatal=(PlaybookError,))
