"""Per-call leases in Redis: exactly one replica owns a call's state, timers and LLM requests.

A lease is a key `{prefix}:orch:lease:{callId}` holding the owner's consumer name with a TTL;
the owner renews its leases every tick. A replica that dies stops renewing, its leases lapse,
and whichever replica next sees an event of the call (or the periodic sweep) takes it over and
rebuilds the call's state from the call's stream. Cursors (`...:orch:cur:{callId}`) record how
far the owner got, so a takeover replays silently up to there and then continues live.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis

from coach.bus import Bus

DONE: Final = "done"
"""Cursor value of a call whose summary has been published."""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return owner
"""
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2])
  else table.insert(lost, i) end
end
return lost
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leases:
    """Lease, cursor and open-call bookkeeping for one replica (`me`)."""

    def __init__(self, bus: Bus, me: str, ttl_ms: int, cursor_ttl_s: int, done_ttl_s: int) -> None:
        self.redis: aioredis.Redis = bus.redis
        self.me = me
        self.ttl_ms = ttl_ms
        self.cursor_ttl_s = cursor_ttl_s
        self.done_ttl_s = done_ttl_s
        p = bus.config.prefix
        self._lease = f"{p}:orch:lease:"
        self._cursor = f"{p}:orch:cur:"
        self.open_key = f"{p}:orch:open"
        self.poke_prefix = f"{p}:orch:poke:"
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    def poke_channel(self, owner: str) -> str:
        """Pub/sub channel on which `owner` hears about events of its calls."""
        return self.poke_prefix + owner

    async def acquire(self, call_id: str) -> str:
        """Take the call's lease if free (or renew ours); return the owner's name."""
        owner = await self._acquire(keys=[self._lease + call_id], args=[self.me, self.ttl_ms])
        return str(owner)

    async def renew(self, call_ids: Iterable[str]) -> list[str]:
        """Renew our leases; return the calls whose lease we no longer hold."""
        ids = list(call_ids)
        if not ids:
            return []
        lost = await self._renew(keys=[self._lease + c for c in ids], args=[self.me, self.ttl_ms])
        return [ids[int(i) - 1] for i in lost]

    async def release(self, call_id: str) -> None:
        """Give the lease up (call done, or shutting down)."""
        await self._release(keys=[self._lease + call_id], args=[self.me])

    async def owners(self, call_ids: list[str]) -> list[str | None]:
        """Current owner of each call (None = nobody)."""
        if not call_ids:
            return []
        values: list[Any] = await self.redis.mget([self._lease + c for c in call_ids])
        return [str(v) if v is not None else None for v in values]

    async def poke(self, owner: str, call_id: str) -> int:
        """Tell `owner` its call has new events; returns how many replicas heard it."""
        return int(await self.redis.publish(self.poke_channel(owner), call_id))

    async def cursor(self, call_id: str) -> str | None:
        """Last bus id processed for a call, DONE, or None (never processed)."""
        value = await self.redis.get(self._cursor + call_id)
        return None if value is None else str(value)

    async def open(self, call_id: str) -> None:
        """Record that the orchestrator has started on this call (for the sweep)."""
        await self.redis.sadd(self.open_key, call_id)

    async def save_cursor(self, call_id: str, event_id: str) -> None:
        """Record progress on a call."""
        await self.redis.set(self._cursor + call_id, event_id, ex=self.cursor_ttl_s)

    async def progress(
        self, call_id: str, cursor: str | None, stream: str, group: str, acks: list[str]
    ) -> None:
        """Save the cursor and acknowledge group entries in one round trip."""
        if cursor is None and not acks:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            if cursor is not None:
                pipe.set(self._cursor + call_id, cursor, ex=self.cursor_ttl_s)
            if acks:
                pipe.xack(stream, group, *acks)
            await pipe.execute()

    async def done(self, call_id: str) -> None:
        """The call is finished: mark it, drop it from the open set, free the lease."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._cursor + call_id, DONE, ex=self.done_ttl_s)
            pipe.srem(self.open_key, call_id)
            await pipe.execute()
        await self.release(call_id)

    async def forget(self, call_id: str) -> None:
        """Drop a call from the open set (its stream is gone)."""
        await self.redis.srem(self.open_key, call_id)

    async def open_calls(self) -> list[str]:
        """Calls the orchestrator started on and has not finished."""
        return sorted(str(c) for c in await self.redis.smembers(self.open_key))
