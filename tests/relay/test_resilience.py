"""Redis dies and comes back mid-stream: the relay keeps its clients and nothing accepted is lost."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from coach.errors import BusUnavailable
from coach.redis_server import EmbeddedRedis
from fakes.poll import until_async
from tests.relay.conftest import SERVICE_TOKEN, final, recv_json, recv_until, start_relay, started

pytestmark = pytest.mark.integration


async def publish_retrying(bus, event):
    """What a producer does: retry a retryable failure (bounded)."""

    async def attempt():
        try:
            return await bus.publish(event)
        except BusUnavailable:
            return None

    return await until_async(attempt, 10, what="redis to come back", interval=0.05)


async def test_redis_killed_and_restarted_mid_stream(tmp_path, bus_config) -> None:
    redis = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    relay = await start_relay(redis.url, bus_config)
    try:
        await relay.bus.publish(started("c1"))
        before = [
            await relay.bus.publish(final("c1", f"antes {i}", utt=f"a{i}")) for i in range(20)
        ]
        supervisor = await relay.connect("*")
        call = await relay.connect("c1")
        await recv_until(supervisor, lambda f: f["type"] == "relay.live")
        await recv_until(call, lambda f: f["type"] == "relay.live")

        redis.stop(kill=True)  # SIGKILL: no chance to flush anything on the way out
        async with httpx.AsyncClient(base_url=relay.http) as client:
            r = await client.post(
                "/event",
                json=final("c1", "x"),
                headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
            )
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert (await client.get("/health")).status_code == 503
        redis.start()

        after = [
            await publish_retrying(relay.bus, final("c1", f"después {i}", utt=f"d{i}"))
            for i in range(20)
        ]
        for ws in (supervisor, call):
            got = [(await recv_json(ws, timeout=15))["id"] for _ in after]
            assert got == [e["id"] for e in after]
        # Everything accepted before the crash is still there (append-only file, fsync always).
        stored = [e.id for e in await relay.bus.read_call("c1")]
        assert stored[1:] == [e["id"] for e in before + after]
        async with httpx.AsyncClient(base_url=relay.http) as client:
            assert (await client.get("/health")).status_code == 200
        await supervisor.close()
        await call.close()
    finally:
        await relay.stop()
        redis.cleanup()


async def test_relay_starts_before_redis_and_catches_up(tmp_path, bus_config) -> None:
    from coach.redis_server import free_port
    from relay.app import create_app
    from relay.settings import RelaySettings

    port = free_port()
    settings = RelaySettings(
        relay_token=SERVICE_TOKEN,
        auth_secret="x" * 40,
        redis_url=f"redis://127.0.0.1:{port}/0",
        bus=bus_config,
    )
    app = create_app(settings)
    hub = app.state.relay.hub
    await hub.start()
    try:
        assert hub.state.value in ("starting", "disconnected")
        redis = EmbeddedRedis(port=port, data_dir=tmp_path / "r").start()
        try:
            await asyncio.wait_for(hub.wait_connected(), 15)
            assert hub.state.value == "connected"
        finally:
            redis.cleanup()
    finally:
        await hub.stop()
        await app.state.relay.bus.close()
