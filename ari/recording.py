"""Recording state of each live call: started when bridged, paused and resumed on request
(AMI `MixMonitorMute`), stopped when the call ends; every change a `call.recording` event.

The dialplan starts `MixMonitor(...,bD)` on the caller channel before `Stasis()`, so a call's
recording is that channel's `MIXMONITOR_FILENAME`; with `b` it holds audio from the moment
both legs are bridged, which is when `started` is published. Muting both directions turns what
MixMonitor writes into silence on both stereo channels: the file keeps its timing, so the
paused stretch of a call is still where it was. The state is also kept on the caller channel
(`COACH_RECORDING`), so an ari that restarts and adopts the call knows it is paused.

Requests for one call are serialised (a lock per call): two clicks cannot interleave their
AMI actions and events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ari.ami import AmiClient, AmiError, AmiUnavailable
from ari.call import Call
from ari.rest import AriError, AriRest
from coach.publisher import Publisher

log = logging.getLogger("ari.recording")

STATE_VAR: Final = "COACH_RECORDING"
"""Caller-channel variable holding `paused` while paused (read back on adoption)."""
REQUESTS: Final = ("paused", "resumed")


class RecordingRefused(Exception):
    """A pause/resume that cannot be done; `status` is the HTTP answer (404, 409, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recording:
    """One live call's recording."""

    path: str
    paused: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


Ari = Callable[..., Awaitable[Any]]


class Recordings:
    """Recording state of the controller's calls; `ami` None = pause/resume is off."""

    def __init__(
        self, rest: AriRest, ari: Ari, publisher: Publisher, ami: AmiClient | None
    ) -> None:
        self.rest = rest
        self.ari = ari
        """The controller's `ari()`: the one place ARI requests are retried."""
        self.publisher = publisher
        self.ami = ami
        self.by_call: dict[str, Recording] = {}

    async def _filename(self, call: Call) -> str:
        try:
            return str(
                await self.ari(
                    self.rest.variable, call.caller_channel, "MIXMONITOR_FILENAME", idempotent=True
                )
            )
        except AriError as exc:
            log.warning("recording not known: %s", exc, extra={"callId": call.call_id})
            return ""

    async def on_bridged(self, call: Call) -> None:
        """Both legs are bridged: MixMonitor writes from now on (if the dialplan started one)."""
        path = await self._filename(call)
        if not path or call.ended or call.call_id in self.by_call:
            return
        self.by_call[call.call_id] = Recording(path)
        self._publish(call, "started")
        log.info("recording started", extra={"callId": call.call_id, "path": path})

    async def adopt(self, call: Call) -> None:
        """A bridged call taken over after a restart: learn its recording and pause state."""
        path = await self._filename(call)
        if not path or call.ended:
            return
        try:
            state = await self.ari(
                self.rest.variable, call.caller_channel, STATE_VAR, idempotent=True
            )
        except AriError:
            state = ""
        self.by_call.setdefault(call.call_id, Recording(path, paused=state == "paused"))

    def on_ended(self, call: Call) -> str | None:
        """The call is over: `stopped` (with the path) is published; returns the path."""
        rec = self.by_call.pop(call.call_id, None)
        if rec is None:
            return None
        self._publish(call, "stopped", path=rec.path)
        return rec.path

    def state(self, call_id: str) -> str | None:
        """`recording`, `paused`, or None when the call has no recording."""
        rec = self.by_call.get(call_id)
        if rec is None:
            return None
        return "paused" if rec.paused else "recording"

    async def request(self, call: Call | None, want: str) -> dict[str, Any]:
        """Pause (`paused`) or resume (`resumed`) a call's recording; RecordingRefused else."""
        if want not in REQUESTS:
            raise RecordingRefused(400, "state must be 'paused' or 'resumed'")
        if call is None:
            raise RecordingRefused(404, "no such live call")
        rec = self.by_call.get(call.call_id)
        if rec is None or call.ended:
            raise RecordingRefused(409, "the call is not being recorded")
        if self.ami is None:
            raise RecordingRefused(503, "recording pause is off here (AMI_SECRET is not set)")
        async with rec.lock:
            if call.call_id not in self.by_call or call.ended:
                raise RecordingRefused(409, "the call is not being recorded")
            pause = want == "paused"
            if rec.paused == pause:
                raise RecordingRefused(409, f"the recording is already {want}")
            try:
                await self.ami.action(
                    "MixMonitorMute",
                    Channel=call.caller_channel,
                    Direction="both",
                    State="1" if pause else "0",
                )
            except AmiUnavailable as exc:
                raise RecordingRefused(503, f"recording control unavailable: {exc}") from exc
            except AmiError as exc:
                # "No such channel": the caller hung up between our check and the action.
                raise RecordingRefused(409, f"the call is not being recorded ({exc})") from exc
            rec.paused = pause
            at = self._publish(call, want)
            log.info("recording %s", want, extra={"callId": call.call_id, "at": at})
        try:
            await self.ari(
                self.rest.request,
                "POST",
                f"/channels/{call.caller_channel}/variable",
                {"variable": STATE_VAR, "value": "paused" if pause else ""},
            )
        except AriError as exc:  # only adoption after a restart reads it
            log.warning("pause state not kept: %s", exc, extra={"callId": call.call_id})
        return {"callId": call.call_id, "state": want, "at": at}

    def _publish(self, call: Call, state: str, **extra: Any) -> float:
        at = round(max(0.0, time.time() - call.started_wall), 3) if call.started_wall else 0.0
        self.publisher.offer(
            {"type": "call.recording", "callId": call.call_id, "state": state, "at": at, **extra}
        )
        return at
