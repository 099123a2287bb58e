"""A relay task that fails is never silent: logged with the call id, counted in
`coach_task_failures_total` on /metrics, the client told (1011 + resume id) or the reader
restarted (`busReader: failed` in /health meanwhile), and the call's events still arrive."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from fakes.poll import until, until_async
from relay.hub import Hub
from relay.subscriber import Subscriber
from tests.relay.conftest import RelayServer, final, recv_json, recv_until, started
from tests.relay.test_ws import close_of, is_live

pytestmark = pytest.mark.integration


async def failures(relay: RelayServer, task: str) -> float:
    """`coach_task_failures_total{service="relay",task=...}` as the relay's /metrics says."""
    async with httpx.AsyncClient(base_url=relay.http) as client:
        text = (await client.get("/metrics")).text
    line = re.search(
        rf'^coach_task_failures_total{{service="relay",task="{task}"}} (\S+)$', text, re.M
    )
    assert line, f"coach_task_failures_total for {task} missing from /metrics"
    return float(line.group(1))


async def test_every_relay_task_kind_is_on_metrics_from_zero(relay: RelayServer) -> None:
    for task in ("relay-hub", "ws-writer", "ws-reader", "ws-overflow"):
        assert await failures(relay, task) == 0


async def test_a_failing_writer_is_logged_counted_and_the_client_resumes(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await relay.bus.publish(started("c1"))
    ws = await relay.connect("c1")
    frames = await recv_until(ws, is_live)
    seen = frames[-1]["lastId"]

    def broken_take(self: Subscriber, max_items: int) -> list:
        raise RuntimeError("injected writer failure")

    monkeypatch.setattr(Subscriber, "take", broken_take)
    lost = await relay.bus.publish(final("c1", "hola", utt="u1"))
    code, reason = await close_of(ws)
    assert code == 1011 and reason == f"relay error; reconnect with since={seen}"
    logged = [r for r in caplog.records if getattr(r, "task", None) == "ws-writer"]
    assert (
        logged and logged[0].levelno == logging.ERROR and getattr(logged[0], "callId", None) == "c1"
    )
    assert "injected writer failure" in logged[0].getMessage()
    assert await failures(relay, "ws-writer") == 1
    monkeypatch.undo()
    # The close reason says where to resume: the event the writer failed on arrives.
    async with await relay.connect("c1", since=seen) as again:
        assert [f.get("id") for f in await recv_until(again, is_live)] == [lost["id"], None]


async def test_a_failing_hub_reader_shows_in_health_and_restarts_from_its_cursor(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await relay.bus.publish(started("c1"))
    ws = await relay.connect("c1")
    await recv_until(ws, is_live)
    dispatch = Hub.dispatch
    broken = True

    def flaky_dispatch(self: Hub, events: list) -> None:
        if broken:
            raise RuntimeError("injected hub failure")
        dispatch(self, events)

    monkeypatch.setattr(Hub, "dispatch", flaky_dispatch)
    event = await relay.bus.publish(final("c1", "hola", utt="u1"))

    async def health() -> dict | None:
        async with httpx.AsyncClient(base_url=relay.http) as client:
            r = await client.get("/health")
        body: dict = r.json()
        return body if r.status_code == 503 and body["busReader"] == "failed" else None

    await until_async(health, what="/health says busReader failed")
    await until(lambda: [r for r in caplog.records if getattr(r, "task", "") == "relay-hub"])
    assert await failures(relay, "relay-hub") >= 1
    broken = False
    # The restarted reader resumes from its cursor: the event is not lost.
    assert (await recv_json(ws, timeout=10))["id"] == event["id"]
    async with httpx.AsyncClient(base_url=relay.http) as client:
        assert (await client.get("/health")).status_code == 200
    await ws.close()
