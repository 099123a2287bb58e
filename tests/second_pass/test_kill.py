"""`python -m second_pass` as a real process: SIGKILLed in the middle of a call's decoding and
started again, the call is done once (one transcript, its entry acknowledged); /health answers
on 127.0.0.1 with the priority it runs at; a bad setting stops the start naming it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from coach.bus import Bus, BusConfig
from coach.pg_server import EmbeddedPostgres
from coach.redis_server import EmbeddedRedis, free_port
from fakes.poll import until_async, until_sync
from stt.models import ModelInfo
from tests.pg import fresh_db
from tests.processes import run, spawn

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_sigkill_mid_decoding_then_restart_does_the_call_once(
    *,
    redis_server: EmbeddedRedis,
    pg_server: EmbeddedPostgres,
    bus_config: BusConfig,
    base_model: ModelInfo,
    call_wav: tuple[Path, str],
    tmp_path: Path,
) -> None:
    db = fresh_db(pg_server)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db.url(),
        "BUS_PREFIX": bus_config.prefix,
        "RECORD_MODEL_PATH": str(base_model.path),
        "RECORD_PORT": str(port),
        "RECORD_CONSUMER": "second-pass-1",
        "RECORD_NICE": "10",
        # SCHED_IDLE would starve it on this shared 2-core machine; nice is what is checked.
        "RECORD_IDLE_SCHED": "false",
        "COACH_ENV_FILE": str(tmp_path / "none.env"),
    }
    log = tmp_path / "second_pass.log"
    bus = Bus.connect(redis_server.url, bus_config)
    await bus.publish_many(
        [
            {
                "type": "call.started",
                "callId": "k1",
                "agent": "200",
                "lang": "es",
                "caller": {"number": "600", "name": "C"},
                "startedAt": 1_764_000_000_000,
            },
            {
                "type": "call.ended",
                "callId": "k1",
                "endedAt": 1_764_000_030_000,
                "reason": "caller-hangup",
                "recording": str(call_wav[0]),
            },
        ]
    )

    def row() -> tuple[str, int] | None:
        with psycopg.connect(db.url()) as conn:
            head = conn.execute(
                "SELECT status, (SELECT count(*) FROM record.record_utterances u"
                " WHERE u.call_id = t.call_id) FROM record.record_transcripts t"
                " WHERE call_id = 'k1'"
            ).fetchone()
        return (str(head[0]), int(head[1])) if head else None

    def decoding() -> bool:
        return (
            log.is_file()
            and "second pass started" in log.read_text()
            and '"k1"' in (log.read_text())
        )

    proc = spawn("second_pass", env, log)
    try:
        until_sync(decoding, wait=60, interval=0.02, what=f"decoding under way ({log})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert row() == ("pending", 0), log.read_text()
        first_run = log.read_text()
        proc = spawn("second_pass", env, log)

        async def done() -> bool:
            found = row()
            return found is not None and found[0] == "done"

        await until_async(done, wait=90, what=f"the call done after the restart ({log})")
        assert (row() or ("", 0))[1] > 0
        assert "transcript of record stored" not in first_run
        # The line is logged after the commit the poll above saw: wait for it, then count.
        until_sync(
            lambda: "transcript of record stored" in log.read_text(),
            wait=30,
            what="the stored line in the log",
        )
        assert log.read_text().count("transcript of record stored") == 1
        assert await bus.read_group("second_pass", "x", pending=True, block_ms=None) == []
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/health")).json()
            assert body["status"] == "ok" and body["done"] == 1
            assert body["priority"]["nice"] == 10
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            assert 'second_pass_calls_total{outcome="done"} 1.0' in metrics
            assert "second_pass_real_time_factor_count 1.0" in metrics
        local = [
            c.laddr.ip
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        assert local == ["127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        await bus.close()


def test_a_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/coach",
        "RECORD_MODEL_PATH": str(tmp_path / "no-model"),
        "COACH_ENV_FILE": str(tmp_path / "none.env"),
    }
    out = run("second_pass", env)
    assert out.returncode == 2 and "RECORD_MODEL_PATH" in out.stdout
