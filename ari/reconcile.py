"""Reconciliation: after every events-socket (re)connect, make ari's state match Asterisk's.

Asterisk does not replay events after a reconnect (nor to a restarted ari), so the listing is
the truth: calls whose caller (or bridged agent) is gone are ended; live callers in our app
that no call owns are adopted (bridged, or still ringing the agent: that attempt is awaited,
not dialled again; announced on the bus only if `call.started` is not there yet); StasisStart
events missed meanwhile resolve their waiters; fallback calls are announced (ari/fallback.py);
channels and bridges named by this app that no live call owns are deleted. Calls that started
after the listing was taken are left alone. One reconciliation runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ari.call import (
    NAME_MAX,
    NUMBER_MAX,
    Call,
    CallPhase,
    caller_text,
    creation_time,
    parse_resource_id,
)
from ari.fallback import is_fallback
from ari.rest import AriError
from coach.errors import CoachError

if TYPE_CHECKING:
    from ari.controller import Controller

log = logging.getLogger("ari.calls")


class Reconciler:
    """Reconciles the controller's calls with what Asterisk lists."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.s = ctl.s
        self.rest = ctl.rest
        self.metrics = ctl.metrics
        self._lock = asyncio.Lock()

    def on_connected(self) -> None:
        """Called on the loop after every events-WS (re)connect."""
        self.ctl.spawn(self.until_done(), "reconcile")

    async def until_done(self, attempts: int = 7) -> None:
        """Reconcile, retrying with the controller's backoff while Asterisk cannot be listed."""
        # The events socket can be up while REST still fails (Asterisk starting up): retry
        # for about 20 s (RECONNECT: 0.2 s doubling to 10 s); after that the next reconnect
        # tries again.
        retry = self.ctl.backoff.retry()
        for _ in range(attempts):
            if await self.run():
                return
            await asyncio.sleep(retry.next())

    async def run(self) -> bool:
        """Adopt live calls, end calls whose channels vanished, delete orphaned resources.

        Returns False when Asterisk could not be listed (nothing was changed)."""
        async with self._lock:
            # Calls that start after this instant are not in the snapshot: leave them alone.
            snapshot_at = time.monotonic()
            try:
                channels = await self.ctl.ari(self.rest.channels, idempotent=True)
                bridges = await self.ctl.ari(self.rest.bridges, idempotent=True)
            except AriError as exc:
                log.warning("reconciliation skipped: %s", exc)
                return False
            self.metrics.reconciles.inc()
            live = {c["id"]: c for c in channels}
            bridge_ids = {b["id"] for b in bridges}
            # StasisStart events we missed while disconnected: channels that are there now.
            for cid in self.ctl.waiting():
                if cid in live and _in_app(live[cid], self.s.ari_app):
                    self.ctl.resolve(cid)
            for call in list(self.ctl.calls.values()):
                if call.ended or call.stasis_start_at >= snapshot_at:
                    continue
                if call.caller_channel not in live:
                    self.ctl.end_call(call, "caller-hangup")
                elif (
                    call.phase is CallPhase.BRIDGED
                    and call.agent_channel
                    and call.agent_channel not in live
                ):
                    self.ctl.end_call(call, "agent-hangup")
            adopted: list[tuple[Call, dict[str, Any]]] = []
            candidates = [
                c
                for c in channels
                if parse_resource_id(self.s.ari_app, c["id"]) is None and _in_app(c, self.s.ari_app)
            ]
            fallbacks = any(is_fallback(c) for c in channels)
            active = await self._active() if candidates or fallbacks else {}
            announced = set(active)
            await self.ctl.fallback.reconcile(live, active)
            for chan in candidates:
                if chan["id"] not in self.ctl.by_channel:  # re-checked: events ran meanwhile
                    adopted.append((self._adopt(chan, live, bridge_ids, announced), chan))
            # Delete what no live call owns (and stale taps of adopted calls).
            jobs = []
            for cid in live:
                if not self._owned(cid):
                    jobs.append(self.ctl.delete(self.rest.hangup, cid))
            for bid in bridge_ids:
                if not self._owned(bid):
                    jobs.append(self.ctl.delete(self.rest.delete_bridge, bid))
            if jobs:
                log.info("reconciliation removes %d orphaned resources", len(jobs))
                self.metrics.orphans_removed.inc(len(jobs))
            await asyncio.gather(*jobs)
            for call, chan in adopted:
                self.ctl.start_flow(call, chan, adopted=True)
            return True

    def _adopt(
        self, chan: dict[str, Any], live: dict[str, Any], bridges: set[str], announced: set[str]
    ) -> Call:
        caller = chan.get("caller") or {}
        call = Call(
            call_id=chan["id"],
            caller_channel=chan["id"],
            caller_number=caller_text(caller.get("number"), NUMBER_MAX),
            caller_name=caller_text(caller.get("name"), NAME_MAX),
            app=self.s.ari_app,
            stasis_start_at=time.monotonic(),
        )
        # After our own restart call.started is already on the bus: do not announce twice.
        call.started_published = call.call_id in announced
        call.started_wall = creation_time(chan) or time.time()
        agent = call.rid("agent")
        if agent in live and _in_app(live[agent], self.s.ari_app) and call.bridge_id in bridges:
            call.agent_channel = agent
            call.agent_in_stasis = True
            call.move(CallPhase.BRIDGED)
            self.ctl.by_channel[agent] = call.call_id
        elif agent in live:
            call.agent_ringing = True  # originated before our restart: await it
        self.ctl.track(call)
        log.info("adopted call in %s", call.phase.value, extra={"callId": call.call_id})
        return call

    async def _active(self) -> dict[str, dict[str, Any]]:
        """Calls with call.started on the bus (so adoption does not announce them again)."""
        try:
            return await self.ctl.publisher.bus.active_calls()
        except CoachError as exc:
            log.warning("bus unavailable during reconciliation: %s", exc)
            return {}

    def _owned(self, resource: str) -> bool:
        """Whether a resource named by this app belongs to a live call's current state."""
        # A Local agent's ;2 half has the id "<agent id>;2" (real Asterisk 22): it belongs to
        # whatever owns its ;1 half, and hanging it up would hang up the agent.
        parsed = parse_resource_id(self.s.ari_app, resource.split(";", 1)[0])
        if parsed is None:
            return True  # not ours to judge (other apps, callers)
        kind, call_id = parsed
        call = self.ctl.calls.get(call_id)
        if call is None or call.ended:
            return False
        if kind in ("agent", "bridge"):
            return True
        return any(resource in (t.external_id, t.snoop_id, t.bridge_id) for t in call.taps.values())


def _in_app(chan: dict[str, Any], app: str) -> bool:
    plan = chan.get("dialplan") or {}
    return bool(
        plan.get("app_name") == "Stasis" and str(plan.get("app_data", "")).split(",")[0] == app
    )
