"""Call control: ARI events in, call flow out (answer, bridge, dial agent, tap, tear down).

Events are queued (bound `EVENT_QUEUE_MAX`; when full the events WebSocket is dropped on
purpose and the reconnect's reconciliation repairs state) and handled in order by one task.
Handlers only update state and start per-call tasks; REST calls never block the event loop.
Every resource a call creates is recorded on the call BEFORE the request is sent, so teardown
deletes it even if the request was still in flight (404 = already gone).
Every task runs in the controller's `TaskSet` (logged with the call id and counted in
`coach_task_failures_total{service="ari"}` when it fails). A call whose flow fails
unexpectedly is ended (reason `error`: teardown deletes what it made); a failed tap only
loses that speaker (also counted in `ari_tap_failures_total`); a failed teardown still
publishes `call.ended` and forgets the call (what it left is an orphan for reconciliation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from websockets.exceptions import InvalidHandshake

from ari.call import Call, CallPhase, Tap, creation_time, parse_resource_id
from ari.fallback import FallbackCalls, is_fallback
from ari.gateway import MediaGateway, MediaTap, PortsExhausted, WebSocketMediaTap
from ari.metrics import Metrics
from ari.rest import AriError, AriRest
from ari.rtp import FORMATS
from ari.settings import Settings
from coach.backoff import RECONNECT, Backoff
from coach.errors import CoachError
from coach.publisher import Publisher
from coach.tasks import TaskFailure, TaskSet

log = logging.getLogger("ari.calls")

T = TypeVar("T")

EVENT_QUEUE_MAX: Final = 10_000
STASIS_WAIT: Final = 10.0
"""Seconds to wait for a created channel's StasisStart before giving up on it."""
FLOW_STOP_WAIT: Final = 20.0
"""Seconds teardown waits for a call's flow to reach a safe point (bounded by REST timeouts)."""
PLAYBACK_WAIT: Final = 60.0

# Hangup causes (Q.850) of an originate that did not reach the agent.
_CAUSE_REASONS: Final = {17: "agent-busy", 18: "agent-no-answer", 19: "agent-no-answer",
                         21: "agent-rejected"}


class ChannelGone(RuntimeError):
    """A channel we waited for was destroyed (or the call ended) before StasisStart."""

    def __init__(self, cause: int | None = None) -> None:
        super().__init__(f"channel gone (cause {cause})")
        self.cause = cause


class Controller:
    """All live calls of this app and the handlers that drive them."""

    def __init__(
        self, settings: Settings, rest: AriRest, gateway: MediaGateway, publisher: Publisher,
        metrics: Metrics, *, backoff: Backoff = RECONNECT,
    ) -> None:
        self.s = settings
        self.backoff = backoff
        """Delays of the REST retries and of reconciliation attempts."""
        self._incarnation = secrets.token_hex(2)
        self._tap_serial = 0
        self.rest = rest
        self.gateway = gateway
        self.publisher = publisher
        self.metrics = metrics
        self.fmt = FORMATS[settings.media_format]
        # chan_websocket media sockets live on Asterisk's HTTP server, beside ARI.
        self._media_ws_base = settings.ari_url.replace("http", "ws", 1)
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, str] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE_MAX)
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self._flows: dict[str, asyncio.Task[None]] = {}
        self._endings: dict[str, asyncio.Task[None]] = {}
        self.tasks = TaskSet("ari", registry=metrics.registry)
        self._reconcile_lock = asyncio.Lock()
        self.fallback = FallbackCalls(settings, rest, self.ari, publisher)
        self.on_first_audio: Callable[[str, str, float], None] | None = None

    # -- plumbing -------------------------------------------------------------------------------

    def offer(self, event: dict[str, Any]) -> bool:
        """Queue an event from the WebSocket thread's callback; False when full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()
            return False
        return True

    def spawn(self, coro: Coroutine[Any, Any, T], kind: str, call: Call | None = None,
              on_failure: Callable[[TaskFailure], None] | None = None) -> asyncio.Task[T]:
        """Start a supervised task (its failure is logged with the call id and counted)."""
        return self.tasks.spawn(coro, kind, call_id=call.call_id if call else None,
                                on_failure=on_failure)

    def _flow_failed(self, call: Call, failure: TaskFailure) -> None:
        # Logged and counted by the task set; what the flow created is deleted by teardown.
        if not call.ended:
            self.end_call(call, "error")

    def _tap_failed(self, _failure: TaskFailure) -> None:
        self.metrics.tap_failures.inc()  # the call goes on without this speaker

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

    async def ari(self, fn: Callable[..., Any], *args: Any, idempotent: bool = False,
                  **kwargs: Any) -> Any:
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

    def _waiter(self, channel_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[channel_id] = fut
        return fut

    def _resolve(self, channel_id: str, error: BaseException | None = None) -> None:
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
            self._resolve(cid)
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
            call_id=cid, caller_channel=cid, caller_number=caller.get("number", ""),
            caller_name=caller.get("name", ""), app=self.s.ari_app,
            stasis_start_at=time.monotonic(),
        )
        self._track(call)
        self._start_flow(call, channel)

    def _start_flow(self, call: Call, channel: dict[str, Any], adopted: bool = False) -> None:
        self._flows[call.call_id] = self.spawn(
            self._flow(call, channel, adopted), "call-flow", call,
            on_failure=lambda failure: self._flow_failed(call, failure))

    def _on_gone(self, cid: str, cause: int | None) -> None:
        if cid in self._waiters:
            self._resolve(cid, ChannelGone(cause))
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

    def _track(self, call: Call) -> None:
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
            await self._open_taps(call)
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
        taps = [self._spawn_tap(call, "customer", call.caller_channel)]
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
            self.spawn(self._publish_answered(call), "answered", call)
            self.metrics.calls.labels("bridged").inc()
            if self.s.mix_tap:
                taps.append(self._spawn_tap(call, "mix", None))
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

    async def _dial_agent(self, call: Call, *, originate: bool = True,
                          taps: list[asyncio.Task[Any]] | None = None) -> str | None:
        """Originate the agent; None when answered (in Stasis), else the failure reason.

        Once the agent's channel exists, its tap is opened (task appended to `taps`)."""
        agent = call.rid("agent")
        call.agent_channel = agent
        self.by_channel[agent] = call.call_id
        call.move(CallPhase.DIALING)
        fut = self._waiter(agent)
        caller_id = f'"{call.caller_name}" <{call.caller_number}>' if call.caller_number else None
        try:
            if originate:
                await self.ari(
                    self.rest.originate, self.s.agent_dial, app=self.s.ari_app,
                    app_args=f"role=agent,call={call.call_id}", channel_id=agent,
                    timeout=self.s.agent_timeout, caller_id=caller_id,
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
            taps.append(self._spawn_tap(call, "agent", agent))
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

    # -- taps -----------------------------------------------------------------------------------

    async def _open_taps(self, call: Call) -> None:
        legs: list[tuple[str, str | None]] = [("customer", call.caller_channel)]
        if call.agent_channel:
            legs.append(("agent", call.agent_channel))
        if self.s.mix_tap:
            legs.append(("mix", None))
        taps = [self._spawn_tap(call, speaker, leg) for speaker, leg in legs]
        await asyncio.gather(*taps, return_exceptions=True)  # failures: reported by the set

    def _spawn_tap(self, call: Call, speaker: str, leg: str | None) -> asyncio.Task[None]:
        return self.spawn(self._open_tap(call, speaker, leg), "tap", call,
                          on_failure=self._tap_failed)

    async def _open_tap(self, call: Call, speaker: str, leg: str | None) -> None:
        """snoop(spy=in) + ExternalMedia in a mixing bridge; mix tap: ExternalMedia in the call."""
        # Ids are new for every tap this process opens: after a restart the old taps are
        # deleted by reconciliation, and on a real Asterisk their ChannelDestroyed events can
        # arrive after a new channel with a reused id exists, which would kill the new tap.
        self._tap_serial += 1
        tag = f"{speaker}_{self._incarnation}{self._tap_serial}"
        tap = Tap(
            speaker=speaker,
            snoop_id=call.rid(f"snoop_{tag}") if leg else None,
            external_id=call.rid(f"em_{tag}"),
            bridge_id=call.rid(f"tap_{tag}") if leg else call.bridge_id,
        )
        call.taps[speaker] = tap
        try:
            # Each speaker's utterance times must count from the call's start, not from when
            # this tap opened (the agent answers later; an adopted call is minutes old).
            offset = max(0.0, time.time() - call.started_wall) if call.started_wall else 0.0
            websocket = self.s.media_transport == "websocket"
            if websocket:
                tap.media = self.gateway.websocket_tap(
                    call.call_id, speaker, self.fmt, self._first_audio_cb(call),
                    start_offset=offset,
                )
            else:
                tap.media = await self.gateway.open_tap(
                    call.call_id, speaker, self.fmt, self._first_audio_cb(call),
                    start_offset=offset,
                )
            self.metrics.taps.set(len(self.gateway.taps))
            # The caller's tap opens while the agent rings; what the caller says before the
            # agent is connected is not the conversation (and not the agent's to see).
            tap.media.held = speaker == "customer" and call.phase is not CallPhase.BRIDGED
            if call.ended:
                return
            waits = [self._waiter(tap.external_id)]
            data = f"role=media,call={call.call_id},speaker={speaker}"
            creates = [self.ari(
                self.rest.external_media_websocket, app=self.s.ari_app, fmt=self.fmt.name,
                channel_id=tap.external_id, data=data,
            ) if websocket else self.ari(
                self.rest.external_media, app=self.s.ari_app,
                external_host=f"{self.s.media_host}:{tap.media.port}", fmt=self.fmt.name,
                channel_id=tap.external_id, data=data,
            )]
            if leg is not None and tap.snoop_id is not None:
                waits.append(self._waiter(tap.snoop_id))
                creates.append(self.ari(self.rest.create_bridge, tap.bridge_id, tap.bridge_id))
                creates.append(self.ari(
                    self.rest.snoop, leg, app=self.s.ari_app,
                    app_args=f"role=snoop,call={call.call_id},speaker={speaker}",
                    snoop_id=tap.snoop_id,
                ))
            created = await asyncio.gather(*creates)
            if isinstance(tap.media, WebSocketMediaTap):
                conn = (created[0].get("channelvars") or {}).get("MEDIA_WEBSOCKET_CONNECTION_ID")
                if not conn:
                    raise AriError("externalMedia over websocket: no connection id")
                await tap.media.connect(f"{self._media_ws_base}/media/{conn}")
            # Bridging before the channel's own StasisStart is refused (422): wait for it.
            await asyncio.wait_for(asyncio.gather(*waits), STASIS_WAIT)
            if call.ended:
                return
            members = [tap.external_id] + ([tap.snoop_id] if tap.snoop_id else [])
            await asyncio.gather(*(self.ari(self.rest.add_channel, tap.bridge_id, m)
                                   for m in members))
            log.info("tap open", extra={"callId": call.call_id, "speaker": speaker,
                                        "port": tap.media.port})
        except (AriError, PortsExhausted, TimeoutError, ChannelGone, OSError,
                InvalidHandshake) as exc:
            # The call itself goes on without this speaker's transcript.
            if not call.ended:
                log.warning("tap %s failed: %r", speaker, exc, extra={"callId": call.call_id})
                self.metrics.tap_failures.inc()

    def _first_audio_cb(self, call: Call) -> Callable[[MediaTap], None]:
        def cb(tap: MediaTap) -> None:
            delay = time.monotonic() - call.stasis_start_at
            self.metrics.setup_seconds.observe(delay)
            if self.on_first_audio is not None:
                self.on_first_audio(call.call_id, tap.speaker, delay)
        return cb

    # -- teardown -------------------------------------------------------------------------------

    def end_call(self, call: Call, reason: str, *, from_flow: bool = False) -> asyncio.Task[None]:
        """Start tearing the call down (idempotent); returns the teardown task."""
        if call.call_id in self._endings:
            return self._endings[call.call_id]
        call.move(CallPhase.ENDING)
        call.end_reason = reason
        for rid in [call.agent_channel, *(t.external_id for t in call.taps.values()),
                    *(t.snoop_id for t in call.taps.values())]:
            if rid:
                self._resolve(rid, ChannelGone())
        playback = self._playbacks.pop(call.rid("play"), None)
        if playback is not None and not playback.done():
            playback.set_result(None)  # the caller is gone: stop waiting for the message
        task = self.spawn(self._teardown(call, from_flow), "teardown", call,
                          on_failure=lambda failure: self._teardown_failed(call, failure))
        self._endings[call.call_id] = task
        return task

    async def _teardown(self, call: Call, from_flow: bool) -> None:
        flow = self._flows.pop(call.call_id, None)
        if flow is not None and not from_flow and not flow.done():
            # Let in-flight requests finish so nothing is created after we deleted it.
            done, _ = await asyncio.wait({flow}, timeout=FLOW_STOP_WAIT)
            if not done:
                flow.cancel()
        await asyncio.gather(*(self._close_tap(call, tap) for tap in call.taps.values()))
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

    async def _close_tap(self, call: Call, tap: Tap, *, media_only: bool = False) -> None:
        if not media_only:
            await self.delete(self.rest.hangup, tap.external_id)
            if tap.snoop_id:
                await self.delete(self.rest.hangup, tap.snoop_id)
                await self.delete(self.rest.delete_bridge, tap.bridge_id)
        if tap.media is not None:
            media = tap.media
            await self.gateway.close_tap(media)
            tap.media = None
            js, ts = media.jitter.stats, media.stats
            for outcome, n in (("played", js.played), ("lost", js.lost), ("late", js.late),
                               ("duplicate", js.duplicate), ("invalid", ts.invalid),
                               ("foreign", ts.foreign), ("wrong_pt", ts.wrong_pt)):
                self.metrics.rtp_packets.labels(outcome).inc(n)
            self.metrics.stt_dropped_bytes.inc(media.stream.dropped_bytes)
            self.metrics.taps.set(len(self.gateway.taps))

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self._endings.pop(call.call_id, None)
        for cid in [k for k, v in self.by_channel.items() if v == call.call_id]:
            del self.by_channel[cid]
        self.metrics.active_calls.set(len(self.calls))

    def _publish_ended(self, call: Call) -> None:
        self.publisher.offer({
            "type": "call.ended", "callId": call.call_id, "endedAt": _now_ms(),
            "reason": call.end_reason or "unknown",
        })

    def _publish_started(self, call: Call) -> None:
        if call.started_published:
            return
        call.started_published = True
        started_ms = _now_ms()
        call.started_wall = started_ms / 1000
        self.publisher.offer({
            "type": "call.started", "callId": call.call_id, "agent": self.s.agent_id,
            "caller": {"number": call.caller_number, "name": call.caller_name},
            "startedAt": started_ms, "lang": self.s.lang, "coached": True,
        })

    async def _publish_answered(self, call: Call) -> None:
        """call.answered with the endpoint that actually answered (not the dial target)."""
        agent = await self._answered_by(call)
        if not call.ended:
            self.publisher.offer({
                "type": "call.answered", "callId": call.call_id, "agent": agent,
                "answeredAt": _now_ms(),
            })
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
                    peer = await self.ari(self.rest.variable, f"{call.agent_channel};2", var,
                                          idempotent=True)
                    if peer:
                        return endpoint_of(peer) or self.s.agent_id
                return self.s.agent_id
            return endpoint_of(name) or self.s.agent_id
        except AriError as exc:
            log.warning("could not tell who answered: %s", exc, extra={"callId": call.call_id})
            return self.s.agent_id

    # -- reconciliation -------------------------------------------------------------------------

    def on_connected(self) -> None:
        """Called on the loop after every events-WS (re)connect."""
        self.spawn(self._reconcile_until_done(), "reconcile")

    async def _reconcile_until_done(self, attempts: int = 5) -> None:
        # The events socket can be up while REST still fails (Asterisk starting up): retry a
        # few times; after that the next reconnect tries again.
        retry = self.backoff.retry()
        for _ in range(attempts):
            if await self.reconcile():
                return
            await asyncio.sleep(retry.next())

    async def reconcile(self) -> bool:
        """Adopt live calls, end calls whose channels vanished, delete orphaned resources.

        Returns False when Asterisk could not be listed (nothing was changed)."""
        async with self._reconcile_lock:
            # Calls that start after this instant are not in the snapshot: leave them alone.
            snapshot_at = time.monotonic()
            try:
                channels = await self.ari(self.rest.channels, idempotent=True)
                bridges = await self.ari(self.rest.bridges, idempotent=True)
            except AriError as exc:
                log.warning("reconciliation skipped: %s", exc)
                return False
            self.metrics.reconciles.inc()
            live = {c["id"]: c for c in channels}
            bridge_ids = {b["id"] for b in bridges}
            # StasisStart events we missed while disconnected: channels that are there now.
            for cid in list(self._waiters):
                if cid in live and _in_app(live[cid], self.s.ari_app):
                    self._resolve(cid)
            for call in list(self.calls.values()):
                if call.ended or call.stasis_start_at >= snapshot_at:
                    continue
                if call.caller_channel not in live:
                    self.end_call(call, "caller-hangup")
                elif (call.phase is CallPhase.BRIDGED and call.agent_channel
                      and call.agent_channel not in live):
                    self.end_call(call, "agent-hangup")
            adopted: list[tuple[Call, dict[str, Any]]] = []
            candidates = [c for c in channels
                          if parse_resource_id(self.s.ari_app, c["id"]) is None
                          and _in_app(c, self.s.ari_app)]
            fallbacks = any(is_fallback(c) for c in channels)
            active = await self._active() if candidates or fallbacks else {}
            announced = set(active)
            await self.fallback.reconcile(live, active)
            for chan in candidates:
                if chan["id"] not in self.by_channel:  # re-checked: events ran meanwhile
                    adopted.append((self._adopt(chan, live, bridge_ids, announced), chan))
            # Delete what no live call owns (and stale taps of adopted calls).
            jobs = []
            for cid in live:
                if not self._owned(cid):
                    jobs.append(self.delete(self.rest.hangup, cid))
            for bid in bridge_ids:
                if not self._owned(bid):
                    jobs.append(self.delete(self.rest.delete_bridge, bid))
            if jobs:
                log.info("reconciliation removes %d orphaned resources", len(jobs))
                self.metrics.orphans_removed.inc(len(jobs))
            await asyncio.gather(*jobs)
            for call, chan in adopted:
                self._start_flow(call, chan, adopted=True)
            return True

    def _adopt(self, chan: dict[str, Any], live: dict[str, Any], bridges: set[str],
               announced: set[str]) -> Call:
        caller = chan.get("caller") or {}
        call = Call(
            call_id=chan["id"], caller_channel=chan["id"], caller_number=caller.get("number", ""),
            caller_name=caller.get("name", ""), app=self.s.ari_app,
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
            self.by_channel[agent] = call.call_id
        elif agent in live:
            call.agent_ringing = True  # originated before our restart: await it
        self._track(call)
        log.info("adopted call in %s", call.phase.value, extra={"callId": call.call_id})
        return call

    async def _active(self) -> dict[str, dict[str, Any]]:
        """Calls with call.started on the bus (so adoption does not announce them again)."""
        try:
            return await self.publisher.bus.active_calls()
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
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return False
        if kind in ("agent", "bridge"):
            return True
        return any(resource in (t.external_id, t.snoop_id, t.bridge_id) for t in call.taps.values())

    # -- shutdown -------------------------------------------------------------------------------

    async def detach(self) -> None:
        """Shutdown: leave calls connected, remove our taps (the next start re-adopts them)."""
        for task in list(self._flows.values()):
            task.cancel()
        jobs = [self._close_tap(call, tap) for call in self.calls.values()
                for tap in call.taps.values()]
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._endings:
            await asyncio.wait(set(self._endings.values()), timeout=FLOW_STOP_WAIT)
        await self.tasks.close(wait=5)


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


def _in_app(chan: dict[str, Any], app: str) -> bool:
    plan = chan.get("dialplan") or {}
    return bool(plan.get("app_name") == "Stasis"
                and str(plan.get("app_data", "")).split(",")[0] == app)


def _now_ms() -> int:
    return int(time.time() * 1000)
