"""Consumer-group lag in seconds from the bus ids (trimming ignores groups), its gauges, and the
alarm at a fraction of the time bound. Entries carry old ids instead of waiting for time."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from coach.bus import Bus
from coach.errors import BusError
from coach.lag import LagMonitor, measure
from tests.events import started

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return int(time.time() * 1000)


async def add_at(bus: Bus, ms: int, n: int = 1) -> list[str]:
    ids: list[str] = []
    for seq in range(n):
        eid = await bus.redis.xadd(
            bus.events_key, {"c": "c1", "t": "final", "e": "{}"}, id=f"{ms}-{seq}"
        )
        ids.append(str(eid))
    return ids


async def test_a_group_that_finished_everything_lags_zero(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    await bus.publish(started("c1"))
    batch = await bus.read_group("g", "me", block_ms=None)
    await bus.ack("g", [e.id for e in batch])
    lag = await measure(bus, "g")
    assert (lag.seconds, lag.pending) == (0.0, 0)


async def test_undelivered_entries_count_from_the_oldest_one(bus: Bus) -> None:
    now = now_ms()
    await bus.ensure_group("g", start="0")
    await add_at(bus, now - 300_000, 2)  # five minutes old, not read yet
    await add_at(bus, now - 1_000)
    lag = await measure(bus, "g", now_ms=now)
    assert lag.seconds == pytest.approx(300.0)
    assert lag.pending == 0
    assert lag.entries == 3


async def test_pending_entries_count_too(bus: Bus) -> None:
    now = now_ms()
    await bus.ensure_group("g", start="0")
    await add_at(bus, now - 120_000)
    await bus.read_group("g", "me", block_ms=None)  # delivered, never acknowledged
    lag = await measure(bus, "g", now_ms=now)
    assert lag.seconds == pytest.approx(120.0)
    assert lag.pending == 1


async def test_an_unknown_group_is_an_error(bus: Bus) -> None:
    await bus.ensure_group("g")
    with pytest.raises(BusError, match="nope"):
        await measure(bus, "nope")


async def test_the_alarm_rises_past_the_fraction_and_clears(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(bus.config, events_retention_s=1000, lag_alarm_fraction=0.5)
    lagging = Bus(bus.redis, config)
    registry = CollectorRegistry()
    t0 = now_ms()
    clock = {"ms": t0 + 400_000}
    monitor = LagMonitor(lagging, "g", registry=registry, clock=lambda: clock["ms"] / 1000)
    await lagging.ensure_group("g", start="0")
    await add_at(lagging, t0)

    def gauge(name: str) -> float | None:
        return registry.get_sample_value(name, {"group": "g"})

    await monitor.check()  # 400 s behind, the line is at 500 s
    assert not monitor.alarm and gauge("coach_bus_group_lag_alarm") == 0
    assert gauge("coach_bus_group_lag_seconds") == pytest.approx(400.0)
    clock["ms"] = t0 + 600_000
    with caplog.at_level(logging.INFO, logger="coach.lag"):
        await monitor.check()
        assert monitor.alarm and monitor.health()["alarm"] is True
        assert gauge("coach_bus_group_lag_alarm") == 1
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        batch = await lagging.read_group("g", "me", block_ms=None)
        await lagging.ack("g", [e.id for e in batch])
        await monitor.check()
    assert not monitor.alarm and gauge("coach_bus_group_lag_alarm") == 0
    assert any("caught up" in r.getMessage() for r in caplog.records)
    assert monitor.health()["lagSeconds"] == 0.0
