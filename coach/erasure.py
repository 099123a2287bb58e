"""The erasure queue: how `DELETE /history/{callId}` on the relay reaches the retention worker.

The relay cannot delete files or the call record's rows (it reads PostgreSQL as a read-only
role), so it only queues the request; `python -m retention` consumes the queue and erases.

Keys, under the bus's prefix:
- `{p}:erasure`         stream of requests (`c` callId, `by` who asked, `at` ms). The worker
                        reads it with the consumer group `retention`, acknowledges an entry
                        once the call is erased and then deletes it, so a request read but not
                        finished (a crash, a store that is down) is read again after a restart:
                        nothing is lost. Bound: `QUEUE_MAX` unfinished requests; past it a new
                        request is refused (the relay answers 503), never dropped silently.
- `{p}:erasure:status`  hash callId -> JSON outcome `{callId, state, requestedAt, by, doneAt,
                        removed: [{store, what, rows, bytes}], error}`: what
                        `GET /history/{callId}/erasure` shows. It holds counts, never content.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from coach.errors import BusError

GROUP: Final = "retention"
"""The consumer group of retention workers on the erasure stream (replicas share it)."""
QUEUE_MAX: Final = 10_000
"""Unfinished erasure requests the queue holds; a request past it is refused (QueueFull)."""


class ErasureState(StrEnum):
    """Where an erasure request is."""

    QUEUED = "queued"
    """Waiting for the retention worker."""
    RETRYING = "retrying"
    """A store failed; the worker tries again (the request stays queued)."""
    DONE = "done"
    """Every store erased the call."""


class QueueFull(BusError):
    """QUEUE_MAX requests are waiting: the worker is down or far behind."""

    retryable = True


class Request(NamedTuple):
    """One queued request as the worker reads it."""

    id: str
    call_id: str
    by: str
    at: int


@dataclass
class ErasureQueue:
    """Both ends of the queue on one Redis client (decode_responses=True)."""

    redis: aioredis.Redis
    prefix: str = "coach"

    def __post_init__(self) -> None:
        self.stream_key = f"{self.prefix}:erasure"
        self.status_key = f"{self.prefix}:erasure:status"

    # -- the relay's side --------------------------------------------------------------------

    async def request(self, call_id: str, by: str, now_ms: int | None = None) -> dict[str, Any]:
        """Queue the erasure of `call_id` (once: a request already waiting is not repeated) and
        return its status; QueueFull past QUEUE_MAX."""
        current = await self.status(call_id)
        if current is not None and current.get("state") in (
            ErasureState.QUEUED,
            ErasureState.RETRYING,
        ):
            return current
        if int(await self.redis.xlen(self.stream_key)) >= QUEUE_MAX:
            raise QueueFull(f"{QUEUE_MAX} erasure requests are waiting")
        at = int(time.time() * 1000) if now_ms is None else now_ms
        status = {
            "callId": call_id,
            "state": ErasureState.QUEUED.value,
            "requestedAt": at,
            "by": by,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.status_key, call_id, json.dumps(status))
            pipe.xadd(self.stream_key, {"c": call_id, "by": by, "at": str(at)})
            await pipe.execute()
        return status

    async def status(self, call_id: str) -> dict[str, Any] | None:
        """The last known status of an erasure of `call_id`, if one was ever requested."""
        raw = await self.redis.hget(self.status_key, call_id)
        if raw is None:
            return None
        status: dict[str, Any] = json.loads(raw)
        return status

    # -- the worker's side -------------------------------------------------------------------

    async def set_status(self, status: dict[str, Any]) -> None:
        """Record the outcome of an erasure (the worker)."""
        await self.redis.hset(self.status_key, status["callId"], json.dumps(status))

    async def ensure_group(self) -> None:
        """Create the workers' group; a new group starts at the beginning: nothing queued
        before the first worker ever ran is skipped."""
        try:
            await self.redis.xgroup_create(self.stream_key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BusError(f"cannot create group {GROUP}: {exc}") from exc

    async def read(
        self, consumer: str, *, pending: bool = False, count: int = 10, block_ms: int | None = None
    ) -> list[Request]:
        """Next requests for `consumer`; `pending=True` re-reads those it had not finished."""
        reply: Any = await self.redis.xreadgroup(
            GROUP, consumer, {self.stream_key: "0" if pending else ">"}, count, block_ms
        )
        out: list[Request] = []
        gone: list[str] = []
        streams = reply.values() if isinstance(reply, dict) else (e for _, e in reply or [])
        for entries in streams:
            for eid, fields in entries:
                if not fields or "c" not in fields:
                    gone.append(eid)
                    continue
                out.append(
                    Request(eid, fields["c"], fields.get("by", ""), int(fields.get("at", 0)))
                )
        if gone:
            await self.finish(gone)
        return out

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 10) -> list[Request]:
        """Take over requests another (dead) worker read and did not finish."""
        reply: Any = await self.redis.xautoclaim(
            self.stream_key, GROUP, consumer, min_idle_ms, "0-0", count
        )
        return [
            Request(eid, f["c"], f.get("by", ""), int(f.get("at", 0)))
            for eid, f in reply[1]
            if f and "c" in f
        ]

    async def complete(self, request_id: str, status: dict[str, Any]) -> None:
        """Record a request's outcome and finish it, in one transaction (never one without the
        other: a status says done exactly when the request has left the queue)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.status_key, status["callId"], json.dumps(status))
            pipe.xack(self.stream_key, GROUP, request_id)
            pipe.xdel(self.stream_key, request_id)
            await pipe.execute()

    async def finish(self, ids: list[str]) -> None:
        """Acknowledge and delete finished requests (the status hash keeps their outcome)."""
        if not ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream_key, GROUP, *ids)
            pipe.xdel(self.stream_key, *ids)
            await pipe.execute()

    async def waiting(self) -> int:
        """Requests not finished yet."""
        return int(await self.redis.xlen(self.stream_key))
