"""Media taps of a call: per speaker a snoop (spy=in) and an ExternalMedia channel in a tap
bridge (the mix tap: ExternalMedia in the call's own bridge), the gateway's socket they send
to, and closing them again with their RTP counters.

Invariants: a tap's ids are recorded on the call (`call.taps`) before any request is sent, so
teardown deletes whatever a request in flight creates; ids are new for every tap this process
opens; a channel is added to its bridge only after its own StasisStart (else 422). A tap that
fails (expected: ARI errors, no port, timeouts; or unexpectedly: counted by the task set)
loses that speaker's transcript, never the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from websockets.exceptions import InvalidHandshake

from ari.call import Call, CallPhase, ChannelGone, Tap
from ari.gateway import MediaTap, PortsExhausted, WebSocketMediaTap
from ari.rest import AriError
from ari.rtp import FORMATS

if TYPE_CHECKING:
    from ari.controller import Controller

log = logging.getLogger("ari.calls")

STASIS_WAIT: Final = 10.0
"""Seconds to wait for a created channel's StasisStart before giving up on it."""


class Taps:
    """Opens and closes the taps of the controller's calls."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.s = ctl.s
        self.rest = ctl.rest
        self.gateway = ctl.gateway
        self.metrics = ctl.metrics
        self.fmt = FORMATS[ctl.s.media_format]
        self._incarnation = secrets.token_hex(2)
        self._serial = 0
        # chan_websocket media sockets live on Asterisk's HTTP server, beside ARI.
        self._media_ws_base = ctl.s.ari_url.replace("http", "ws", 1)

    async def open_all(self, call: Call) -> None:
        """Every speaker's tap of an adopted (already bridged) call."""
        legs: list[tuple[str, str | None]] = [("customer", call.caller_channel)]
        if call.agent_channel:
            legs.append(("agent", call.agent_channel))
        if self.s.mix_tap:
            legs.append(("mix", None))
        taps = [self.spawn(call, speaker, leg) for speaker, leg in legs]
        await asyncio.gather(*taps, return_exceptions=True)  # failures: reported by the set

    def spawn(self, call: Call, speaker: str, leg: str | None) -> asyncio.Task[None]:
        """Open one tap in a supervised task (its failure loses only this speaker)."""
        return self.ctl.spawn(
            self.open(call, speaker, leg),
            "tap",
            call,
            on_failure=lambda _failure: self._failed(call, speaker),
        )

    def _failed(self, call: Call, speaker: str) -> None:
        # Logged with the call id and counted by the task set (unexpected), or logged here
        # (ARI refused, no port, ...): the call goes on without this speaker's transcript.
        self.metrics.tap_failures.inc()
        call.failed_taps.add(speaker)

    async def open(self, call: Call, speaker: str, leg: str | None) -> None:
        """snoop(spy=in) + ExternalMedia in a mixing bridge; mix tap: ExternalMedia in the call."""
        # Ids are new for every tap this process opens: after a restart the old taps are
        # deleted by reconciliation, and on a real Asterisk their ChannelDestroyed events can
        # arrive after a new channel with a reused id exists, which would kill the new tap.
        self._serial += 1
        tag = f"{speaker}_{self._incarnation}{self._serial}"
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
                    call.call_id,
                    speaker,
                    self.fmt,
                    self._first_audio_cb(call),
                    start_offset=offset,
                    lang=call.lang or self.s.lang,
                )
            else:
                tap.media = await self.gateway.open_tap(
                    call.call_id,
                    speaker,
                    self.fmt,
                    self._first_audio_cb(call),
                    start_offset=offset,
                    lang=call.lang or self.s.lang,
                )
            self.metrics.taps.set(len(self.gateway.taps))
            # The caller's tap opens while the agent rings; what the caller says before the
            # agent is connected is not the conversation (and not the agent's to see).
            tap.media.held = speaker == "customer" and call.phase is not CallPhase.BRIDGED
            if call.ended:
                return
            waits = [self.ctl.waiter(tap.external_id)]
            data = f"role=media,call={call.call_id},speaker={speaker}"
            creates = [
                self.ctl.ari(
                    self.rest.external_media_websocket,
                    app=self.s.ari_app,
                    fmt=self.fmt.name,
                    channel_id=tap.external_id,
                    data=data,
                )
                if websocket
                else self.ctl.ari(
                    self.rest.external_media,
                    app=self.s.ari_app,
                    external_host=f"{self.s.media_host}:{tap.media.port}",
                    fmt=self.fmt.name,
                    channel_id=tap.external_id,
                    data=data,
                )
            ]
            if leg is not None and tap.snoop_id is not None:
                waits.append(self.ctl.waiter(tap.snoop_id))
                creates.append(self.ctl.ari(self.rest.create_bridge, tap.bridge_id, tap.bridge_id))
                creates.append(
                    self.ctl.ari(
                        self.rest.snoop,
                        leg,
                        app=self.s.ari_app,
                        app_args=f"role=snoop,call={call.call_id},speaker={speaker}",
                        snoop_id=tap.snoop_id,
                    )
                )
            created = await asyncio.gather(*creates)
            if not isinstance(tap.media, WebSocketMediaTap):
                tap.media.expect(_asterisk_address(created[0], call.call_id))
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
            await asyncio.gather(
                *(self.ctl.ari(self.rest.add_channel, tap.bridge_id, m) for m in members)
            )
            log.info(
                "tap open",
                extra={"callId": call.call_id, "speaker": speaker, "port": tap.media.port},
            )
        except (
            AriError,
            PortsExhausted,
            TimeoutError,
            ChannelGone,
            OSError,
            InvalidHandshake,
        ) as exc:
            # The call itself goes on without this speaker's transcript.
            if not call.ended:
                log.warning("tap %s failed: %r", speaker, exc, extra={"callId": call.call_id})
                self._failed(call, speaker)

    def _first_audio_cb(self, call: Call) -> Callable[[MediaTap], None]:
        def cb(tap: MediaTap) -> None:
            delay = time.monotonic() - call.stasis_start_at
            self.metrics.setup_seconds.observe(delay)
            if self.ctl.on_first_audio is not None:
                self.ctl.on_first_audio(call.call_id, tap.speaker, delay)

        return cb

    async def close(self, call: Call, tap: Tap, *, media_only: bool = False) -> None:
        """Delete a tap's channels and bridge (unless `media_only`), close its media, count."""
        if not media_only:
            await self.ctl.delete(self.rest.hangup, tap.external_id)
            if tap.snoop_id:
                await self.ctl.delete(self.rest.hangup, tap.snoop_id)
                await self.ctl.delete(self.rest.delete_bridge, tap.bridge_id)
        if tap.media is not None:
            media = tap.media
            await self.gateway.close_tap(media)
            tap.media = None
            js, ts = media.jitter.stats, media.stats
            for outcome, n in (
                ("played", js.played),
                ("lost", js.lost),
                ("late", js.late),
                ("duplicate", js.duplicate),
                ("invalid", ts.invalid),
                ("foreign", ts.foreign),
                ("wrong_pt", ts.wrong_pt),
                ("ssrc", ts.ssrc),
                ("oversize", ts.oversize),
                ("early", ts.early),
            ):
                self.metrics.rtp_packets.labels(outcome).inc(n)
            self.metrics.stt_dropped_bytes.inc(media.stream.dropped_bytes)
            self.metrics.taps.set(len(self.gateway.taps))


def _asterisk_address(channel: dict[str, Any], call_id: str) -> tuple[str, int] | None:
    """Where Asterisk sends this ExternalMedia channel's RTP from (its channel variables)."""
    variables = channel.get("channelvars") or {}
    host, port = variables.get("UNICASTRTP_LOCAL_ADDRESS"), variables.get("UNICASTRTP_LOCAL_PORT")
    try:
        if host and port:
            return str(host), int(port)
    except ValueError:
        pass
    log.warning(
        "ExternalMedia reply without UNICASTRTP_LOCAL_ADDRESS/PORT: the tap takes the first sender",
        extra={"callId": call_id},
    )
    return None
