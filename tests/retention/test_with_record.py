"""The job with every store a deployment has: the bus's Redis, the recordings directory and
the call record's PostgreSQL tables (coach/record/retention.py, as the retention role). The
call's Redis stream has expired, as it has an hour after the call: the record is what names
its recording, and the erasure still finds and removes it."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from coach.bus import Bus
from coach.record import roles
from coach.record.write import apply
from coach.retention import Erasure
from retention.job import Job
from retention.metrics import RetentionMetrics
from retention.recordings import RecordingsStore
from retention.redis_store import RedisStore
from retention.service import build_stores
from retention.settings import Settings
from tests.callrecord import call_events
from tests.pg import RecordDb

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


async def archive(db: RecordDb, *calls: list[dict[str, object]]) -> None:
    base = int(time.time() * 1000) - 1000
    async with await psycopg.AsyncConnection.connect(db.url()) as conn, conn.transaction():
        n = 0
        for events in calls:
            for ev in events:
                n += 1
                ev["id"] = f"{base + n}-0"
            await apply(conn, events)


def calls_left(db: RecordDb) -> list[str]:
    with psycopg.connect(db.url()) as conn:
        return [r[0] for r in conn.execute("SELECT call_id FROM record.calls ORDER BY 1")]


async def test_the_record_names_the_recording_of_an_expired_call(
    bus: Bus, record_db: RecordDb, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    await archive(
        record_db,
        call_events("c-erase", started_at=now - DAY_MS, recording="/spool/monitor/x-17.raw"),
        call_events("c-keep", started_at=now - DAY_MS, recording="/spool/monitor/x-18.raw"),
    )
    (tmp_path / "x-17.raw").write_bytes(b"\0" * 100)
    (tmp_path / "x-18.raw").write_bytes(b"\0" * 100)
    settings = Settings(
        recordings_dir=tmp_path, database_url=record_db.url(roles.RETENTION), bus=bus.config
    )
    stores = await build_stores(settings, bus)
    try:
        assert [s.name for s in stores] == ["redis", "recordings", "record"]
        job = Job(
            stores,
            audio_ms=settings.audio_ms,
            text_ms=settings.text_ms,
            metrics=RetentionMetrics(),
        )
        names = await job.recordings_of("c-erase")
        assert names == {"x-17.raw"}
        removed = await job.erase(Erasure("c-erase", names))
        assert {r.store for r in removed} == {"recordings", "record"}
        assert not (tmp_path / "x-17.raw").exists() and (tmp_path / "x-18.raw").exists()
        assert calls_left(record_db) == ["c-keep"]
    finally:
        for store in stores:
            await store.close()


async def test_a_sweep_purges_the_record_past_the_text_period(
    bus: Bus, record_db: RecordDb, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    await archive(
        record_db,
        call_events("c-old", started_at=now - 100 * DAY_MS),
        call_events("c-new", started_at=now - 10 * DAY_MS),
    )
    from coach.record.retention import RecordStore

    record = await RecordStore.connect(record_db.url(roles.RETENTION))
    try:
        job = Job(
            [RedisStore(bus), RecordingsStore(tmp_path), record],
            audio_ms=30 * DAY_MS,
            text_ms=90 * DAY_MS,
            metrics=RetentionMetrics(),
        )
        report = await job.sweep()
        assert not report.failed
        assert [(r.store, r.call_id) for r in report.removed if r.store == "record"] == [
            ("record", "c-old")
        ]
        assert calls_left(record_db) == ["c-new"]
    finally:
        await record.close()
