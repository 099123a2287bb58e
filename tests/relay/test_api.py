"""HTTP API of the relay against a real Redis: auth, validation, limits, listings, health."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.relay.conftest import SERVICE_TOKEN, RelayServer, final, started

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


async def post(
    relay: RelayServer, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=relay.http) as client:
        return await client.post("/event", json=body, headers=AUTH if headers is None else headers)


async def test_post_requires_the_service_token(relay: RelayServer) -> None:
    r = await post(relay, started("c1"), headers={})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await post(relay, started("c1"), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    # A browser token is not a producer credential.
    token = relay.token("supervisor")
    r = await post(relay, started("c1"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert await relay.bus.read_call("c1") == []


async def test_post_stores_and_returns_ids(relay: RelayServer) -> None:
    r = await post(relay, started("c1"))
    assert r.status_code == 200
    first = r.json()["id"]
    r = await post(relay, [final("c1", "hola"), final("c1", "adiós", utt="u2")])
    assert r.status_code == 200
    ids = r.json()["ids"]
    stored = await relay.bus.read_call("c1")
    assert [e.id for e in stored] == [first, *ids]
    assert stored[2].data()["text"] == "adiós"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("speaker"), "speaker"),
        (lambda e: e.update(speaker="robot"), "speaker"),
        (lambda e: e.update(confidence=1.5), "confidence"),
        (lambda e: e.update(callId="bad id with spaces"), "callId"),
        (lambda e: e.update(type="nonsense"), "type"),
        (lambda e: e.update(start=3.0, end=1.0), "end"),
        (lambda e: e.update(id="1-1"), "id"),
    ],
)
async def test_malformed_event_is_refused_naming_the_field(
    relay: RelayServer, mutate, field
) -> None:
    event = final("c2", "hola")
    mutate(event)
    r = await post(relay, event)
    assert r.status_code == 400
    assert r.json()["field"] == field
    assert field in r.json()["error"]
    assert await relay.bus.read_call("c2") == []


async def test_bad_event_in_a_batch_stores_nothing_and_names_its_index(relay: RelayServer) -> None:
    bad = final("c3", "x")
    bad["words"] = [{"w": "x", "start": 0, "end": "late"}]
    r = await post(relay, [final("c3", "ok"), bad])
    assert r.status_code == 400
    assert r.json() == {
        "error": "words[0].end: must be a number",
        "field": "words[0].end",
        "index": 1,
    }
    assert await relay.bus.read_call("c3") == []


async def test_invalid_json_and_wrong_shapes(relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=relay.http) as client:
        r = await client.post("/event", content=b"{not json", headers=AUTH)
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = await client.post("/event", content=b"[]", headers=AUTH)
        assert r.status_code == 400
        r = await client.post("/event", content=b'"text"', headers=AUTH)
        assert r.status_code == 400


async def test_oversized_bodies_and_batches_are_refused(relay: RelayServer) -> None:
    event = final("c4", "a" * 7000)
    big = [event] * 200  # ~1.4 MB > 1 MiB
    r = await post(relay, big)
    assert r.status_code == 413

    # Without a Content-Length header too (chunked upload).
    async def chunks():
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with httpx.AsyncClient(base_url=relay.http) as client:
        r = await client.post("/event", content=chunks(), headers=AUTH)
    assert r.status_code == 413
    r = await post(relay, [final("c4", "x")] * 1001)
    assert r.status_code == 413
    assert await relay.bus.read_call("c4") == []


async def test_calls_listing_respects_roles(relay: RelayServer) -> None:
    await post(relay, [started("a", agent="200"), started("b", agent="201")])
    async with httpx.AsyncClient(base_url=relay.http) as client:
        r = await client.get("/calls")
        assert r.status_code == 401
        r = await client.get("/calls", params={"token": relay.token("agent", "200")})
        assert r.status_code == 401 and "in the URL is refused" in r.json()["error"]
        r = await client.get(
            "/calls", headers={"Authorization": f"Bearer {relay.token('agent', '200')}"}
        )
        assert [c["callId"] for c in r.json()["calls"]] == ["a"]
        r = await client.get(
            "/calls", headers={"Authorization": f"Bearer {relay.token('supervisor')}"}
        )
        assert [c["callId"] for c in r.json()["calls"]] == ["a", "b"]


async def test_call_events_listing(relay: RelayServer) -> None:
    r = await post(relay, [started("a"), final("a", "uno"), final("a", "dos", utt="u2")])
    ids = r.json()["ids"]
    async with httpx.AsyncClient(base_url=relay.http, headers=AUTH) as client:
        r = await client.get("/calls/a/events", params={"since": ids[0]})
        assert [e["id"] for e in r.json()["events"]] == ids[1:]
        assert [e["text"] for e in r.json()["events"]] == ["uno", "dos"]
        assert (await client.get("/calls/nope/events")).status_code == 404
        assert (await client.get("/calls/a/events", params={"since": "x"})).status_code == 400
    async with httpx.AsyncClient(base_url=relay.http) as client:

        def as_agent(agent: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {relay.token('agent', agent)}"}

        r = await client.get("/calls/a/events", headers=as_agent("999"))
        assert r.status_code == 403
        r = await client.get("/calls/a/events", headers=as_agent("200"))
        assert r.status_code == 200 and len(r.json()["events"]) == 3


async def test_health_metrics_and_static_console(relay: RelayServer) -> None:
    await post(relay, started("m1"))
    async with httpx.AsyncClient(base_url=relay.http) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["redis"] is True and health.json()["busReader"] == "connected"
        metrics = (await client.get("/metrics")).text
        assert 'relay_events_published_total{type="call.started"} 1.0' in metrics
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
