"""`python -m ari` as a process: settings check, /health, /metrics, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest

from fakes.poll import until, until_async
from tests.ari.conftest import TOKEN, prompt_pcm

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_bad_setting_stops_startup():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARI_", "RELAY_"))}
    env.update({"RELAY_TOKEN": "x"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"ARI_PASS" in err


async def test_process_health_metrics_and_graceful_stop(double, stt, redis_server, bus_config):
    port = _free_port()
    env = {
        **os.environ,
        "ARI_URL": double.url,
        "ARI_USER": "coach",
        "ARI_PASS": "ari-test-pass",
        "STT_URL": stt.url,
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis_server.url,
        "BUS_PREFIX": bus_config.prefix,
        "MEDIA_BIND": "127.0.0.1",
        "BASE_PORT": "33000",
        "ARI_HTTP_HOST": "127.0.0.1",
        "ARI_HTTP_PORT": str(port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await double.wait_connected(20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = None

            async def healthy() -> bool:
                nonlocal health
                try:
                    health = await http.get("/health")
                except httpx.TransportError:
                    return False
                return health.status_code == 200

            await until_async(healthy, 20, what="ari's /health")  # no readiness signal
            assert health is not None and health.json()["ari"] == "connected"

            double.rtp_speed = 5.0
            cid = await double.incoming_call(
                "100", "Bob", prompt_pcm("demo-congrats"), prompt_pcm("agent-user")
            )
            try:
                await stt.wait_for(lambda: stt.audio(cid, "customer"))
            except TimeoutError:
                proc.kill()
                assert proc.stderr is not None
                print((await proc.stderr.read()).decode()[-5000:])
                raise

            # The caller's tap streams (held) while the agent rings: bridged comes a little later.
            async def bridged() -> str | None:
                text = (await http.get("/metrics")).text
                return text if 'ari_calls_total{outcome="bridged"} 1.0' in text else None

            metrics = await until_async(bridged, 20, what="the call bridged in /metrics")
            assert metrics is not None
            assert "ari_media_taps 2.0" in metrics

        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
        # The call itself survives our restart; only the taps are gone.
        await until(lambda: not [c for c in double.channels if "-em_" in c or "-snoop_" in c])
        assert cid in double.channels and f"coach_app-bridge-{cid}" in double.bridges
        await stt.wait_for(lambda: stt.open_streams == 0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await double.hangup(cid)
    for bridge in list(double.bridges):  # nobody is left to clean up: do it for the test
        del double.bridges[bridge]
