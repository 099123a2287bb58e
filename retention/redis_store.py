"""Call text on the bus's Redis: the per-call streams, the all-events stream, the active index,
and the knowledge report's streams (`SIDE_STREAMS`: customer questions with their call id).

The bus bounds its own keys (a call's stream expires after `call.ended`, the all-events stream
is trimmed by length and time), so there a purge normally finds nothing: it is the backstop
for streams whose expiry was lost (an operator's PERSIST, a restore from an old file). The
knowledge report's streams are bounded in length only: the purge is their time bound.
Erasure removes one call everywhere, including its entries interleaved in shared streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import PurePath
from typing import Final

from redis.exceptions import ResponseError

from coach.backoff import BUS
from coach.bus import Bus
from coach.events import parse_id
from coach.retention import DataKind, Erasure, Removal

SCAN_COUNT: Final = 500
"""Keys per SCAN round trip."""
RANGE_COUNT: Final = 1000
"""All-events entries read per round trip while erasing a call (bounds memory)."""

SIDE_STREAMS: Final = (("kb:misses", "callId"), ("kb:feedback", "callId"))
"""Streams other components keep under the bus's prefix with call text or a call's marks
(coach/knowledge/report.py): the key's suffix and the field that holds the call id."""
REWRITE_ATTEMPTS: Final = 8
"""Tries of BGREWRITEAOF while another rewrite runs (about 15 s with the BUS backoff)."""

log = logging.getLogger("retention.redis")


class RedisStore:
    """`coach.retention.Store` (and `KnowsRecordings`) on the bus's Redis."""

    name = "redis"
    kind: DataKind = "text"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._call_prefix = bus.call_key("")
        self.rewrite_owed = False
        """An erasure's AOF rewrite could not start (one was running): asked again later."""

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        """Delete call streams whose newest entry is older than the cutoff, all-events entries
        older than it, and index entries of calls that started before it and have no stream."""
        redis = self.bus.redis
        if self.rewrite_owed:
            await self._rewrite_aof(None)
        out: list[Removal] = []
        async for key in redis.scan_iter(match=f"{self._call_prefix}*", count=SCAN_COUNT):
            newest = await self.bus._guard(redis.xrevrange(key, "+", "-", 1))
            if newest and parse_id(newest[0][0])[0] >= cutoff_ms:
                continue
            rows = int(await self.bus._guard(redis.xlen(key)))
            if await self.bus._guard(redis.delete(key)):
                out.append(Removal(self.name, "call stream", key[len(self._call_prefix) :], rows))
        for key, what in ((self.bus.events_key, "all-events entries"), *self._side_keys()):
            trimmed = int(
                await self.bus._guard(redis.xtrim(key, minid=f"{cutoff_ms}-0", approximate=False))
            )
            if trimmed:
                out.append(Removal(self.name, what, None, trimmed))
        index = await self.bus._guard(redis.hgetall(self.bus.calls_key))
        for call_id, started in index.items():
            event_id = json.loads(started).get("id", "0-0")
            if parse_id(event_id)[0] < cutoff_ms and not await self.bus._guard(
                redis.exists(self.bus.call_key(call_id))
            ):
                await self.bus._guard(redis.hdel(self.bus.calls_key, call_id))
                out.append(Removal(self.name, "active-calls entry", call_id, 1))
        return out

    async def erase(self, request: Erasure) -> list[Removal]:
        """Delete the call's stream, its index entry and its entries in the all-events stream."""
        redis = self.bus.redis
        call_id = request.call_id
        out: list[Removal] = []
        key = self.bus.call_key(call_id)
        rows = int(await self.bus._guard(redis.xlen(key)))
        if await self.bus._guard(redis.delete(key)):
            out.append(Removal(self.name, "call stream", call_id, rows))
        if await self.bus._guard(redis.hdel(self.bus.calls_key, call_id)):
            out.append(Removal(self.name, "active-calls entry", call_id, 1))
        removed = await self._erase_entries(self.bus.events_key, "c", call_id)
        if removed:
            out.append(Removal(self.name, "all-events entries", call_id, removed))
        for (key, what), (_, field) in zip(self._side_keys(), SIDE_STREAMS, strict=True):
            removed = await self._erase_entries(key, field, call_id)
            if removed:
                out.append(Removal(self.name, what, call_id, removed))
        if out or self.rewrite_owed:
            await self._rewrite_aof(call_id)
        return out

    async def _rewrite_aof(self, call_id: str | None) -> None:
        """Have Redis rewrite its append-only file now, so erased text leaves the disk without
        waiting for the file to double (auto-aof-rewrite-percentage). A rewrite already running
        started before the erasure and keeps its text, so ours is asked again (backoff) until
        Redis takes it; if it never does, it is owed and asked at the next erasure or sweep."""
        retry = BUS.retry()
        for attempt in range(REWRITE_ATTEMPTS):
            try:
                await self.bus._guard(self.bus.redis.bgrewriteaof())
                self.rewrite_owed = False
                return
            except ResponseError as exc:
                refused = "permission" in str(exc).lower()
                if refused or attempt == REWRITE_ATTEMPTS - 1:
                    self.rewrite_owed = True
                    log.log(
                        logging.ERROR if refused else logging.WARNING,
                        "append-only file not rewritten yet",
                        extra={"callId": call_id, "error": str(exc)},
                    )
                    return
            await asyncio.sleep(retry.next())

    def _side_keys(self) -> list[tuple[str, str]]:
        prefix = self.bus.config.prefix
        return [(f"{prefix}:{key}", f"{key} entries") for key, _ in SIDE_STREAMS]

    async def _erase_entries(self, key: str, field: str, call_id: str) -> int:
        """Delete the entries of stream `key` whose `field` is `call_id` (read in chunks)."""
        redis = self.bus.redis
        removed = 0
        start = "-"
        while True:
            entries = await self.bus._guard(redis.xrange(key, start, "+", RANGE_COUNT))
            if not entries:
                return removed
            ids = [eid for eid, fields in entries if fields.get(field) == call_id]
            if ids:
                removed += int(await self.bus._guard(redis.xdel(key, *ids)))
            if len(entries) < RANGE_COUNT:
                return removed
            start = f"({entries[-1][0]}"

    async def recordings(self, call_id: str) -> set[str]:
        """Base names of the recordings the call's stream names (`call.ended.recording`,
        `call.recording`'s `path`)."""
        names: set[str] = set()
        for event in await self.bus.read_call(call_id):
            if event.type not in ("call.ended", "call.recording"):
                continue
            data = event.data()
            path = data.get("recording") if event.type == "call.ended" else data.get("path")
            if isinstance(path, str) and path:
                names.add(PurePath(path).name)
        return names

    async def close(self) -> None:
        """The bus belongs to the service; nothing to release here."""
