"""`python -m retention` as a process: one checked settings object (a bad value stops start-up
naming the variable), /health and /metrics on 127.0.0.1 only, an erasure done end to end, JSON
logs, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from coach.bus import Bus, BusConfig
from coach.erasure import ErasureQueue
from coach.redis_server import EmbeddedRedis, free_port
from coach.settings import Env, SettingsError
from fakes.poll import until_async
from retention.service import main
from retention.settings import Settings
from tests.events import final, started

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_settings_are_checked_and_name_the_variable(tmp_path: Path) -> None:
    s = Settings.from_env(
        Env(
            {
                "RETENTION_DAYS_AUDIO": "7",
                "RETENTION_DAYS_TEXT": "30",
                "RECORDINGS_DIR": str(tmp_path),
                "RETENTION_AUDIO_SUFFIXES": ".RAW, .wav,.sln",
            }
        )
    )
    assert (s.days_audio, s.days_text, s.recordings_dir) == (7, 30, tmp_path)
    assert s.audio_suffixes == (".raw", ".wav", ".sln")
    assert s.host == "127.0.0.1"
    bad = {
        "RETENTION_DAYS_AUDIO": "0",
        "RETENTION_DAYS_TEXT": "soon",
        "RECORDINGS_DIR": str(tmp_path / "missing"),
        "RETENTION_AUDIO_SUFFIXES": "raw",
        "RETENTION_INTERVAL_S": "1",
    }
    for name, value in bad.items():
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(Env({name: value}))


@pytest.mark.unit
def test_a_bad_setting_stops_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({"RETENTION_DAYS_TEXT": "-1"}) == 2
    assert "RETENTION_DAYS_TEXT" in capsys.readouterr().err


@pytest.mark.integration
async def test_the_worker_runs_erases_and_stops_on_sigterm(
    redis_server: EmbeddedRedis, bus_config: BusConfig, tmp_path: Path
) -> None:
    port = free_port()
    recordings = tmp_path / "monitor"
    recordings.mkdir()
    (recordings / "20261201-100000-c-gone.raw").write_bytes(b"\0" * 320)
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "BUS_PREFIX": bus_config.prefix,
        "RETENTION_PORT": str(port),
        "RECORDINGS_DIR": str(recordings),
        "RETENTION_CONSUMER": "retention-test",
        "COACH_ENV_FILE": str(tmp_path / "none.env"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    log_path = tmp_path / "retention.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "retention", env=env, stdout=log, stderr=log, cwd=ROOT
        )
    bus = Bus.connect(redis_server.url, bus_config)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2)
    try:

        async def healthy() -> bool:
            assert proc.returncode is None, log_path.read_text()
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await until_async(healthy, 30, what="retention /health")
        health = (await http.get("/health")).json()
        assert health["stores"] == ["redis", "recordings"]
        assert health["retentionDays"] == {"audio": 30, "text": 90}
        await bus.publish_many(
            [
                started("c-gone"),
                final("c-gone", "hola"),
                {"type": "call.ended", "callId": "c-gone", "endedAt": 9, "reason": "caller-hangup"},
            ]
        )
        queue = ErasureQueue(bus.redis, bus_config.prefix)
        await queue.request("c-gone", by="supervisor")

        async def done() -> bool:
            status = await queue.status("c-gone")
            return bool(status and status["state"] == "done")

        await until_async(done, 20, what="the erasure done by the worker")
        assert await bus.read_call("c-gone") == []
        assert not (recordings / "20261201-100000-c-gone.raw").exists()

        async def counted() -> bool:
            metrics = (await http.get("/metrics")).text
            return 'retention_erasures_total{outcome="done"} 1.0' in metrics

        await until_async(counted, 10, what="the erasure counted in /metrics")
        with pytest.raises(httpx.HTTPError):  # loopback only
            await http.get(f"http://{_outside_address()}:{port}/health")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await bus.close()
        await http.aclose()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    erased = [ln for ln in lines if ln["msg"] == "call erased"]
    assert erased and erased[0]["callId"] == "c-gone" and erased[0]["service"] == "retention"
    removed = [ln for ln in lines if ln["msg"].startswith("removed ") and ln["reason"] == "erasure"]
    assert {ln["what"] for ln in removed} >= {"call stream", "recording"}


def _outside_address() -> str:
    """An address of this host other than loopback (the default route's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # UDP: no packet is sent
        address = str(s.getsockname()[0])
    assert not address.startswith("127.")
    return address
