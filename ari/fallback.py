"""Calls the dialplan connected without the app (ari was down: `STASISSTATUS=FAILED`, the
`fallback` extension dialled the agent directly). They carry no coaching, but supervisors must
still see them: when ari (re)connects, each such live call is announced with `call.started`
(`coached: false`), ari subscribes to its channel, and its hangup publishes `call.ended` with
reason `fallback`. A fallback call announced earlier that is gone by the next reconciliation
is ended then. Calls that start and end entirely while ari is down stay invisible (the
dialplan holds no credentials to tell anyone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ari.call import creation_time
from ari.rest import AriError, AriRest
from ari.settings import Settings
from coach.publisher import Publisher

log = logging.getLogger("ari.fallback")

FALLBACK_CONTEXT = "coach-call"
FALLBACK_EXTEN = "fallback"

Ari = Callable[..., Awaitable[Any]]


def is_fallback(chan: Mapping[str, Any]) -> bool:
    """Whether a channel is a caller the dialplan's fallback is connecting (or connected)."""
    plan = chan.get("dialplan") or {}
    return bool(plan.get("context") == FALLBACK_CONTEXT and plan.get("exten") == FALLBACK_EXTEN)


class FallbackCalls:
    """Fallback calls ari knows of: callId -> caller channel (the same id)."""

    def __init__(self, settings: Settings, rest: AriRest, ari: Ari, publisher: Publisher) -> None:
        self.s = settings
        self.rest = rest
        self.ari = ari
        self.publisher = publisher
        self.watched: set[str] = set()

    async def reconcile(
        self, live: Mapping[str, Mapping[str, Any]], active: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Announce and watch live fallback calls; end announced ones that are gone."""
        for cid, chan in live.items():
            if not is_fallback(chan) or cid in self.watched:
                continue
            try:
                await self.ari(self.rest.subscribe_channel, self.s.ari_app, cid, idempotent=True)
            except AriError as exc:
                log.warning("cannot watch fallback call: %s", exc, extra={"callId": cid})
                continue
            self.watched.add(cid)
            if cid not in active:
                self._started(chan)
        for cid, started in active.items():
            if started.get("coached") is False and cid not in live:
                self._ended(cid)

    def on_gone(self, cid: str) -> bool:
        """A watched fallback call's channel is gone: publish its end. False if not one."""
        if cid not in self.watched:
            return False
        self._ended(cid)
        return True

    def _started(self, chan: Mapping[str, Any]) -> None:
        caller = chan.get("caller") or {}
        created = creation_time(chan)
        self.publisher.offer(
            {
                "type": "call.started",
                "callId": chan["id"],
                "agent": self.s.agent_id,
                "caller": {"number": caller.get("number", ""), "name": caller.get("name", "")},
                "startedAt": int((created or time.time()) * 1000),
                "lang": self.s.lang,
                "coached": False,
            }
        )
        log.info("fallback call seen (connected without coaching)", extra={"callId": chan["id"]})

    def _ended(self, cid: str) -> None:
        self.watched.discard(cid)
        self.publisher.offer(
            {
                "type": "call.ended",
                "callId": cid,
                "endedAt": int(time.time() * 1000),
                "reason": "fallback",
            }
        )
        log.info("fallback call ended", extra={"callId": cid})
