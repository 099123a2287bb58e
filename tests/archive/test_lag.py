"""The archive's lag behind the bus in /metrics and /health (coach/lag.py's LagMonitor on its
group): seconds behind while events wait, 0 once they are written."""

from __future__ import annotations

import httpx
import pytest

from archive.service import make_app
from archive.worker import Archiver
from coach.bus import Bus
from coach.lag import LagMonitor
from tests.callrecord import call_events
from tests.pg import RecordDb

pytestmark = pytest.mark.integration


async def test_lag_is_in_metrics_and_health(bus: Bus, record_db: RecordDb) -> None:
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    events = call_events("lag1")
    published = await bus.publish_many(events)
    first_ms = int(published[0]["id"].split("-")[0])
    now = {"s": first_ms / 1000 + 42.0}
    lag = LagMonitor(bus, "archive", clock=lambda: now["s"])
    app = make_app(archiver, lag)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://archive"
        ) as client:
            measured = await lag.check()
            assert measured is not None and measured.seconds == pytest.approx(42.0)
            metrics = (await client.get("/metrics")).text
            assert 'coach_bus_group_lag_seconds{group="archive"} 42.0' in metrics
            health = (await client.get("/health")).json()
            assert health["busLag"]["lagSeconds"] == 42.0 and not health["busLag"]["alarm"]
            while await archiver.step():
                pass
            await lag.check()
            metrics = (await client.get("/metrics")).text
            assert 'coach_bus_group_lag_seconds{group="archive"} 0.0' in metrics
            assert (await client.get("/health")).json()["busLag"]["pending"] == 0
    finally:
        await archiver.close()
