"""The append-only file is rewritten by Redis itself (auto-aof-rewrite-*), so call text that was
trimmed, expired or erased leaves the disk; the compose stack's Redis uses the same values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from coach.redis_server import AOF_REWRITE, EmbeddedRedis
from fakes.poll import until_sync

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKER = b"erase-me-4539148803436467"


def test_the_embedded_server_sets_the_rewrite_triggers(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        got: dict[str, str] = client.config_get("auto-aof-rewrite-*")  # type: ignore[assignment]
    finally:
        client.close()
    assert got["auto-aof-rewrite-percentage"] == AOF_REWRITE["auto-aof-rewrite-percentage"]
    assert int(got["auto-aof-rewrite-min-size"]) == 16 * 1024 * 1024  # not Redis's 64 MB


def test_compose_runs_redis_with_the_same_triggers() -> None:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"][
        "command"
    ]
    for name, value in AOF_REWRITE.items():
        assert command[command.index(f"--{name}") + 1] == value
    dockerfile = (ROOT / "images" / "redis" / "Dockerfile").read_text()
    for name, value in AOF_REWRITE.items():
        assert f'"--{name}", "{value}"' in dockerfile


@pytest.fixture
def small_floor() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(fsync="no", aof_rewrite={"auto-aof-rewrite-min-size": "1mb"}) as server:
        yield server


def aof_bytes(server: EmbeddedRedis) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(server.data_dir.rglob("*.aof")))


def test_deleted_text_leaves_the_append_only_file(small_floor: EmbeddedRedis) -> None:
    client = redis.Redis(port=small_floor.port)
    try:
        blob = MARKER + b"x" * 20_000
        for n in range(20):
            client.xadd("coach:call:c1", {"e": blob}, id=f"{n + 1}-0")
        client.delete("coach:call:c1")  # erased: still in the file until a rewrite
        assert MARKER in aof_bytes(small_floor)
        done = int(client.info("persistence")["aof_rewrites"])
        filler = b"y" * 20_000
        n = 0

        def rewritten() -> bool:
            nonlocal n
            info = client.info("persistence")
            if int(info["aof_rewrites"]) > done and not int(info["aof_rewrite_in_progress"]):
                return True
            for _ in range(10):  # keep the file growing until Redis rewrites it on its own
                n += 1
                client.xadd("coach:events", {"e": filler}, id=f"{n}-0", maxlen=50)
            return False

        until_sync(rewritten, 20, what="an automatic AOF rewrite")
        assert MARKER not in aof_bytes(small_floor)
    finally:
        client.close()
