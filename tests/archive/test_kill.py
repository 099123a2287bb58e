"""`python -m archive` as a real process on a real Redis and PostgreSQL: SIGKILLed in the
middle of a call and started again, it loses nothing and duplicates nothing; its lag is in
/metrics and /health answers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from archive.worker import group_backlog
from coach.bus import Bus, BusConfig
from coach.pg_server import EmbeddedPostgres
from coach.record.migrate import migrations
from coach.redis_server import EmbeddedRedis, free_port
from fakes.poll import until_async, until_sync
from tests.callrecord import call_events, words
from tests.pg import fresh_db
from tests.processes import run, spawn

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FINALS = 600
"""Finals of the call: enough batches (of ARCHIVE_BATCH=10) that the kill lands mid-way."""


def final(call_id: str, i: int) -> dict[str, object]:
    text = f"frase número {i} de la llamada"
    return {
        "type": "final",
        "callId": call_id,
        "speaker": "customer" if i % 2 else "agent",
        "utteranceId": f"u{i}",
        "text": text,
        "start": i * 2.0,
        "end": i * 2.0 + 1.5,
        "confidence": 0.9,
        "lang": "es",
        "words": words(text, i * 2.0, i * 2.0 + 1.5),
    }


async def test_sigkill_mid_call_loses_nothing(
    redis_server: EmbeddedRedis,
    pg_server: EmbeddedPostgres,
    bus_config: BusConfig,
    tmp_path: Path,
) -> None:
    db = fresh_db(pg_server)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db.url(),
        "BUS_PREFIX": bus_config.prefix,
        "ARCHIVE_PORT": str(port),
        "ARCHIVE_BATCH": "10",
        "ARCHIVE_BLOCK_MS": "100",
        "ARCHIVE_CONSUMER": "archive-1",
        "COACH_ENV_FILE": str(tmp_path / "none.env"),
    }
    log = tmp_path / "archive.log"
    bus = Bus.connect(redis_server.url, bus_config)
    everything = call_events("k1")
    head, tail = everything[:2], everything[2:]
    await bus.publish_many(head)
    for start in range(0, FINALS, 100):
        await bus.publish_many([final("k1", i) for i in range(start, start + 100)])

    def stored() -> int:
        with psycopg.connect(db.url()) as conn:
            row = conn.execute("SELECT count(*) FROM record.utterances").fetchone()
            return int(row[0]) if row else 0

    proc = spawn("archive", env, log)
    try:
        until_sync(lambda: stored() > 0, wait=30, what=f"first batches written ({log})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = stored()
        # The call goes on while the archive is dead.
        await bus.publish_many(tail)
        proc = spawn("archive", env, log)
        health = f"http://127.0.0.1:{port}/health"

        async def all_archived() -> bool:
            with psycopg.connect(db.url()) as conn:
                row = conn.execute(
                    "SELECT ended_at IS NOT NULL, disposition FROM record.calls WHERE call_id = 'k1'"
                ).fetchone()
            return bool(row and row[0] and row[1]) and stored() == FINALS + 6

        await until_async(all_archived, wait=60, what=f"the whole call archived ({log})")
        assert at_kill <= FINALS
        async with httpx.AsyncClient() as client:

            async def caught_up() -> bool:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                return "archive_lag_events 0.0" in text and "archive_pending_events 0.0" in text

            await until_async(caught_up, wait=10, what="lag 0 in /metrics")
            body = (await client.get(health)).json()
            assert body["status"] == "ok" and body["database"] == "up"
        with psycopg.connect(db.url()) as conn:
            dupes = conn.execute(
                "SELECT count(*) FROM record.coaching WHERE call_id = 'k1'"
            ).fetchone()
        assert dupes == (1,)
        assert (await group_backlog(bus, "archive")) == (0, 0)
        # Listening on loopback only.
        local = [
            c.laddr.ip
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        assert local == ["127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        await bus.close()


async def test_healthy_before_any_event_and_stops_on_sigterm(
    redis_server: EmbeddedRedis,
    pg_server: EmbeddedPostgres,
    bus_config: BusConfig,
    tmp_path: Path,
) -> None:
    """What the native stack waits on before starting the relay: /health 200 with an idle bus."""
    db = fresh_db(pg_server, migrated=False)  # the archive migrates it itself
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db.url(),
        "BUS_PREFIX": bus_config.prefix,
        "ARCHIVE_PORT": str(port),
        "COACH_ENV_FILE": str(tmp_path / "none.env"),
    }
    proc = spawn("archive", env, tmp_path / "archive.log")
    try:
        async with httpx.AsyncClient() as client:

            async def healthy() -> bool:
                try:
                    r = await client.get(f"http://127.0.0.1:{port}/health")
                except httpx.HTTPError:
                    return False
                return r.status_code == 200 and r.json()["database"] == "up"

            await until_async(healthy, wait=30, what="archive healthy with no events")
        with psycopg.connect(db.url()) as conn:
            assert conn.execute("SELECT max(version) FROM record.schema_version").fetchone() == (
                len(migrations()),
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_a_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "ARCHIVE_BATCH": "0", "COACH_ENV_FILE": str(tmp_path / "none.env")}
    out = run("archive", env)
    assert out.returncode == 2 and "ARCHIVE_BATCH" in out.stderr
