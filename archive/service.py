"""`python -m archive`: settings, bus, database (migrated at start), the archiver loop, and the
health/metrics HTTP server (127.0.0.1 by default; nothing else is served)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from starlette.applications import Starlette

from archive.settings import Settings
from archive.worker import Archiver
from coach import service as shell
from coach.backoff import RECONNECT
from coach.bus import Bus
from coach.lag import LagMonitor
from coach.pg_server import EmbeddedPostgres
from coach.record import roles
from coach.record.migrate import migrate
from coach.service import redis_or_embedded, stop_event, stop_http
from coach.tasks import TaskSet
from coach.web import embedded_server, health_app

log = logging.getLogger("archive")


def make_app(archiver: Archiver, lag: LagMonitor | None = None) -> Starlette:
    """GET /health (bus, database, events written, last id, the group's lag behind the bus)
    and GET /metrics (with `coach_bus_group_lag_seconds{group}` from `lag`)."""

    async def health() -> dict[str, Any]:
        bus_up = await archiver.bus.ping()
        ok = bus_up and archiver.db_up
        return {
            "status": "ok" if ok else "degraded",
            "bus": "up" if bus_up else "down",
            "database": "up" if archiver.db_up else "down",
            "group": archiver.group,
            "consumer": archiver.reader.consumer,
            "written": archiver.written,
            "lastId": archiver.last_id,
            **({"busLag": lag.health()} if lag is not None else {}),
        }

    return health_app(health)


async def migrate_when_up(url: str, stop: asyncio.Event) -> bool:
    """Run the migrations, retrying while the database is not reachable yet (compose starts
    both at once); False if asked to stop first."""
    retry = RECONNECT.retry()
    while not stop.is_set():
        try:
            applied = await asyncio.to_thread(migrate, url)
        except psycopg.OperationalError as exc:
            log.warning("database not reachable yet", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry.next())
            continue
        log.info("call record schema ready", extra={"applied": applied})
        return True
    return False


def embedded_database(settings: Settings) -> tuple[EmbeddedPostgres, str]:
    """Start the embedded PostgreSQL, provision the roles; the archive role's URL."""
    server = EmbeddedPostgres(port=settings.pg_port, data_dir=settings.pg_data_dir).start()
    roles.provision(server.url)
    return server, server.url_for(roles.ARCHIVE, roles.DATABASE)


async def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then stop reading, finish the batch in hand, and exit."""
    stop = stop_event()
    pg: EmbeddedPostgres | None = None
    redis_url, redis = redis_or_embedded(settings.redis_url, log)
    if settings.database_url is None:
        pg, database_url = await asyncio.to_thread(embedded_database, settings)
        log.warning(
            "DATABASE_URL not set: started an embedded PostgreSQL",
            extra={"port": settings.pg_port, "dir": str(settings.pg_data_dir)},
        )
    else:
        database_url = settings.database_url
    bus = Bus.connect(redis_url, settings.bus)
    archiver = Archiver(
        bus,
        database_url,
        group=settings.group,
        consumer=settings.consumer,
        batch=settings.batch,
        block_ms=settings.block_ms,
        claim_idle_ms=settings.claim_idle_ms,
    )
    # Seconds behind, and the alarm before the bus's time bound trims what it has not written.
    lag = LagMonitor(bus, settings.group)
    tasks = TaskSet("archive")
    server = embedded_server(make_app(archiver, lag), settings.host, settings.port)
    http = tasks.spawn(server.serve(), "http")
    try:
        if await migrate_when_up(database_url, stop):
            await archiver.start()
            worker = tasks.spawn(archiver.run(), "archiver")
            tasks.spawn(lag.run(stop), "group-lag")
            log.info(
                "archive started",
                extra={"group": settings.group, "consumer": settings.consumer},
            )
            await stop.wait()
            # Cancelling mid-batch is safe: what was not committed is not acknowledged.
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    finally:
        log.info("shutting down")
        await stop_http(server, http)
        await tasks.close(1)
        await archiver.close()
        await bus.close()
        if pg:
            pg.stop()
        if redis:
            redis.stop()


def main(environ: dict[str, Any] | None = None) -> int:
    """Entry point: 2 = bad configuration (the message names the variable)."""
    return shell.main("archive", Settings.from_env, run, environ)
