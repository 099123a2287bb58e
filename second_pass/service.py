"""`python -m second_pass`: priority lowered first (before any thread exists, so every thread
the decoder starts inherits it), then settings, bus, database, model, the reader and worker
tasks, and the health/metrics HTTP server (127.0.0.1 by default; nothing else is served)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from starlette.applications import Starlette

from coach import logs
from coach.bus import Bus
from coach.lag import LagMonitor
from coach.settings import Env, SettingsError, service_env
from coach.tasks import TaskSet
from coach.web import embedded_server, health_app
from second_pass.settings import Settings
from second_pass.transcribe import DecodeConfig, Transcriber
from second_pass.worker import PassConfig, SecondPass

log = logging.getLogger("second_pass")


def lower_priority(nice: int, idle: bool) -> dict[str, Any]:
    """Make this process (and the threads it will start) yield the CPU to the live path: nice
    `nice` and, if `idle`, SCHED_IDLE. Linux applies both per thread and new threads inherit
    them, hence before the model is loaded. Returns what was set (for /health)."""
    done: dict[str, Any] = {"nice": os.nice(max(0, nice - os.nice(0)))}
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            done["sched"] = "idle"
        except OSError as exc:  # not Linux, or refused: nice alone still applies
            log.warning("SCHED_IDLE refused, nice only", extra={"error": str(exc)})
    return done


def make_app(second: SecondPass, lag: LagMonitor, priority: dict[str, Any]) -> Starlette:
    """GET /health (bus, database, queue, model, group lag) and GET /metrics."""

    async def health() -> dict[str, Any]:
        bus_up = await second.bus.ping()
        body = second.health()
        ok = bus_up and second.db_up
        return {
            "status": "ok" if ok else "degraded",
            "bus": "up" if bus_up else "down",
            **body,
            "priority": priority,
            "busLag": lag.health(),
        }

    return health_app(health)


async def run(settings: Settings, priority: dict[str, Any]) -> None:
    """Run until SIGTERM/SIGINT: stop reading, interrupt the decoding in progress (that call
    stays pending for the next start), exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bus = Bus.connect(settings.redis_url, settings.bus)
    transcriber = await asyncio.to_thread(
        Transcriber,
        DecodeConfig(
            settings.model_path,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            beam_size=settings.beam_size,
        ),
    )
    second = SecondPass(
        bus,
        settings.database_url,
        transcriber,
        PassConfig(
            group=settings.group,
            consumer=settings.consumer,
            queue_max=settings.queue_max,
            claim_idle_ms=settings.claim_idle_ms,
            lang=settings.lang,
            recordings_dir=settings.recordings_dir,
            raw_rate=settings.raw_rate,
            redact=settings.redact,
        ),
    )
    lag = LagMonitor(bus, settings.group)
    tasks = TaskSet("second_pass")
    server = embedded_server(make_app(second, lag, priority), settings.host, settings.port)
    http = tasks.spawn(server.serve(), "http")
    try:
        if not await second.wait_for_schema(stop):
            return
        await second.start()
        tasks.spawn(second.read_loop(), "reader")
        worker = tasks.spawn(second.work_loop(), "worker")
        tasks.spawn(lag.run(stop), "group-lag")
        log.info(
            "second pass started",
            extra={
                "group": settings.group,
                "consumer": settings.consumer,
                "model": transcriber.model_name,
                **priority,
            },
        )
        await stop.wait()
        second.interrupt.set()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    finally:
        log.info("shutting down")
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(http), timeout=3)
        await tasks.close(5)
        await second.close()
        await bus.close()


def main(environ: dict[str, Any] | None = None) -> int:
    """Entry point: 2 = bad configuration (the message names the variable)."""
    env = Env(environ) if environ is not None else service_env()
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        print(f"second_pass: configuration error: {exc}")  # before logging exists
        return 2
    logs.setup("second_pass", settings.log_level)
    priority = lower_priority(settings.nice, settings.idle_sched)
    asyncio.run(run(settings, priority))
    return 0
