"""Redis ACL on a real server: each service's user can do exactly what its code does, an
anonymous client and the operations no service needs are refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from coach.bus import Bus, BusConfig
from coach.redis_acl import ROLES, acl_file
from coach.redis_server import EmbeddedRedis
from orchestrator.leases import Leases
from tests.events import final, partial, started

pytestmark = pytest.mark.integration

ROLE_NAMES = ("default", *ROLES)
NO_RETRY = Retry(NoBackoff(), 0)  # a refusal is the answer: redis-py would retry it


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    passwords = {role: secrets.token_urlsafe(24) for role in ROLE_NAMES}
    with EmbeddedRedis(passwords=passwords) as redis_server:
        yield redis_server


@pytest.fixture
async def buses(server: EmbeddedRedis) -> AsyncIterator[dict[str, Bus]]:
    config = BusConfig()  # the ACL is on the deployment's prefix
    opened = {role: Bus.connect(server.url_for(role), config) for role in ROLES}
    opened["default"] = Bus.connect(server.url, config)
    yield opened
    for bus in opened.values():
        await bus.close()


async def test_an_anonymous_client_is_refused(server: EmbeddedRedis) -> None:
    client = aioredis.Redis(port=server.port, retry=NO_RETRY)
    with pytest.raises((AuthenticationError, ResponseError), match=r"NOAUTH|authenticated"):
        await client.ping()
    await client.aclose()


async def test_a_wrong_password_is_refused(server: EmbeddedRedis) -> None:
    client = aioredis.Redis(port=server.port, username="relay", password="not-it", retry=NO_RETRY)
    with pytest.raises(AuthenticationError):
        await client.ping()
    await client.aclose()


async def test_every_service_does_what_its_code_does(buses: dict[str, Bus]) -> None:
    call = f"acl-{secrets.token_hex(4)}"
    # ari: publishes call control events and reads the active calls / a call (adoption).
    await buses["ari"].publish(started(call))
    assert call in await buses["ari"].active_calls()
    # stt: publishes batches of transcript events.
    await buses["stt"].publish_many([partial(call, "hola"), final(call, "hola buenas")])
    # relay: history, live feed, first/last ids, and POST /event's publish.
    relay = buses["relay"]
    assert [e.type for e in await relay.read_call(call)] == ["call.started", "partial", "final"]
    assert await relay.first_id(call) and await relay.last_id()
    assert await relay.read_all("0-0", 10)
    await relay.publish(
        {"type": "call.ended", "callId": call, "endedAt": 9, "reason": "caller-hangup"}
    )
    # orchestrator: consumer groups, leases, cursors, pokes, its own events.
    orch = buses["orchestrator"]
    group = f"g-{call}"
    await orch.ensure_group(group, start="0")
    batch = await orch.read_group(group, "me", count=100, block_ms=None)
    assert batch
    assert await orch.ack(group, [e.id for e in batch]) == len(batch)
    await orch.claim_stale(group, "me", 1000, 10)
    leases = Leases(orch, "me", ttl_ms=5000, cursor_ttl_s=60, done_ttl_s=60)
    assert await leases.acquire(call) == "me"
    await leases.renew([call])
    await leases.open(call)
    await leases.save_cursor(call, batch[-1].id)
    await leases.progress(call, batch[-1].id, orch.events_key, group, [])
    assert await leases.poke("other", call) == 0
    assert await leases.open_calls() == [call]
    await leases.done(call)


@pytest.mark.parametrize(
    ("role", "command"),
    [
        ("stt", ("XRANGE", "coach:events", "-", "+")),  # stt cannot read calls
        ("ari", ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "coach:events", ">")),
        ("relay", ("DEL", "coach:events")),
        ("relay", ("XTRIM", "coach:events", "MAXLEN", "0")),
        ("relay", ("SET", "coach:orch:lease:x", "me")),
        ("relay", ("XADD", "other:events", "*", "e", "{}")),  # outside the bus's keys
        ("orchestrator", ("FLUSHALL",)),
        ("orchestrator", ("KEYS", "*")),
        ("orchestrator", ("CONFIG", "GET", "*")),
    ],
)
async def test_what_a_service_does_not_need_is_refused(
    buses: dict[str, Bus], role: str, command: tuple[str, ...]
) -> None:
    with pytest.raises(NoPermissionError):
        await buses[role].redis.execute_command(*command)


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("CONFIG", "SET", "appendonly", "no"),
        ("ACL", "SETUSER", "evil", "on", "+@all"),
    ],
)
async def test_the_operator_has_no_dangerous_commands(
    buses: dict[str, Bus], command: tuple[str, ...]
) -> None:
    with pytest.raises(NoPermissionError):
        await buses["default"].redis.execute_command(*command)


def test_passwords_are_stored_hashed(server: EmbeddedRedis) -> None:
    text = (server.data_dir / "users.acl").read_text()
    assert all(pw not in text for pw in server.passwords.values())
    assert (server.data_dir / "users.acl").stat().st_mode & 0o077 == 0


def test_an_acl_without_the_default_users_password_is_refused() -> None:
    with pytest.raises(ValueError, match="requirepass"):
        acl_file({"relay": "x"})
