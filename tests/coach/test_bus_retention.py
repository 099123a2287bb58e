"""The all-events stream's time bound (entries older than BUS_EVENTS_RETENTION_S are trimmed
as new ones arrive), its length bound still holding, and consumers surviving entries that were
trimmed or erased while pending. Old entries are written with old ids: no clock, no sleeps."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis
from tests.events import final, started

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def add_raw(bus: Bus, ms: int, n: int, call_id: str = "old-call") -> None:
    """`n` entries in the all-events stream with ids at `ms` (as the bus writes them)."""
    async with bus.redis.pipeline(transaction=False) as pipe:
        for seq in range(n):
            pipe.xadd(
                bus.events_key,
                {"c": call_id, "t": "final", "e": '{"type":"final"}'},
                id=f"{ms}-{seq}",
            )
        await pipe.execute()


async def node_size(bus: Bus) -> int:
    """Entries per stream node: `~` trimming removes whole nodes only."""
    got: Any = await bus.redis.config_get("stream-node-max-entries")
    return int(got["stream-node-max-entries"])


async def test_entries_older_than_the_time_bound_are_trimmed(bus: Bus) -> None:
    bound_ms = bus.config.events_retention_s * 1000
    old = now_ms() - bound_ms - 60_000
    await add_raw(bus, old, 1000)
    await add_raw(bus, now_ms() - bound_ms // 2, 5, "recent-call")  # inside the bound
    event = await bus.publish(started("new-call"))
    entries: Any = await bus.redis.xrange(bus.events_key)
    too_old = [eid for eid, _ in entries if int(eid.split("-")[0]) < now_ms() - bound_ms]
    assert len(too_old) < await node_size(bus)  # at most the node shared with newer entries
    assert sum(1 for _, f in entries if f["c"] == "recent-call") == 5
    assert entries[-1][0] == event["id"]


async def test_the_length_bound_still_holds(redis_server: EmbeddedRedis) -> None:
    config = dataclasses.replace(BusConfig(prefix=f"len{now_ms()}"), global_maxlen=1000)
    bus = Bus.connect(redis_server.url, config)
    try:
        await add_raw(bus, now_ms() - 1000, 3000, "recent")  # all inside the time bound
        await bus.publish(started("c1"))
        assert await bus.redis.xlen(bus.events_key) <= 1000 + await node_size(bus)
    finally:
        await bus.close()


async def test_a_shorter_time_bound_trims_more(redis_server: EmbeddedRedis) -> None:
    config = dataclasses.replace(BusConfig(prefix=f"tb{now_ms()}"), events_retention_s=60)
    bus = Bus.connect(redis_server.url, config)
    try:
        await add_raw(bus, now_ms() - 120_000, 500)  # two minutes old: past a 60 s bound
        await bus.publish(started("c1"))
        assert await bus.redis.xlen(bus.events_key) <= await node_size(bus)
    finally:
        await bus.close()


async def test_pending_entries_deleted_meanwhile_are_skipped_and_acknowledged(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    first = await bus.publish(started("c1"))
    await bus.publish(final("c1", "hola"))
    read = await bus.read_group("g", "me", block_ms=None)
    assert len(read) == 2
    await bus.redis.xdel(bus.events_key, first["id"])  # trimmed, or the call erased
    again = await bus.read_group("g", "me", block_ms=None, pending=True)
    assert [e.type for e in again] == ["final"]
    assert (await bus.redis.xpending(bus.events_key, "g"))["pending"] == 1


def test_the_bounds_come_from_the_environment() -> None:
    from coach.settings import Env, SettingsError

    config = BusConfig.from_env(
        Env({"BUS_EVENTS_RETENTION_S": "7200", "BUS_LAG_ALARM_FRACTION": "0.25"})
    )
    assert (config.events_retention_s, config.lag_alarm_fraction) == (7200, 0.25)
    with pytest.raises(SettingsError, match="BUS_EVENTS_RETENTION_S"):
        BusConfig.from_env(Env({"BUS_EVENTS_RETENTION_S": "5"}))
    with pytest.raises(SettingsError, match="BUS_LAG_ALARM_FRACTION"):
        BusConfig.from_env(Env({"BUS_LAG_ALARM_FRACTION": "2"}))
