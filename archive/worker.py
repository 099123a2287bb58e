"""The archive's loop: consumer group in, one transaction per batch, then acknowledge.

Invariants:
- An event is acknowledged only after the transaction that wrote it committed. A crash
  (SIGKILL) between the two leaves it pending: the restarted archive (same consumer name)
  re-reads its pending entries first, and another replica claims them after
  `claim_idle_ms`. Writing is idempotent (coach/record/write.py), so the repeat changes nothing.
- Bounded: one batch of at most `batch` events is in memory at a time; nothing is queued in
  the process. While PostgreSQL is away the loop stops reading and retries with backoff: the
  events wait in the bus's stream (bounded by BUS_GLOBAL_MAXLEN; an outage long enough for the
  stream to be trimmed past the group loses the trimmed events, which `archive_lag_events = -1`
  and a log line say).
- A batch the database refuses for its data (not for being unreachable) is written again
  event by event, each in its own savepoint: the bad event is logged, counted and
  acknowledged, the others are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from redis.exceptions import RedisError

from archive import prom
from coach.backoff import BUS_READER, Backoff
from coach.bus import Bus, BusEvent
from coach.errors import BusUnavailable
from coach.events import parse_id
from coach.group_reader import GroupReader
from coach.record.write import KEPT_TYPES, apply, event_of

log = logging.getLogger("archive")

BACKLOG_INTERVAL_S = 1.0
"""How often the lag gauges are refreshed."""


class Archiver:
    """Reads the group and writes the record; `run()` until cancelled."""

    def __init__(
        self,
        bus: Bus,
        database_url: str,
        *,
        group: str = "archive",
        consumer: str = "archive",
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        backoff: Backoff = BUS_READER,
    ) -> None:
        self.bus = bus
        self.database_url = database_url
        self.group = group
        self.backoff = backoff
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.db_up = False
        self.written = 0
        """Events of kept types written since start (health)."""
        self.last_id: str | None = None
        self.reader = GroupReader(
            bus, group, consumer, count=batch, block_ms=block_ms, claim_idle_ms=claim_idle_ms
        )
        self._next_backlog = 0.0
        self._lag_unknown = False

    async def start(self) -> None:
        """Create the group at the stream's start (a first run archives what is still there)
        and connect to the database, so /health says at once whether it is reachable."""
        await self.bus.ensure_group(self.group, start="0")
        try:
            await self._connection()
        except psycopg.OperationalError as exc:
            log.warning("database unavailable at start, retrying", extra={"error": str(exc)})

    async def close(self) -> None:
        """Close the database connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def run(self) -> None:
        """Read, write, acknowledge, until cancelled; failures are retried with backoff."""
        retry = self.backoff.retry()
        while True:
            try:
                await self.step()
                retry.reset()
            except (BusUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                where = "bus" if isinstance(exc, BusUnavailable) else "database"
                prom.ERRORS.labels(where).inc()
                if where == "database":
                    self.db_up = False
                    await self._drop_connection()
                log.warning("%s unavailable, retrying", where, extra={"error": str(exc)})
                # What was read but not acknowledged is pending: read it again first.
                self.reader.rewind()
                await asyncio.sleep(retry.next())

    async def step(self) -> int:
        """One read-write-acknowledge round; returns how many events it handled."""
        await self._refresh_backlog()
        batch = await self.reader.read()
        if not batch:
            return 0
        await self._write(batch)
        await self.bus.ack(self.group, [ev.id for ev in batch])
        self.last_id = batch[-1].id
        return len(batch)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.database_url)
            self.db_up = True
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def _write(self, batch: Sequence[BusEvent]) -> None:
        events = [event_of(ev.body, ev.id) for ev in batch]
        conn = await self._connection()
        started = time.perf_counter()
        try:
            async with conn.transaction():
                kept = await apply(conn, events)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            log.warning("batch refused, writing its events one by one", extra={"error": str(exc)})
            kept = await self._write_one_by_one(conn, events)
        prom.BATCH_SECONDS.observe(time.perf_counter() - started)
        prom.BATCHES.inc()
        self.db_up = True
        self.written += kept
        for ev in events:
            if ev["type"] in KEPT_TYPES:
                prom.EVENTS.labels(ev["type"]).inc()
            else:
                prom.SKIPPED.inc()
        ms, _ = parse_id(batch[-1].id)
        prom.BEHIND.set(max(0.0, time.time() - ms / 1000))

    async def _write_one_by_one(
        self, conn: psycopg.AsyncConnection[Any], events: Sequence[dict[str, Any]]
    ) -> int:
        kept = 0
        async with conn.transaction():
            for ev in events:
                try:
                    async with conn.transaction():  # a savepoint
                        kept += await apply(conn, [ev])
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise
                except psycopg.Error as exc:
                    prom.REJECTED.inc()
                    log.error(
                        "event refused by the database, dropped",
                        extra={
                            "callId": ev.get("callId"),
                            "id": ev.get("id"),
                            "type": ev.get("type"),
                            "error": str(exc),
                        },
                    )
        return kept

    async def _refresh_backlog(self) -> None:
        now = time.monotonic()
        if now < self._next_backlog:
            return
        self._next_backlog = now + BACKLOG_INTERVAL_S
        lag, pending = await group_backlog(self.bus, self.group)
        if lag is None and not self._lag_unknown:
            log.warning(
                "the bus cannot tell the archive's lag: events it had not read may have been "
                "trimmed (archive_lag_events = -1)"
            )
        self._lag_unknown = lag is None
        prom.LAG.set(-1 if lag is None else lag)
        prom.PENDING.set(pending)


async def group_backlog(bus: Bus, group: str) -> tuple[int | None, int]:
    """(entries not yet delivered to `group`, entries delivered but not acknowledged); the
    first is None when Redis cannot tell (entries were trimmed past the group)."""
    try:
        groups = await bus.redis.xinfo_groups(bus.events_key)
    except (RedisError, OSError) as exc:
        raise BusUnavailable(f"redis unavailable: {exc}") from exc
    for info in groups:
        if info.get("name") == group:
            lag = info.get("lag")
            return (int(lag) if lag is not None else None), int(info.get("pending") or 0)
    return None, 0
