"""Scoped service tokens on the real relay: a producer publishes only its event types, a
reader only reads, and a rotated token works at once without a restart."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from coach.bus import BusConfig
from coach.redis_server import EmbeddedRedis
from coach.tokens import token_hash
from tests.relay.conftest import RelayServer, recv_until, start_relay, started
from tests.relay.test_ws import close_of, is_live

pytestmark = pytest.mark.integration

CRM = "crm-token-0123456789"
DASH = "dashboard-token-0123456789"


def _write(path: Path, *lines: tuple[str, str, str]) -> None:
    path.write_text("".join(f"{n} {s} {token_hash(t)}\n" for n, s, t in lines))


@pytest.fixture
async def scoped(
    redis_server: EmbeddedRedis, bus_config: BusConfig, tmp_path: Path
) -> AsyncIterator[tuple[RelayServer, Path]]:
    tokens = tmp_path / "service-tokens"
    _write(tokens, ("crm", "publish:coach", CRM), ("dashboard", "read", DASH))
    server = await start_relay(redis_server.url, bus_config, service_tokens_file=tokens)
    yield server, tokens
    await server.stop()


async def _post(relay: RelayServer, token: str, body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=relay.http) as client:
        return await client.post("/event", json=body, headers={"Authorization": f"Bearer {token}"})


COACH = {
    "type": "coach",
    "callId": "c1",
    "kind": "tip",
    "severity": "info",
    "text": "Ofrece",
    "source": "rules",
    "ruleId": "r1",
    "refs": [],
}


async def test_a_producer_publishes_only_its_event_types(scoped: tuple[RelayServer, Path]) -> None:
    relay, _ = scoped
    refused = await _post(relay, CRM, started("c1"))
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "token 'crm' may not publish call.started",
        "types": ["call.started"],
    }
    # A batch with one type outside the scope stores nothing at all.
    assert (await _post(relay, CRM, [COACH, started("c1")])).status_code == 403
    assert await relay.bus.read_call("c1") == []
    assert (await _post(relay, CRM, COACH)).status_code == 200
    assert (await _post(relay, DASH, COACH)).status_code == 403  # a reader does not write


async def test_reading_needs_the_read_scope(scoped: tuple[RelayServer, Path]) -> None:
    relay, _ = scoped
    await relay.bus.publish(started("c1"))
    async with await relay.connect("c1", CRM) as ws:
        assert await close_of(ws) == (4403, "token 'crm' may not read calls")
    async with await relay.connect("c1", DASH) as ws:
        assert (await recv_until(ws, is_live))[0]["type"] == "call.started"
    async with httpx.AsyncClient(base_url=relay.http) as client:
        assert (
            await client.get("/calls", headers={"Authorization": f"Bearer {CRM}"})
        ).status_code == 403


async def test_a_token_is_rotated_without_a_restart(scoped: tuple[RelayServer, Path]) -> None:
    relay, tokens = scoped
    rotated = "crm-token-rotated-9876543210"
    _write(tokens, ("crm", "publish:coach", rotated), ("dashboard", "read", DASH))
    os.utime(tokens, ns=(1, 1))
    assert (await _post(relay, rotated, COACH)).status_code == 200
    assert (await _post(relay, CRM, COACH)).status_code == 401
    # The one RELAY_TOKEN holds nothing once a tokens file is in use.
    from tests.relay.conftest import SERVICE_TOKEN

    assert (await _post(relay, SERVICE_TOKEN, COACH)).status_code == 401
