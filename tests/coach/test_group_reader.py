"""GroupReader on a real Redis: own pending entries first (paged, once), then a dead
consumer's, then new ones; a rewind reads the unacknowledged again; trimmed pending skipped."""

from __future__ import annotations

import pytest

from coach.bus import Bus
from coach.group_reader import GroupReader
from tests.events import partial

pytestmark = pytest.mark.integration


async def _publish(bus: Bus, n: int, call: str = "c") -> list[str]:
    return [(await bus.publish(partial(call, str(i))))["id"] for i in range(n)]


async def test_a_restart_pages_through_its_pending_once_then_reads_new(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    ids = await _publish(bus, 7)
    # A first life read everything and acknowledged nothing (then was killed).
    assert len(await bus.read_group("g", "me", count=100, block_ms=None)) == 7
    later = await _publish(bus, 2)
    reader = GroupReader(bus, "g", "me", count=3, block_ms=10)
    pages = [[e.id for e in await reader.read()] for _ in range(3)]
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]  # pending, paged by cursor, not acked
    assert [e.id for e in await reader.read()] == later[:2]  # then new entries
    assert await reader.read() == []


async def test_rewind_reads_what_was_not_acknowledged_again(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    ids = await _publish(bus, 4)
    reader = GroupReader(bus, "g", "me", count=10, block_ms=10)
    assert [e.id for e in await reader.read()] == ids  # nothing pending: new ones
    await bus.ack("g", ids[:2])
    reader.rewind()  # the batch failed half way
    assert reader.rereading
    assert [e.id for e in await reader.read()] == ids[2:]
    assert await reader.read() == [] and not reader.rereading


async def test_entries_a_dead_consumer_left_are_claimed_on_the_interval(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    ids = await _publish(bus, 3)
    assert len(await bus.read_group("g", "dead", count=100, block_ms=None)) == 3
    now = {"t": 100.0}
    reader = GroupReader(
        bus, "g", "alive", count=10, block_ms=10, claim_idle_ms=0, clock=lambda: now["t"]
    )
    assert [e.id for e in await reader.read()] == ids
    await bus.ack("g", ids)
    fresh = await _publish(bus, 1)
    assert len(await bus.read_group("g", "dead", count=100, block_ms=None)) == 1
    # Within the interval the dead consumer's new entry is not looked for; after it, it is.
    assert await reader.read() == []
    now["t"] += 10
    assert [e.id for e in await reader.read()] == fresh


async def test_a_page_of_trimmed_pending_entries_does_not_end_the_paging(bus: Bus) -> None:
    await bus.ensure_group("g", start="0")
    ids = await _publish(bus, 6)
    assert len(await bus.read_group("g", "me", count=100, block_ms=None)) == 6
    await bus.redis.xdel(bus.events_key, *ids[:3])  # erased while pending
    reader = GroupReader(bus, "g", "me", count=3, block_ms=10)
    assert [e.id for e in await reader.read()] == ids[3:]
    pending = await bus.redis.xpending(bus.events_key, "g")
    assert pending["pending"] == 3  # the erased ones were acknowledged on the way
