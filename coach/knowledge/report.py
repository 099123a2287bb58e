"""The knowledge-base owner's report: questions that found nothing, and agents' card marks.

Two Redis streams under the bus's prefix (the services' ACL users already reach `{prefix}:*`
and hold XADD and XREVRANGE):
- `{prefix}:kb:misses`   a customer question (already redacted by STT) or a console search
                         that found no passage at or above KB_MIN_SCORE: callId, text, lang,
                         source (`call`/`search`), utteranceId.
- `{prefix}:kb:feedback` an agent's mark on a card: callId, eventId, cardId, passage, useful
                         (1/0), agent.
Each is capped at `MAX_ENTRIES` (approximate trim on every XADD: the oldest go first), so the
report is the recent past, not an archive; the call record (PostgreSQL) is where history lives.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coach.errors import BusError

MAX_ENTRIES: Final = 10_000
"""Entries kept per stream (approximate trim)."""
MAX_TEXT: Final = 500
"""Longest question kept (characters)."""


class KBReport:
    """Writes and reads the two report streams."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.misses_key = f"{prefix}:kb:misses"
        self.feedback_key = f"{prefix}:kb:feedback"

    async def _add(self, key: str, fields: dict[str, str]) -> str:
        try:
            return str(
                await self.redis.xadd(key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
            )
        except RedisError as exc:
            raise BusError(f"knowledge report: {exc}") from exc

    async def miss(
        self, call_id: str | None, text: str, lang: str | None, *, source: str,
        utterance_id: str = "",
    ) -> str:  # fmt: skip
        """Record a question that found nothing."""
        return await self._add(
            self.misses_key,
            {
                "callId": call_id or "",
                "text": text.strip()[:MAX_TEXT],
                "lang": lang or "",
                "source": source,
                "utteranceId": utterance_id,
            },
        )

    async def feedback(
        self, call_id: str, event_id: str, useful: bool, *, card_id: str = "",
        passage: str = "", agent: str = "",
    ) -> str:  # fmt: skip
        """Record an agent's useful / not useful mark on a card."""
        return await self._add(
            self.feedback_key,
            {
                "callId": call_id,
                "eventId": event_id,
                "cardId": card_id,
                "passage": passage,
                "useful": "1" if useful else "0",
                "agent": agent,
            },
        )

    async def read(self, limit: int = 200) -> dict[str, Any]:
        """The newest entries of both streams, and per-passage useful/not-useful counts."""
        try:
            misses = _entries(await self.redis.xrevrange(self.misses_key, "+", "-", count=limit))
            marks = _entries(
                await self.redis.xrevrange(self.feedback_key, "+", "-", count=MAX_ENTRIES)
            )
        except RedisError as exc:
            raise BusError(f"knowledge report: {exc}") from exc
        useful: Counter[str] = Counter()
        useless: Counter[str] = Counter()
        for _, f in marks:
            (useful if f.get("useful") == "1" else useless)[f.get("passage", "")] += 1
        passages = sorted(set(useful) | set(useless), key=lambda p: (-useless[p], p))
        return {
            "misses": [{"id": i, **f} for i, f in misses],
            "feedback": [{"id": i, **f} for i, f in marks[:limit]],
            "passages": [
                {"passage": p, "useful": useful[p], "notUseful": useless[p]} for p in passages
            ],
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Stream entries as (id, fields) with str keys and values."""
    return [
        (_text(i), {_text(k): _text(v) for k, v in (fields or {}).items()})
        for i, fields in reply or []
    ]
