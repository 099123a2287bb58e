"""`DELETE /history/{callId}` and `GET /history/{callId}/erasure` on a real relay and Redis:
a supervisor queues an erasure (202 and a status URL), an agent is refused (404 for another's
call, 403 for their own), a bad id is 400, a call in progress is 409, and the request lands
in the queue the retention worker reads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
import pytest

from coach.bus import BusConfig
from coach.erasure import ErasureQueue
from coach.record import roles
from coach.record.write import apply
from coach.redis_server import EmbeddedRedis
from coach.tasks import TaskSet
from fakes.poll import until_async
from retention.erasure_worker import ErasureWorker
from retention.job import Job
from retention.metrics import RetentionMetrics
from retention.redis_store import RedisStore
from tests.callrecord import call_events
from tests.pg import RecordDb, pg_server, record_db
from tests.relay.conftest import SERVICE_TOKEN, RelayServer, final, start_relay, started

pytestmark = pytest.mark.integration

__all__ = ["pg_server", "record_db"]  # fixtures used by this module
DAY_MS = 86_400_000


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ended_call(relay: RelayServer, call_id: str, agent: str = "200") -> None:
    await relay.bus.publish(started(call_id, agent))
    await relay.bus.publish(final(call_id, "hola"))
    await relay.bus.publish(
        {"type": "call.ended", "callId": call_id, "endedAt": 9, "reason": "caller-hangup"}
    )


def queue(relay: RelayServer) -> ErasureQueue:
    return ErasureQueue(relay.bus.redis, relay.settings.bus.prefix)


async def test_a_supervisor_queues_an_erasure(relay: RelayServer) -> None:
    await ended_call(relay, "c-erase")
    async with httpx.AsyncClient(base_url=relay.http) as client:
        r = await client.delete("/history/c-erase", headers=bearer(relay.token("supervisor")))
        assert r.status_code == 202
        body = r.json()
        assert body["state"] == "queued" and body["callId"] == "c-erase"
        assert r.headers["location"] == body["statusUrl"] == "/history/c-erase/erasure"
        s = await client.get(body["statusUrl"], headers=bearer(relay.token("supervisor")))
        assert s.status_code == 200 and s.json()["state"] == "queued"
        # Asked again while waiting: the same request, not a second one.
        again = await client.delete("/history/c-erase", headers=bearer(relay.token("supervisor")))
        assert again.status_code == 202
    assert await queue(relay).waiting() == 1
    await queue(relay).ensure_group()
    [request] = await queue(relay).read("worker", block_ms=None)
    assert (request.call_id, request.by) == ("c-erase", "supervisor")


async def test_agents_are_refused_and_learn_nothing_of_other_calls(relay: RelayServer) -> None:
    await ended_call(relay, "c-mine", agent="200")
    await ended_call(relay, "c-theirs", agent="201")
    agent = bearer(relay.token("agent", "200"))
    async with httpx.AsyncClient(base_url=relay.http) as client:
        own = await client.delete("/history/c-mine", headers=agent)
        other = await client.delete("/history/c-theirs", headers=agent)
        unknown = await client.delete("/history/c-nowhere", headers=agent)
        status = await client.get("/history/c-theirs/erasure", headers=agent)
    assert own.status_code == 403
    assert other.status_code == unknown.status_code == status.status_code == 404
    assert other.json() == unknown.json()  # the same answer as for a call that does not exist
    assert await queue(relay).waiting() == 0


async def test_services_and_anonymous_callers_are_refused(relay: RelayServer) -> None:
    await ended_call(relay, "c1")
    async with httpx.AsyncClient(base_url=relay.http) as client:
        anonymous = await client.delete("/history/c1")
        service = await client.delete("/history/c1", headers=bearer(SERVICE_TOKEN))
        in_url = await client.delete(f"/history/c1?token={relay.token('supervisor')}")
    assert anonymous.status_code == 401 and in_url.status_code == 401
    assert service.status_code == 403
    assert await queue(relay).waiting() == 0


async def test_a_bad_id_is_400_and_a_live_call_409(relay: RelayServer) -> None:
    await relay.bus.publish(started("c-live"))
    supervisor = bearer(relay.token("supervisor"))
    async with httpx.AsyncClient(base_url=relay.http) as client:
        bad = await client.delete("/history/bad%20id!", headers=supervisor)
        live = await client.delete("/history/c-live", headers=supervisor)
        none = await client.get("/history/c-never/erasure", headers=supervisor)
    assert bad.status_code == 400 and "call id" in bad.json()["error"]
    assert live.status_code == 409
    assert none.status_code == 404
    assert await queue(relay).waiting() == 0


async def test_an_agents_own_archived_call_is_403_once_its_stream_has_expired(
    redis_server: EmbeddedRedis, bus_config: BusConfig, record_db: RecordDb
) -> None:
    base = int(time.time() * 1000)
    async with await psycopg.AsyncConnection.connect(record_db.url()) as conn:
        for n, events in enumerate(
            (call_events("c-200", agent="200"), call_events("c-201", agent="201"))
        ):
            for i, ev in enumerate(events):
                ev["id"] = f"{base + n * 100 + i}-0"
            await apply(conn, events)
    relay = await start_relay(
        redis_server.url, bus_config, database_url=record_db.url(roles.READER)
    )
    try:
        agent = bearer(relay.token("agent", "200"))
        async with httpx.AsyncClient(base_url=relay.http) as client:
            own = await client.delete("/history/c-200", headers=agent)
            other = await client.delete("/history/c-201", headers=agent)
            supervisor = await client.delete(
                "/history/c-201", headers=bearer(relay.token("supervisor"))
            )
        assert (own.status_code, other.status_code, supervisor.status_code) == (403, 404, 202)
        assert await relay.bus.read_call("c-200") == []  # known from the record only
    finally:
        await relay.stop()


async def test_from_the_route_to_the_worker_and_back(relay: RelayServer) -> None:
    await ended_call(relay, "c-chain")
    await ended_call(relay, "c-other")
    metrics = RetentionMetrics()
    job = Job([RedisStore(relay.bus)], audio_ms=DAY_MS, text_ms=DAY_MS, metrics=metrics)
    worker = ErasureWorker(queue(relay), job, "w1", metrics)
    stop = asyncio.Event()
    tasks = TaskSet("tests")
    tasks.spawn(worker.run(stop), "erasure")
    supervisor = bearer(relay.token("supervisor"))
    try:
        async with httpx.AsyncClient(base_url=relay.http) as client:
            r = await client.delete("/history/c-chain", headers=supervisor)
            assert r.status_code == 202

            async def done() -> dict[str, Any]:
                s = await client.get(r.json()["statusUrl"], headers=supervisor)
                body: dict[str, Any] = s.json()
                return body if body.get("state") == "done" else {}

            status = await until_async(done, what="the erasure done")
    finally:
        stop.set()
        await tasks.close(5)
    assert {x["what"] for x in status["removed"]} >= {"call stream", "all-events entries"}
    assert await relay.bus.read_call("c-chain") == []
    assert len(await relay.bus.read_call("c-other")) == 3
