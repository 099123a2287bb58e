"""Call control: ARI events in, call flow out (answer, bridge, dial agent, tear down).

The media taps of a call are opened and closed by `ari/taps.py`, and reconciliation after
every events-socket (re)connect (adopting live calls, ending vanished ones, deleting orphans)
is `ari/reconcile.py`; both work on the controller's state (`calls`, `by_channel`, waiters)
and through its `ari()`, `spawn()` and `end_call()`.

Invariants:
- Events are queued (bound `EVENT_QUEUE_MAX`; when full the events WebSocket is dropped on
  purpose and the reconnect's reconciliation repairs state) and handled in order by one task.
- Handlers only update state and start per-call tasks; REST calls never block the event loop.
- Every resource a call creates is recorded on the call BEFORE the request is sent, so teardown
  deletes it even if the request was still in flight (404 = already gone); teardown first lets
  the call's flow reach a safe point (`FLOW_STOP_WAIT`).
- `ari()` is the one place that retries ARI requests (idempotent ones, `backoff`).
- Every task runs in the controller's `TaskSet` (logged with the call id and counted in
  `coach_task_failures_total{service="ari"}` when it fails). A call whose flow fails
  unexpectedly is ended (reason `error`: teardown deletes what it made); a failed tap only
  loses that speaker (also counted in `ari_tap_failures_total`); a failed teardown still
  publishes `call.ended` and forgets the call (what it left is an orphan for reconciliation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from ari.ami import AmiClient
from ari.call import (
    NAME_MAX,
    NUMBER_MAX,
    Call,
    CallPhase,
    ChannelGone,
    caller_text,
    parse_resource_id,
)
from ari.fallback import FallbackCalls
from ari.gateway import MediaGateway
from ari.metrics import Metrics
from ari.reconcile import Reconciler
from ari.recording import Recordings
from ari.rest import AriError, AriRest
from ari.settings import Settings
from ari.taps import Taps
from coach.backoff import RECONNECT, Backoff
from coach.publisher import Publisher
from coach.tasks import TaskFailure, TaskSet

log = logging.getLogger("ari.calls")

T = TypeVar("T")

EVENT_QUEUE_MAX: Final = 10_000
FLOW_STOP_WAIT: Final = 20.0
"""Seconds teardown waits for a call's flow to reach a safe point (bounded by REST timeouts)."""
PLAYBACK_WAIT: Final = 60.0

# Hangup causes (Q.850) of an originate that did not reach the agent.
_CAUSE_REASONS: Final = {
    17: "agent-busy",
    18: "agent-no-answer",
    19: "agent-no-answer",
    21: "agent-rejected",
}


class Controller:
    """All live calls of this app and the handlers that drive them."""

    def __init__(
        self,
        settings: Settings,
        rest: AriRest,
        gateway: MediaGateway,
        publisher: Publisher,
        metrics: Metrics,
        *,
        backoff: Backoff = RECONNECT,
        ami: AmiClient | None = None,
    ) -> None:
        self.s = settings
        self.backoff = backoff
        """Delays of the REST retries and of reconciliation attempts."""
        self.rest = rest
        self.gateway = gateway
        self.publisher = publisher
        self.metrics = metrics
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, str] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE_MAX)
        self._waiters: dict[str, asyncio.Future[None]] = {}
        """Channel id -> resolved by its StasisStart, failed (ChannelGone) by its end."""
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self._flows: dict[str, asyncio.Task[None]] = {}
        self._endings: dict[str, asyncio.Task[None]] = {}
        self.tasks = TaskSet("ari", registry=metrics.registry)
        self.fallback = FallbackCalls(settings, rest, self.ari, publisher)
        self.on_first_audio: Callable[[str, str, float], None] | None = None
        self.taps = Taps(self)
        self.reconciler = Reconciler(self)
        self.recordings = Recordings(rest, self.ari, publisher, ami)
        """MixMonitor's state per call (ari/recording.py); `ami` None = no pause/resume."""

    # -- plumbing -------------------------------------------------------------------------------

    def offer(self, event: dict[str, Any]) -> bool:
        """Queue an event from the WebSocket thread's callback; False when full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            kind = str(event.get("type", "?"))
            self.metrics.events_dropped.labels(kind).inc()
            log.warning(
                "event queue full (%d): refused %s",
                self.queue.maxsize,
                kind,
                extra={"event": kind, "channel": (event.get("channel") or {}).get("id")},
            )
            return False
        return True

    def spawn(
        self,
        coro: Coroutine[Any, Any, T],
        kind: str,
        call: Call | None = None,
        on_failure: Callable[[TaskFailure], None] | None = None,
    ) -> asyncio.Task[T]:
        """Start a supervised task (its failure is logged with the call id and counted)."""
        return self.tasks.spawn(
            coro, kind, call_id=call.call_id if call else None, on_failure=on_failure
        )

    def _flow_failed(self, call: Call, failure: TaskFailure) -> None:
        # Logged and counted by the task set; what the flow created is deleted by teardown.
        if not call.ended:
            self.end_call(call, "error")

    def _teardown_failed(self, call: Call, failure: TaskFailure) -> None:
        # Supervisors must not see a call that never ends: announce the end and forget the
        # call; whatever it left in Asterisk is an orphan the next reconciliation deletes.
        if call.phase is not CallPhase.ENDED:
            self._publish_ended(call)
            call.move(CallPhase.ENDED)
        self._forget(call)

    async def run(self) -> None:
        """Handle queued events in order, forever."""
        while True:
            event = await self.queue.get()
            try:
                self.handle(event)
            except Exception:  # one bad event must not stop call control
                log.exception("event handler failed", extra={"event": event.get("type")})

    async def ari(
        self, fn: Callable[..., Any], *args: Any, idempotent: bool = False, **kwargs: Any
    ) -> Any:
        """One ARI request. The single place that retries: idempotent ones, retryable errors."""
        attempts = 3 if idempotent else 1
        retry = self.backoff.retry()
        for attempt in range(attempts):
            try:
                return await self.rest.run(fn, *args, **kwargs)
            except AriError as exc:
                if not exc.retryable or attempt == attempts - 1:
                    raise
                await asyncio.sleep(retry.next())
        raise AssertionError("unreachable")

    async def delete(self, fn: Callable[[str], None], resource: str) -> None:
        """Delete a channel or bridge; 404 means it is already gone (fine)."""
        try:
            await self.ari(fn, resource, idempotent=True)
        except AriError as exc:
            if exc.status != 404:
                log.warning("could not delete %s: %s", resource, exc)

    def waiter(self, channel_id: str) -> asyncio.Future[None]:
        """A future resolved by the channel's StasisStart (ChannelGone if it ends first)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[channel_id] = fut
        return fut

    def waiting(self) -> list[str]:
        """Channels whose StasisStart someone waits for."""
        return list(self._waiters)

    def resolve(self, channel_id: str, error: BaseException | None = None) -> None:
        """Settle a channel's waiter: its StasisStart came (or, with `error`, it is gone)."""
        fut = self._waiters.pop(channel_id, None)
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be awaiting any more

    # -- events ---------------------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        """Dispatch one ARI event."""
        kind = event.get("type")
        self.metrics.events.labels(kind or "?").inc()
        channel = event.get("channel") or {}
        cid = channel.get("id", "")
        if kind == "StasisStart":
            self._on_stasis_start(channel, event.get("args") or [])
        elif kind == "StasisEnd":
            self._on_gone(cid, None)
        elif kind == "ChannelDestroyed":
            self._on_gone(cid, event.get("cause"))
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            pid = (event.get("playback") or {}).get("id", "")
            fut = self._playbacks.pop(pid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _on_stasis_start(self, channel: dict[str, Any], args: list[str]) -> None:
        cid = channel.get("id", "")
        if cid in self._waiters:
            self.resolve(cid)
            return
        ours = parse_resource_id(self.s.ari_app, cid)
        if ours is not None:
            # One of our channels that nobody waits for (its call ended): remove it.
            call = self.calls.get(ours[1])
            if call is None or call.ended:
                self.spawn(self.delete(self.rest.hangup, cid), "orphan-delete")
            return
        if cid in self.by_channel:
            return  # already adopted by reconciliation
        role = _arg(args, "role")
        if role not in (None, "caller"):
            log.warning("StasisStart with unknown role %r; ignored", role)
            return
        caller = channel.get("caller") or {}
        call = Call(
            call_id=cid,
            caller_channel=cid,
            caller_number=caller_text(caller.get("number"), NUMBER_MAX),
            caller_name=caller_text(caller.get("name"), NAME_MAX),
            app=self.s.ari_app,
            stasis_start_at=time.monotonic(),
            lang=_lang_arg(args, cid),
        )
        self.track(call)
        self.start_flow(call, channel)

    def start_flow(self, call: Call, channel: dict[str, Any], adopted: bool = False) -> None:
        """Run a new (or adopted) call's flow; an unexpected failure ends the call (`error`)."""
        self._flows[call.call_id] = self.spawn(
            self._flow(call, channel, adopted),
            "call-flow",
            call,
            on_failure=lambda failure: self._flow_failed(call, failure),
        )

    def _on_gone(self, cid: str, cause: int | None) -> None:
        if cid in self._waiters:
            self.resolve(cid, ChannelGone(cause))
        if self.fallback.on_gone(cid):
            return
        call_id = self.by_channel.get(cid)
        call = self.calls.get(call_id) if call_id else None
        if call is None or call.ended:
            return
        if cid == call.caller_channel:
            # After a no-agent `continue`, the caller's StasisEnd is the flow's own doing.
            self.end_call(call, call.closing_reason or "caller-hangup")
        elif cid == call.agent_channel and call.phase is CallPhase.BRIDGED:
            self.end_call(call, "agent-hangup")

    def track(self, call: Call) -> None:
        """Register a call and its caller channel."""
        self.calls[call.call_id] = call
        self.by_channel[call.caller_channel] = call.call_id
        self.metrics.active_calls.set(len(self.calls))

    # -- call flow ------------------------------------------------------------------------------

    async def _flow(self, call: Call, channel: dict[str, Any], adopted: bool = False) -> None:
        try:
            # Independent requests go out together: setup time is the critical path of
            # round trips to Asterisk, not their sum.
            first: list[Awaitable[Any]] = []
            if channel.get("state") != "Up":
                first.append(self.ari(self.rest.answer, call.caller_channel))
            if not adopted or call.phase is CallPhase.NEW:
                first.append(self._ensure_bridge(call.bridge_id))
            await asyncio.gather(*first)
            if call.ended:
                return
            self._publish_started(call)
            if not adopted or call.phase is CallPhase.NEW:
                await self._connect_agent(call)
                return
            self.metrics.calls.labels("bridged").inc()
            self.spawn(self.recordings.adopt(call), "recording", call)
            await self.taps.open_all(call)
        except AriError as exc:
            if not call.ended:
                log.warning("call flow failed: %s", exc, extra={"callId": call.call_id})
                reason = "caller-hangup" if exc.status == 404 else "error"
                self.end_call(call, reason)

    async def _connect_agent(self, call: Call) -> None:
        """Ring the agent and bridge both legs once it answers.

        Each speaker's tap opens as soon as that leg exists (the caller's now, the agent's when
        its channel is created, before it answers), so the first words after the answer are
        not lost to tap set-up. The caller joins the main bridge only with the agent: until
        then nobody is bridged, so MixMonitor's `b` writes no recording for a call that never
        reached an agent.
        """
        ring = self.spawn(self._best_effort(self.rest.ring, call.caller_channel), "ring", call)
        taps = [self.taps.spawn(call, "customer", call.caller_channel)]
        try:
            # An adopted call whose agent was already ringing: wait for that attempt.
            ringing, call.agent_ringing = call.agent_ringing, False
            reason = await self._dial_agent(call, originate=not ringing, taps=taps)
            await ring
            if reason is not None:
                # Tap requests in flight finish first, so teardown deletes all they made.
                await asyncio.gather(*taps, return_exceptions=True)
                await self._no_agent(call, reason)
                return
            if call.ended:
                return
            assert call.agent_channel is not None
            await asyncio.gather(
                self.ari(self.rest.add_channel, call.bridge_id, call.caller_channel),
                self.ari(self.rest.add_channel, call.bridge_id, call.agent_channel),
            )
            if call.ended:  # a hangup arrived while the agent was being bridged
                return
            call.move(CallPhase.BRIDGED)
            customer = call.taps.get("customer")
            if customer is not None and customer.media is not None:
                customer.media.held = False
            self.spawn(self._best_effort(self._stop_ring, call.caller_channel), "ring", call)
            self.spawn(self._bridged(call), "answered", call)
            self.metrics.calls.labels("bridged").inc()
            if self.s.mix_tap:
                taps.append(self.taps.spawn(call, "mix", None))
        finally:
            # Teardown waits for this flow: it must not return while a tap is being created.
            await asyncio.gather(*taps, return_exceptions=True)

    async def _ensure_bridge(self, bridge_id: str) -> None:
        try:
            await self.ari(self.rest.create_bridge, bridge_id, bridge_id)
        except AriError as exc:
            if exc.status != 409:  # 409: an adopted call's bridge already exists
                raise

    async def _best_effort(self, fn: Callable[[str], None], channel_id: str) -> None:
        """Ringback on/off: nice to have, never a reason to fail the call."""
        with contextlib.suppress(AriError):
            await self.ari(fn, channel_id)

    def _stop_ring(self, channel_id: str) -> None:
        self.rest.request("DELETE", f"/channels/{channel_id}/ring")

    async def _dial_agent(
        self, call: Call, *, originate: bool = True, taps: list[asyncio.Task[Any]] | None = None
    ) -> str | None:
        """Originate the agent; None when answered (in Stasis), else the failure reason.

        Once the agent's channel exists, its tap is opened (task appended to `taps`)."""
        agent = call.rid("agent")
        call.agent_channel = agent
        self.by_channel[agent] = call.call_id
        call.move(CallPhase.DIALING)
        fut = self.waiter(agent)
        caller_id = f'"{call.caller_name}" <{call.caller_number}>' if call.caller_number else None
        try:
            if originate:
                await self.ari(
                    self.rest.originate,
                    self.s.agent_dial,
                    app=self.s.ari_app,
                    app_args=f"role=agent,call={call.call_id}",
                    channel_id=agent,
                    timeout=self.s.agent_timeout,
                    caller_id=caller_id,
                )
        except AriError as exc:
            self._waiters.pop(agent, None)
            if exc.status is None:
                raise  # Asterisk itself is unreachable: not the agent's fault
            # Real Asterisk answers 500 "Allocation failed" when the endpoint has no contact
            # (phone not registered), 400 for an unknown endpoint: the agent cannot be reached.
            log.warning("originate refused: %s", exc, extra={"callId": call.call_id})
            return "agent-unreachable"
        if taps is not None and not call.ended:
            taps.append(self.taps.spawn(call, "agent", agent))
        try:
            # Asterisk enforces the ring timeout; ours is a safety net a little longer.
            await asyncio.wait_for(fut, self.s.agent_timeout + 5)
        except ChannelGone as gone:
            if call.ended:
                return None
            return _CAUSE_REASONS.get(gone.cause or 0, "agent-unreachable")
        except TimeoutError:
            self._waiters.pop(agent, None)
            await self.delete(self.rest.hangup, agent)
            return "agent-no-answer"
        call.agent_in_stasis = True
        return None

    async def _no_agent(self, call: Call, reason: str) -> None:
        """Busy/no answer/unreachable: play a message and hang up, or back to the dialplan."""
        log.info("agent not reached: %s", reason, extra={"callId": call.call_id})
        call.closing_reason = reason
        self.metrics.calls.labels(reason).inc()
        await self.delete(self.rest.delete_bridge, call.bridge_id)
        with contextlib.suppress(AriError):
            await self.ari(self._stop_ring, call.caller_channel)
        try:
            if self.s.no_agent_action == "continue":
                call.continued = True
                await self.ari(self.rest.continue_in_dialplan, call.caller_channel)
            elif self.s.no_agent_sound:
                await self._play(call, self.s.no_agent_sound)
        except AriError as exc:
            log.warning("no-agent action failed: %s", exc, extra={"callId": call.call_id})
        self.end_call(call, reason, from_flow=True)

    async def _play(self, call: Call, media: str) -> None:
        pid = call.rid("play")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._playbacks[pid] = fut
        try:
            await self.ari(self.rest.play, call.caller_channel, media, pid)
            await asyncio.wait_for(fut, PLAYBACK_WAIT)
        except TimeoutError:
            log.warning("playback did not finish", extra={"callId": call.call_id})
        finally:
            self._playbacks.pop(pid, None)

    # -- teardown -------------------------------------------------------------------------------

    def end_call(self, call: Call, reason: str, *, from_flow: bool = False) -> asyncio.Task[None]:
        """Start tearing the call down (idempotent); returns the teardown task."""
        if call.call_id in self._endings:
            return self._endings[call.call_id]
        call.move(CallPhase.ENDING)
        call.end_reason = reason
        for rid in [
            call.agent_channel,
            *(t.external_id for t in call.taps.values()),
            *(t.snoop_id for t in call.taps.values()),
        ]:
            if rid:
                self.resolve(rid, ChannelGone())
        playback = self._playbacks.pop(call.rid("play"), None)
        if playback is not None and not playback.done():
            playback.set_result(None)  # the caller is gone: stop waiting for the message
        task = self.spawn(
            self._teardown(call, from_flow),
            "teardown",
            call,
            on_failure=lambda failure: self._teardown_failed(call, failure),
        )
        self._endings[call.call_id] = task
        return task

    async def _teardown(self, call: Call, from_flow: bool) -> None:
        flow = self._flows.pop(call.call_id, None)
        if flow is not None and not from_flow and not flow.done():
            # Let in-flight requests finish so nothing is created after we deleted it.
            done, _ = await asyncio.wait({flow}, timeout=FLOW_STOP_WAIT)
            if not done:
                flow.cancel()
        await asyncio.gather(*(self.taps.close(call, tap) for tap in call.taps.values()))
        await self.delete(self.rest.delete_bridge, call.bridge_id)
        if call.agent_channel:
            await self.delete(self.rest.hangup, call.agent_channel)
        if not call.continued:
            await self.delete(self.rest.hangup, call.caller_channel)
        self._publish_ended(call)
        call.move(CallPhase.ENDED)
        self.metrics.calls.labels("ended").inc()
        self._forget(call)
        log.info("call ended: %s", call.end_reason, extra={"callId": call.call_id})

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self._endings.pop(call.call_id, None)
        for cid in [k for k, v in self.by_channel.items() if v == call.call_id]:
            del self.by_channel[cid]
        self.metrics.active_calls.set(len(self.calls))

    def _publish_ended(self, call: Call) -> None:
        recording = self.recordings.on_ended(call)  # `stopped` goes out before the end
        self.publisher.offer(
            {
                "type": "call.ended",
                "callId": call.call_id,
                "endedAt": _now_ms(),
                # "unknown" is not a reason the contract knows: the bus would refuse the
                # event and the call would never end for its viewers.
                "reason": call.end_reason or "error",
                **({"recording": recording} if recording else {}),
            }
        )

    def _publish_started(self, call: Call) -> None:
        if call.started_published:
            return
        call.started_published = True
        started_ms = _now_ms()
        call.started_wall = started_ms / 1000
        self.publisher.offer(
            {
                "type": "call.started",
                "callId": call.call_id,
                "agent": self.s.agent_id,
                "caller": {"number": call.caller_number, "name": call.caller_name},
                "startedAt": started_ms,
                "lang": call.lang or self.s.lang,
                "coached": True,
            }
        )

    async def _bridged(self, call: Call) -> None:
        # call.answered first, then the recording's start: the timeline reads in that order.
        await self._publish_answered(call)
        await self.recordings.on_bridged(call)

    async def _publish_answered(self, call: Call) -> None:
        """call.answered with the endpoint that actually answered (not the dial target)."""
        agent = await self._answered_by(call)
        if not call.ended:
            self.publisher.offer(
                {
                    "type": "call.answered",
                    "callId": call.call_id,
                    "agent": agent,
                    "answeredAt": _now_ms(),
                }
            )
            log.info("answered by %s", agent, extra={"callId": call.call_id})

    async def _answered_by(self, call: Call) -> str:
        assert call.agent_channel is not None
        try:
            chan = await self.ari(self.rest.channel, call.agent_channel, idempotent=True)
            name = str(chan.get("name", ""))
            if name.startswith("Local/"):
                # A Local dial string (or a queue behind it): the ;2 half dialled the phone
                # that answered, and Asterisk names it in DIALEDPEERNAME / MEMBERINTERFACE.
                for var in ("DIALEDPEERNAME", "MEMBERINTERFACE"):
                    peer = await self.ari(
                        self.rest.variable, f"{call.agent_channel};2", var, idempotent=True
                    )
                    if peer:
                        return endpoint_of(peer) or self.s.agent_id
                return self.s.agent_id
            return endpoint_of(name) or self.s.agent_id
        except AriError as exc:
            log.warning("could not tell who answered: %s", exc, extra={"callId": call.call_id})
            return self.s.agent_id

    # -- reconciliation (ari/reconcile.py) -----------------------------------------------------

    def on_connected(self) -> None:
        """Called on the loop after every events-WS (re)connect."""
        self.reconciler.on_connected()

    async def reconcile(self) -> bool:
        """Reconcile once now (False when Asterisk could not be listed)."""
        return await self.reconciler.run()

    # -- shutdown -------------------------------------------------------------------------------

    async def detach(self) -> None:
        """Shutdown: leave calls connected, remove our taps (the next start re-adopts them)."""
        for task in list(self._flows.values()):
            task.cancel()
        jobs = [
            self.taps.close(call, tap) for call in self.calls.values() for tap in call.taps.values()
        ]
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._endings:
            await asyncio.wait(set(self._endings.values()), timeout=FLOW_STOP_WAIT)
        await self.tasks.close(wait=5)


def _lang_arg(args: list[str], call_id: str) -> str:
    """The dialplan's `lang=` for this call (a language code or auto), "" when absent or bad."""
    lang = (_arg(args, "lang") or "").strip().lower()
    if lang and not (lang == "auto" or (2 <= len(lang) <= 3 and lang.isalpha())):
        log.warning(
            "StasisStart lang=%r is not a language code; CALL_LANG applies",
            lang,
            extra={"callId": call_id},
        )
        return ""
    return lang


def _arg(args: list[str], key: str) -> str | None:
    for item in args:
        for part in str(item).split(","):
            k, sep, v = part.partition("=")
            if sep and k.strip() == key:
                return v.strip()
    return None


def endpoint_of(channel_name: str) -> str | None:
    """The endpoint a channel name belongs to: `PJSIP/201-0000000a` -> `201`."""
    tech, sep, rest = channel_name.partition("/")
    if not sep or tech == "Local":
        return None
    resource = rest.rsplit("-", 1)[0] if "-" in rest else rest
    return resource or None


def _now_ms() -> int:
    return int(time.time() * 1000)
