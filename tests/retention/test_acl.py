"""The retention worker's Redis user on a real server with the ACL file: it can purge, erase
and consume the erasure queue the relay's user writes to, and nothing beyond its keys: it
cannot publish an event or touch the orchestrator's keys."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError

from coach.bus import Bus, BusConfig
from coach.erasure import ErasureQueue
from coach.errors import BusError
from coach.lag import measure
from coach.redis_acl import ROLES
from coach.redis_server import EmbeddedRedis
from coach.retention import Erasure
from fakes.poll import until_async
from retention.redis_store import RedisStore
from tests.events import final, started

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    passwords = {role: secrets.token_urlsafe(24) for role in ("default", *ROLES)}
    with EmbeddedRedis(passwords=passwords) as redis_server:
        yield redis_server


def connect(server: EmbeddedRedis, role: str) -> Bus:
    return Bus.connect(server.url_for(role), BusConfig(), retry=Retry(NoBackoff(), 0))


async def test_retention_does_its_work_with_its_own_user(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    relay, stt, keeper = (
        connect(server, "relay"),
        connect(server, "stt"),
        connect(server, "retention"),
    )
    try:
        call = f"acl-{secrets.token_hex(4)}"
        await stt.publish_many([started(call), final(call, "hola")])
        queue = ErasureQueue(relay.redis, "coach")
        await queue.request(call, by="supervisor")  # the relay's user queues
        mine = ErasureQueue(keeper.redis, "coach")
        await mine.ensure_group()
        [request] = await mine.read("w1", block_ms=None)
        store = RedisStore(keeper)
        assert await store.recordings(call) == set()
        removed = await store.erase(Erasure(request.call_id))
        assert {r.what for r in removed} >= {"call stream", "all-events entries"}
        await mine.set_status({"callId": call, "state": "done"})
        await mine.finish([request.id])
        await store.purge_before(0)
        await measure(keeper, "retention", stream=mine.stream_key)
        assert (await queue.status(call) or {})["state"] == "done"  # the relay reads it
    finally:
        for bus in (relay, stt, keeper):
            await bus.close()


async def test_retention_cannot_publish_or_reach_other_keys(server: EmbeddedRedis) -> None:
    keeper = connect(server, "retention")
    try:
        with pytest.raises(BusError, match="no permissions"):
            await keeper.publish(started("c-x"))
        with pytest.raises(NoPermissionError):
            await keeper.redis.delete("coach:orch:lease:c-x")
        with pytest.raises(NoPermissionError):
            await keeper.redis.flushall()
    finally:
        await keeper.close()


async def test_an_erasure_leaves_no_trace_in_the_append_only_file(server: EmbeddedRedis) -> None:
    stt, keeper = connect(server, "stt"), connect(server, "retention")
    admin = Bus.connect(server.url, BusConfig())
    try:
        call = f"aof-{secrets.token_hex(4)}"
        marker = f"mi tarjeta {secrets.token_hex(8)}"
        await stt.publish_many([started(call), final(call, marker)])

        def on_disk() -> bytes:
            data = b""
            for path in sorted(server.data_dir.rglob("*.aof")):
                if not path.name.startswith("temp-"):  # a rewrite's work file, gone soon
                    with contextlib.suppress(FileNotFoundError):
                        data += path.read_bytes()
            return data

        assert marker.encode() in on_disk()
        await RedisStore(keeper).erase(Erasure(call))

        async def rewritten() -> bool:
            return marker.encode() not in on_disk()

        await until_async(rewritten, 20, what="the AOF rewritten without the erased text")
        assert await admin.read_call(call) == []
    finally:
        for bus in (stt, keeper, admin):
            await bus.close()
