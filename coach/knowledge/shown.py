"""Which knowledge passages were shown as cards: the denominator of the KB owner's report.

One Redis stream under the bus's prefix, `{prefix}:kb:shown`, one entry per card published
(orchestrator/knowledge.py): passage, title, section, cardId. It holds no call id and no
customer text (a card id is a hash), so erasure has nothing to remove here. Capped at
`MAX_ENTRIES` like the report's other streams (approximate trim on every XADD: the oldest go
first): the counts are the recent past. The orchestrator's Redis user appends (XADD on
`{prefix}:*`), the relay's reads (XREVRANGE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coach.errors import BusError

MAX_ENTRIES: Final = 20_000
"""Cards remembered (approximate trim)."""


@dataclass
class Shown:
    """How often one passage was shown, and when last (ms since epoch, from the entry id)."""

    passage: str
    title: str
    section: str
    count: int
    last_ms: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ShownLog:
    """Appends shown cards and counts them per passage."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:kb:shown"

    async def add(
        self, passage: str, *, title: str = "", section: str = "", card_id: str = ""
    ) -> str:
        """Record one card shown."""
        fields = {
            "passage": passage,
            "title": title[:500],
            "section": section[:500],
            "cardId": card_id,
        }
        try:
            return _text(
                await self.redis.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
            )
        except RedisError as exc:
            raise BusError(f"knowledge shown log: {exc}") from exc

    async def counts(self) -> dict[str, Shown]:
        """Per passage: times shown (distinct cards) in the kept entries, newest title."""
        try:
            reply = await self.redis.xrevrange(self.key, "+", "-", count=MAX_ENTRIES)
        except RedisError as exc:
            raise BusError(f"knowledge shown log: {exc}") from exc
        out: dict[str, Shown] = {}
        cards: set[str] = set()
        for raw_id, raw_fields in reply or []:
            f = {_text(k): _text(v) for k, v in (raw_fields or {}).items()}
            passage, card = f.get("passage", ""), f.get("cardId", "")
            if not passage or (card and card in cards):
                continue  # a card logged twice (a worker's retry) counts once
            cards.add(card)
            entry_ms = int(_text(raw_id).split("-", maxsplit=1)[0])
            seen = out.get(passage)
            if seen is None:  # newest first: the first entry has the latest title and time
                out[passage] = Shown(passage, f.get("title", ""), f.get("section", ""), 1, entry_ms)
            else:
                seen.count += 1
        return out
