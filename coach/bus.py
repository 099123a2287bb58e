"""The event bus on Redis streams (DESIGN.md "Bus and relay").

Layout, under a key prefix (default `coach`):
- `{p}:events`        one stream of every event, bounded in length (`global_maxlen`) and in
                      time (`events_retention_s`: entries older than that are trimmed as new
                      ones arrive, since the ids are millisecond timestamps). The relay tails it
                      with one reader per process; workers consume it with consumer groups.
                      Trimming ignores consumer groups: `coach.lag` measures how far behind
                      each group is and alarms before a lagging worker would lose entries.
- `{p}:call:{callId}` one stream per call, bounded (`call_maxlen`), for replay; expires
                      `ended_ttl` seconds after `call.ended` (or `idle_ttl` after its first
                      event, whichever comes first, so abandoned calls do not linger).
- `{p}:calls`         hash of active calls: callId -> its `call.started` event, whose `agent`
                      is replaced by `call.answered`'s (the endpoint that actually answered).

An event's `id` is the id of its entry in the global stream, and the per-call entry is written
with the same id by one Lua script, atomically. Ids are therefore monotonic per call *and*
across calls, so a client can resume either a single call or the all-calls feed from the last
id it saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from coach.errors import BusError, BusUnavailable
from coach.events import EventError, parse_id, validate
from coach.settings import Env

_PUBLISH_LUA = """
-- One trim strategy per XADD: the length bound while the stream is over it, else the time
-- bound (MINID: ids are ms timestamps), so both hold and a publisher needs no XTRIM.
local gid
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  gid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'c', ARGV[5], 't', ARGV[4], 'e', ARGV[1])
else
  local now = redis.call('TIME')
  local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[8])
  gid = redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%d', minid), '*', 'c', ARGV[5], 't', ARGV[4], 'e', ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], gid, 't', ARGV[4], 'e', ARGV[1])
if ARGV[4] == 'call.started' then
  redis.call('HSET', KEYS[3], ARGV[5], '{"id":"' .. gid .. '",' .. string.sub(ARGV[1], 2))
elseif ARGV[4] == 'call.answered' then
  -- Who answered is whose call it is: the index's agent follows it.
  local started = redis.call('HGET', KEYS[3], ARGV[5])
  if started then
    local entry = cjson.decode(started)
    entry['agent'] = cjson.decode(ARGV[1])['agent']
    redis.call('HSET', KEYS[3], ARGV[5], cjson.encode(entry))
  end
elseif ARGV[4] == 'call.ended' then
  redis.call('HDEL', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
-- LT: set the idle expiry on the first write only, never lengthen a shorter (ended) one.
redis.call('EXPIRE', KEYS[2], ARGV[7], 'LT')
return gid
"""


@dataclass(frozen=True)
class BusConfig:
    """Bounds and names of the bus; every service uses the same values."""

    prefix: str = "coach"
    """Key prefix, so several stacks can share one Redis."""
    global_maxlen: int = 200_000
    """Approximate bound of the all-events stream: about 40 s at 5,000 events/s, hours at normal load."""
    call_maxlen: int = 20_000
    """Approximate bound of one call's stream (a one-hour call with partials fits)."""
    ended_ttl: int = 3600
    """Seconds a call's stream is kept for replay after `call.ended`."""
    idle_ttl: int = 86_400
    """Seconds after its first event that a call's stream expires even without `call.ended`."""
    events_retention_s: int = 86_400
    """Seconds an entry stays in the all-events stream (time bound; keep it above the worst
    consumer lag: `coach.lag` alarms at `lag_alarm_fraction` of it)."""
    lag_alarm_fraction: float = 0.5
    """Share of `events_retention_s` a consumer group may lag before it is alarmed."""

    @classmethod
    def from_env(cls, env: Env) -> BusConfig:
        """From BUS_PREFIX, BUS_GLOBAL_MAXLEN, BUS_CALL_MAXLEN, BUS_ENDED_TTL, BUS_IDLE_TTL,
        BUS_EVENTS_RETENTION_S, BUS_LAG_ALARM_FRACTION (every service must read the same
        values: each writer applies the bounds)."""
        return cls(
            prefix=env.str("BUS_PREFIX", "coach"),
            global_maxlen=env.int("BUS_GLOBAL_MAXLEN", 200_000, min=1000),
            call_maxlen=env.int("BUS_CALL_MAXLEN", 20_000, min=100),
            ended_ttl=env.int("BUS_ENDED_TTL", 3600, min=10),
            idle_ttl=env.int("BUS_IDLE_TTL", 86_400, min=60),
            events_retention_s=env.int("BUS_EVENTS_RETENTION_S", 86_400, min=60),
            lag_alarm_fraction=env.float("BUS_LAG_ALARM_FRACTION", 0.5, min=0.01, max=1.0),
        )


class BusEvent(NamedTuple):
    """One stored event: its id, call, type and JSON text (without the id)."""

    id: str
    call_id: str
    type: str
    body: str

    def json(self) -> str:
        """The event as sent to consumers: the stored JSON with its `id` spliced in."""
        return '{"id":"' + self.id + '",' + self.body[1:]

    def data(self) -> dict[str, Any]:
        """The event as a dict, `id` included."""
        event: dict[str, Any] = json.loads(self.body)
        event["id"] = self.id
        return event


def id_after(event_id: str, other: str) -> bool:
    """Whether bus id `event_id` comes strictly after `other`."""
    return parse_id(event_id) > parse_id(other)


def _dumps(event: Mapping[str, Any]) -> str:
    # Compact UTF-8 JSON; the splice in BusEvent.json relies on the leading "{".
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Bus:
    """Async client of the event bus. Create with `Bus.connect(url)`; close with `close()`."""

    redis: aioredis.Redis
    config: BusConfig = field(default_factory=BusConfig)

    def __post_init__(self) -> None:
        p = self.config.prefix
        self.events_key = f"{p}:events"
        self.calls_key = f"{p}:calls"
        self._publish = self.redis.register_script(_PUBLISH_LUA)

    @classmethod
    def connect(cls, url: str, config: BusConfig | None = None, **kwargs: Any) -> Bus:
        """A bus on the Redis at `url` (connections are made lazily and re-made after errors)."""
        # A bounded pool that makes callers wait for a free connection: a burst of clients
        # (200 browsers reconnecting at once) queues instead of failing "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=kwargs.pop("max_connections", 64),
            timeout=kwargs.pop("pool_timeout", 5.0),
            decode_responses=True,
            socket_connect_timeout=kwargs.pop("connect_timeout", 2.0),
            socket_timeout=kwargs.pop("timeout", 5.0),
            health_check_interval=kwargs.pop("health_check_interval", 10),
            **kwargs,
        )
        return cls(aioredis.Redis(connection_pool=pool), config or BusConfig())

    async def close(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()

    def call_key(self, call_id: str) -> str:
        """Redis key of a call's stream."""
        return f"{self.config.prefix}:call:{call_id}"

    # -- producing ---------------------------------------------------------------------------

    def prepare(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Validate an event and stamp `ts` if missing; raises `EventError`."""
        clean = validate(dict(event))
        if clean.get("ts") is None:
            clean["ts"] = int(time.time() * 1000)
        return clean

    async def publish(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and store one event; return it with its `id`."""
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Validate all, then store all in one transaction: all are stored or none is."""
        clean = []
        for index, event in enumerate(events):
            try:
                clean.append(self.prepare(event))
            except EventError as exc:
                exc.index = index
                raise
        if not clean:
            return []
        try:
            if len(clean) == 1:
                # One script call is atomic by itself and costs one round trip.
                ids = [await self._publish(*self._script_args(clean[0]))]
            else:
                async with self.redis.pipeline(transaction=True) as pipe:
                    for event in clean:
                        keys, args = self._script_args(event)
                        await self._publish(keys, args, client=pipe)
                    ids = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._drop_idle()
            raise BusUnavailable(f"redis unavailable: {exc}") from exc
        except ResponseError as exc:
            raise BusError(f"redis refused the event: {exc}") from exc
        for event, event_id in zip(clean, ids, strict=True):
            event["id"] = event_id
        return clean

    def _script_args(self, event: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        cfg = self.config
        keys = [self.events_key, self.call_key(event["callId"]), self.calls_key]
        args = [
            _dumps(event),
            cfg.call_maxlen,
            cfg.global_maxlen,
            event["type"],
            event["callId"],
            cfg.ended_ttl,
            cfg.idle_ttl,
            cfg.events_retention_s * 1000,
        ]
        return keys, args

    # -- reading -----------------------------------------------------------------------------

    async def read_call(
        self, call_id: str, after: str | None = None, count: int | None = None
    ) -> list[BusEvent]:
        """A call's events in order, all or those strictly after id `after`."""
        start = "-" if after is None else f"({after}"
        entries = await self._read(
            lambda: self.redis.xrange(self.call_key(call_id), start, "+", count)
        )
        return [BusEvent(eid, call_id, fields["t"], fields["e"]) for eid, fields in entries]

    async def first_id(self, call_id: str | None = None) -> str | None:
        """Oldest id still stored in a call's stream (or the global one): older ids were trimmed."""
        key = self.events_key if call_id is None else self.call_key(call_id)
        entries = await self._read(lambda: self.redis.xrange(key, "-", "+", 1))
        return entries[0][0] if entries else None

    async def last_id(self) -> str:
        """Id of the newest event in the global stream, or "0-0" when it is empty."""
        entries = await self._read(lambda: self.redis.xrevrange(self.events_key, "+", "-", 1))
        return entries[0][0] if entries else "0-0"

    async def read_all(
        self, after: str, count: int = 1000, block_ms: int | None = None
    ) -> list[BusEvent]:
        """Events of every call strictly after `after`, waiting up to `block_ms` for new ones.

        Keep `block_ms` well under the socket timeout (5 s), which catches silent network loss.
        """
        reply = await self._read(
            lambda: self.redis.xread({self.events_key: after}, count=count, block=block_ms)
        )
        return _global_entries(reply)

    async def active_calls(self) -> dict[str, dict[str, Any]]:
        """Active calls: callId -> its `call.started` event (with id), pruning expired ones."""
        index: dict[str, str] = await self._read(lambda: self.redis.hgetall(self.calls_key))
        if not index:
            return {}
        ids = list(index)
        async with self.redis.pipeline(transaction=False) as pipe:
            for call_id in ids:
                pipe.exists(self.call_key(call_id))
            exists = await self._guard(pipe.execute())
        gone = [cid for cid, present in zip(ids, exists, strict=True) if not present]
        if gone:
            await self._guard(self.redis.hdel(self.calls_key, *gone))
        return {cid: json.loads(index[cid]) for cid, ok in zip(ids, exists, strict=True) if ok}

    async def ping(self) -> bool:
        """Whether Redis answers right now."""
        try:
            return bool(await self.redis.ping())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return False

    # -- consumer groups (workers) -----------------------------------------------------------

    async def ensure_group(self, group: str, start: str = "$") -> None:
        """Create consumer group `group` on the global stream if it does not exist."""
        try:
            await self._guard(
                self.redis.xgroup_create(self.events_key, group, id=start, mkstream=True)
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BusError(f"cannot create group {group}: {exc}") from exc

    async def read_group(
        self,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int | None = 1000,
        pending: bool = False,
        *,
        after: str = "0",
    ) -> list[BusEvent]:
        """Next events for this consumer; `pending=True` re-reads its own unacknowledged ones
        (those after id `after`: a cursor for paging through them).

        A pending entry that was trimmed or erased meanwhile comes back without fields: it can
        never be processed, so it is acknowledged here (else it would stay pending for ever
        and the group's lag would look as old as it); a page of only such entries is followed
        by the next, so an empty answer means there is nothing left."""
        while True:
            reply = await self._guard(
                self.redis.xreadgroup(
                    group, consumer, {self.events_key: after if pending else ">"}, count, block_ms
                )
            )
            gone: list[str] = []
            entries = _global_entries(reply, gone)
            if gone:
                await self.ack(group, gone)
            if entries or not gone or not pending:
                return entries
            after = gone[-1]

    async def ack(self, group: str, ids: Iterable[str]) -> int:
        """Acknowledge processed events."""
        id_list = list(ids)
        if not id_list:
            return 0
        return int(await self._guard(self.redis.xack(self.events_key, group, *id_list)))

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[BusEvent]:
        """Take over events another consumer read but did not ack within `min_idle_ms`."""
        reply = await self._guard(
            self.redis.xautoclaim(self.events_key, group, consumer, min_idle_ms, "0-0", count)
        )
        return [BusEvent(eid, f["c"], f["t"], f["e"]) for eid, f in reply[1] if f is not None]

    async def _guard(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._drop_idle()
            raise BusUnavailable(f"redis unavailable: {exc}") from exc

    async def _read(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run an idempotent read; a connection found dead is replaced once before giving up.

        A pooled connection can be dead without looking it (Redis restarted while it idled
        and no close reached us, or a firewall dropped the flow): the pool only finds out when
        the command is answered by a close. A read can safely go again on a new connection; a
        write cannot (it may have run before the close), so writes fail with BusUnavailable
        and their producers retry (coach/publisher.py)."""
        try:
            return await command()
        except (RedisConnectionError, OSError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py can turn our cancellation into a connection error: going again
                # would hold up a shutdown for a whole blocking read.
                raise asyncio.CancelledError from None
            await self._drop_idle()
        return await self._guard(command())

    async def _drop_idle(self) -> None:
        # One dead connection means the server went away: the ones idle in the pool are dead
        # too, so each would fail one more command. They reconnect on their next use.
        await self.redis.connection_pool.disconnect(inuse_connections=False)


def _global_entries(reply: Any, gone: list[str] | None = None) -> list[BusEvent]:
    if not reply:
        return []
    # redis-py returns [[stream, [(id, fields), ...]]] (RESP2) or {stream: [...]} (RESP3).
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply)
    out: list[BusEvent] = []
    for entries in streams:
        for eid, fields in entries:
            if not fields:  # a pending entry deleted since (trimmed, or a call erased)
                if gone is not None and eid is not None:
                    gone.append(eid)
                continue
            out.append(BusEvent(eid, fields["c"], fields["t"], fields["e"]))
    return out
