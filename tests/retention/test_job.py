"""Retention sweeps and erasures over the real stores: the bus's Redis (embedded server) and a
recordings directory. Old data is made with old ids and old mtimes, never by waiting."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from coach.bus import Bus
from coach.retention import DataKind, Erasure, Removal
from retention.job import ErasureFailed, Job
from retention.metrics import RetentionMetrics
from retention.recordings import RecordingsStore
from retention.redis_store import RedisStore
from tests.events import final, started

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def old_call(bus: Bus, call_id: str, age_days: float, n: int = 3) -> None:
    """A call written `age_days` ago as the bus writes one (same id in both streams), whose
    expiry was lost (e.g. restored from an old file)."""
    ms = now_ms() - int(age_days * DAY_MS)
    for seq in range(n):
        eid = f"{ms}-{seq}"
        await bus.redis.xadd(bus.events_key, {"c": call_id, "t": "final", "e": "{}"}, id=eid)
        await bus.redis.xadd(bus.call_key(call_id), {"t": "final", "e": "{}"}, id=eid)
    await bus.redis.hset(bus.calls_key, call_id, f'{{"id":"{ms}-0","callId":"{call_id}"}}')


async def live_call(bus: Bus, call_id: str, recording: str | None = None) -> None:
    await bus.publish(started(call_id))
    await bus.publish(final(call_id, "mi número es el que le di"))
    await bus.publish(
        {
            "type": "call.ended",
            "callId": call_id,
            "endedAt": 9,
            "reason": "caller-hangup",
            **({"recording": recording} if recording else {}),
        }
    )


async def all_events(bus: Bus) -> list[dict[str, str]]:
    entries: Any = await bus.redis.xrange(bus.events_key)
    return [fields for _, fields in entries]


def job(*stores: object, metrics: RetentionMetrics | None = None) -> Job:
    return Job(
        stores,  # type: ignore[arg-type]
        audio_ms=30 * DAY_MS,
        text_ms=90 * DAY_MS,
        metrics=metrics or RetentionMetrics(),
    )


def recording(root: Path, name: str, age_days: float = 0, size: int = 800) -> Path:
    path = root / name
    path.write_bytes(b"\1" * size)
    when = time.time() - age_days * 86_400
    os.utime(path, (when, when))
    return path


async def test_a_sweep_purges_old_call_text_and_keeps_recent_calls(
    bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await old_call(bus, "c-old", 100)
    await old_call(bus, "c-recent", 10)
    await live_call(bus, "c-now")
    old_audio = recording(tmp_path, "20260801-000000-c-old.raw", 40)
    new_audio = recording(tmp_path, "20261201-000000-c-now.raw", 1)
    metrics = RetentionMetrics()
    with caplog.at_level(logging.INFO, logger="retention"):
        report = await job(RedisStore(bus), RecordingsStore(tmp_path), metrics=metrics).sweep()
    assert not report.failed
    assert not await bus.redis.exists(bus.call_key("c-old"))
    assert await bus.redis.xlen(bus.call_key("c-recent")) == 3
    assert [e.type for e in await bus.read_call("c-now")] == ["call.started", "final", "call.ended"]
    calls = {f["c"] for f in await all_events(bus)}
    assert "c-old" not in calls and {"c-recent", "c-now"} <= calls
    assert not await bus.redis.hexists(bus.calls_key, "c-old")
    assert not old_audio.exists() and new_audio.exists()
    # Every removal is one structured line saying which call, what, how much.
    lines = [r for r in caplog.records if r.getMessage().startswith("removed ")]
    seen = {(vars(r)["callId"], vars(r)["what"]) for r in lines}
    assert ("c-old", "call stream") in seen and ("c-old", "recording") in seen
    assert {vars(r)["reason"] for r in lines} == {"retention"}
    sample = metrics.registry.get_sample_value
    assert (
        sample(
            "retention_removed_total",
            {"store": "redis", "what": "call stream", "reason": "retention"},
        )
        == 3
    )
    assert (
        sample("retention_removed_bytes_total", {"store": "recordings", "reason": "retention"})
        == 800
    )


async def test_erasure_removes_one_call_everywhere_and_leaves_the_others(
    bus: Bus, tmp_path: Path
) -> None:
    await live_call(bus, "c-erase", recording="/var/spool/asterisk/monitor/coach/named-by-ari.raw")
    await live_call(bus, "c-keep")
    named = recording(tmp_path, "named-by-ari.raw")
    by_id = recording(tmp_path, "20261201-120000-c-erase.wav")
    kept = recording(tmp_path, "20261201-120000-c-keep.raw")
    work = job(RedisStore(bus), RecordingsStore(tmp_path))
    names = await work.recordings_of("c-erase")
    assert names == {"named-by-ari.raw"}
    removed = await work.erase(Erasure("c-erase", names))
    assert await bus.read_call("c-erase") == []
    assert all(f["c"] != "c-erase" for f in await all_events(bus))
    assert not named.exists() and not by_id.exists()
    assert kept.exists() and len(await bus.read_call("c-keep")) == 3
    rows: dict[tuple[str, str], int] = {}
    for r in removed:
        rows[(r.store, r.what)] = rows.get((r.store, r.what), 0) + r.rows
    assert rows == {
        ("recordings", "recording"): 2,
        ("redis", "call stream"): 3,
        ("redis", "all-events entries"): 3,
    }
    assert await work.erase(Erasure("c-erase")) == []  # erasing again removes nothing more


async def test_the_knowledge_reports_questions_follow_the_call(bus: Bus) -> None:
    misses = f"{bus.config.prefix}:kb:misses"
    old = now_ms() - 100 * DAY_MS
    await bus.redis.xadd(misses, {"callId": "c-old", "text": "cómo cancelo"}, id=f"{old}-0")
    await bus.redis.xadd(misses, {"callId": "c-erase", "text": "mi dirección es"})
    await bus.redis.xadd(misses, {"callId": "c-keep", "text": "qué tarifa tengo"})
    work = job(RedisStore(bus))
    report = await work.sweep()
    assert ("kb:misses entries", 1) in [(r.what, r.rows) for r in report.removed]
    removed = await work.erase(Erasure("c-erase"))
    assert [(r.what, r.rows) for r in removed] == [("kb:misses entries", 1)]
    left: Any = await bus.redis.xrange(misses)
    assert [f["callId"] for _, f in left] == ["c-keep"]


class Broken:
    """A store whose back end is down."""

    name = "broken"

    def __init__(self, kind: DataKind) -> None:
        self.kind = kind

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        raise ConnectionError("database away")

    async def erase(self, request: Erasure) -> list[Removal]:
        raise ConnectionError("disk away")

    async def close(self) -> None:
        pass


async def test_a_failing_store_does_not_stop_the_sweep(bus: Bus) -> None:
    await old_call(bus, "c-old", 100)
    report = await job(Broken("text"), RedisStore(bus)).sweep()
    assert set(report.failed) == {"broken"}
    assert not await bus.redis.exists(bus.call_key("c-old"))


async def test_text_is_kept_while_an_audio_store_fails(bus: Bus) -> None:
    await live_call(bus, "c1", recording="/x/c1-file.raw")
    work = job(Broken("audio"), RedisStore(bus))
    with pytest.raises(ErasureFailed, match="disk away"):
        await work.erase(Erasure("c1", await work.recordings_of("c1")))
    # What names the recording is still there for the retry.
    assert await work.recordings_of("c1") == {"c1-file.raw"}
