"""Media gateway: one UDP port per tap, RTP in, PCM16 LE out to an STT stream.

A tap = (call, speaker). Who may send to it (a stranger on the LAN must not write a customer's
transcript):
- Only the address and port Asterisk reports for the tap's ExternalMedia channel
  (`UNICASTRTP_LOCAL_ADDRESS`/`_PORT`, given to `expect`). Until that reply is in, datagrams
  wait in a small queue (EARLY_PACKETS) and are then judged like the rest. Without the
  variables (an Asterisk that does not set them) the tap latches onto the first valid sender.
- One SSRC: pinned at the first accepted packet. A new SSRC from the same address and port
  (Asterisk re-creates its RTP instance, e.g. after a re-INVITE of the leg) is taken once
  SSRC_SWITCH_PACKETS packets in a row carry it with consecutive sequence numbers; those
  packets are held meanwhile and played then, so a legitimate switch loses nothing. A forged
  SSRC would need Asterisk's own address and port and a steady stream.
- Payloads of at most MAX_FRAME_MS: a larger datagram is dropped and counted, never forwarded
  (one 64 KB datagram used to make STT close the stream with 1009).
Each rejected datagram is counted by reason (TapStats; ari_rtp_packets_total at close).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from ari.jitter import JitterBuffer
from ari.rtp import AudioFormat, RtpError, RtpPacket, parse, to_pcm16le
from ari.stt_client import SttUplink
from coach.tasks import TaskSet

log = logging.getLogger("ari.gateway")


class PortsExhausted(RuntimeError):
    """No free UDP port in the gateway's range (too many concurrent calls for MEDIA_PORT_COUNT)."""


class PortAllocator:
    """Hands out ports from [base, base+count), lowest free first; `release` returns them."""

    def __init__(self, base: int, count: int) -> None:
        self.base = base
        self.count = count
        self._used: set[int] = set()
        self._next = base

    @property
    def in_use(self) -> int:
        """Ports currently allocated."""
        return len(self._used)

    def allocate(self) -> int:
        """A free port (round-robin, so a just-released port is not reused at once)."""
        for i in range(self.count):
            port = self.base + (self._next - self.base + i) % self.count
            if port not in self._used:
                self._used.add(port)
                self._next = port + 1
                return port
        raise PortsExhausted(f"all {self.count} media ports from {self.base} are in use")

    def release(self, port: int) -> None:
        """Give a port back."""
        self._used.discard(port)


EARLY_PACKETS = 50
"""Datagrams kept while the tap waits for Asterisk's address (1 s of 20 ms packets); older
ones are dropped first (counted as `early`)."""
SSRC_SWITCH_PACKETS = 3
"""Consecutive packets of a new SSRC from the pinned address that make it the tap's SSRC."""
MAX_FRAME_MS = 60
"""Largest RTP payload accepted, in milliseconds of audio (Asterisk sends 20 ms)."""
RTP_HEADER_MAX = 12 + 15 * 4 + 4 + 1024
"""Longest RTP header with every CSRC and a generous extension: beyond header + frame, a
datagram is dropped before it is parsed."""


@dataclass
class TapStats:
    """Per-tap counters."""

    datagrams: int = 0
    invalid: int = 0
    foreign: int = 0
    """From an address other than Asterisk's."""
    wrong_pt: int = 0
    ssrc: int = 0
    """From Asterisk's address with another SSRC, not (yet) taken as a switch."""
    oversize: int = 0
    """Payload longer than MAX_FRAME_MS."""
    early: int = 0
    """Dropped from the full queue before Asterisk's address was known."""
    first_audio_at: float | None = None


@dataclass(eq=False)  # identity semantics: taps live in sets
class MediaTap(asyncio.DatagramProtocol):
    """Receives one speaker's RTP and feeds the STT stream."""

    call_id: str
    speaker: str
    fmt: AudioFormat
    stream: SttUplink
    port: int
    on_first_audio: Callable[[MediaTap], None] | None = None
    jitter: JitterBuffer = field(default_factory=JitterBuffer)
    stats: TapStats = field(default_factory=TapStats)
    transport: asyncio.DatagramTransport | None = None
    peer: tuple[str, int] | None = None
    """Who may send: Asterisk's address for this tap (or the first valid sender)."""
    awaiting_peer: bool = True
    """True until `expect` is called: datagrams wait in `_early`."""
    ssrc: int | None = None
    _early: collections.deque[tuple[bytes, tuple[str, int]]] = field(
        default_factory=lambda: collections.deque(maxlen=EARLY_PACKETS)
    )
    _switch: list[tuple[RtpPacket, bytes]] = field(default_factory=list)
    held: bool = False
    """While held, audio is replaced by silence of the same length: the tap is ready (nothing
    is lost to set-up once released) and the stream's timeline stays the call's, but nothing
    said before the agent is connected is transcribed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to close it later."""
        # The selector loop's datagram transport does not subclass DatagramTransport in 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def expect(self, peer: tuple[str, int] | None) -> None:
        """Asterisk's address for this tap (None: latch onto the first valid sender); judge
        what arrived meanwhile."""
        self.peer = peer
        self.awaiting_peer = False
        early, self._early = list(self._early), collections.deque(maxlen=EARLY_PACKETS)
        for data, source in early:
            self._receive(data, source)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        """Validate, reorder, decode, forward."""
        self.stats.datagrams += 1
        source = (str(addr[0]), int(addr[1]))
        if self.awaiting_peer:
            if len(self._early) == EARLY_PACKETS:
                self.stats.early += 1
            self._early.append((data, source))
            return
        self._receive(data, source)

    def _receive(self, data: bytes, source: tuple[str, int]) -> None:
        if self.peer is not None and source != self.peer:
            self.stats.foreign += 1
            return
        if len(data) > RTP_HEADER_MAX + self.fmt.frame_bytes(MAX_FRAME_MS):
            self.stats.oversize += 1
            return
        try:
            packet = parse(data)
        except RtpError:
            self.stats.invalid += 1
            return
        if packet.payload_type != self.fmt.payload_type:
            # Comfort noise (13), DTMF (101) or a misconfigured format: not audio for STT.
            self.stats.wrong_pt += 1
            return
        if len(packet.payload) > self.fmt.frame_bytes(MAX_FRAME_MS):
            self.stats.oversize += 1
            return
        try:
            pcm = to_pcm16le(packet.payload, self.fmt)
        except RtpError:
            self.stats.invalid += 1
            return
        if self.peer is None:
            self.peer = source
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        if packet.ssrc != self.ssrc:
            self._maybe_switch(packet, pcm)
            return
        self.stats.ssrc += len(self._switch)  # a switch that did not hold: strays
        self._switch.clear()
        self._play(packet, pcm)

    def _maybe_switch(self, packet: RtpPacket, pcm: bytes) -> None:
        """Hold packets of a new SSRC; take it once SSRC_SWITCH_PACKETS arrive in a row."""
        if self._switch:
            last = self._switch[-1][0]
            if packet.ssrc != last.ssrc or packet.sequence != (last.sequence + 1) % 65536:
                self.stats.ssrc += len(self._switch)
                self._switch.clear()
        self._switch.append((packet, pcm))
        if len(self._switch) < SSRC_SWITCH_PACKETS:
            return
        log.info(
            "tap %s: SSRC switch to %#x", self.speaker, packet.ssrc, extra={"callId": self.call_id}
        )
        self.ssrc = packet.ssrc
        held, self._switch = self._switch, []
        for p, chunk in held:
            self._play(p, chunk)

    def _play(self, packet: RtpPacket, pcm: bytes) -> None:
        for chunk in self.jitter.push(packet, pcm):
            self._forward(chunk)

    def _forward(self, chunk: bytes) -> None:
        if self.held:
            chunk = bytes(len(chunk))
        if self.stats.first_audio_at is None:
            self.stats.first_audio_at = asyncio.get_running_loop().time()
            if self.on_first_audio is not None:
                self.on_first_audio(self)
        self.stream.feed(chunk)

    async def close(self) -> None:
        """Stop receiving, play what the jitter buffer holds, end the STT stream."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for chunk in self.jitter.flush():
            self._forward(chunk)
        await self.stream.close()


WS_MAX_FRAME = 1 << 16
"""Largest media frame accepted from chan_websocket (it sends 20 ms: 640 bytes of slin16)."""


@dataclass(eq=False)
class WebSocketMediaTap(MediaTap):
    """One speaker's audio from chan_websocket ExternalMedia (`MEDIA_TRANSPORT=websocket`):
    Asterisk is the server at `/media/<connection id>` (subprotocol `media`), sends one text
    `MEDIA_START ...` line, then binary frames of signed linear little-endian audio. No RTP,
    no UDP port, no jitter buffer (TCP delivers in order); held/first-audio as for RTP.

    Connection states: new -> connected (reader task running) -> closed."""

    tasks: TaskSet | None = None
    """Where the reader task runs (the gateway's set)."""
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    started: str = ""
    """The MEDIA_START line (format, frame size), for logs."""

    async def connect(self, url: str) -> None:
        """Open the media socket and start reading (raises OSError/InvalidHandshake)."""
        self.ws = await websockets.connect(
            url,
            subprotocols=[Subprotocol("media")],
            open_timeout=5,
            max_size=WS_MAX_FRAME,
            compression=None,
            ping_interval=None,
        )
        assert self.tasks is not None, "a WebSocketMediaTap is made by MediaGateway.websocket_tap"
        self.reader = self.tasks.spawn(self._read(self.ws), "ws-media-reader", call_id=self.call_id)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                self.stats.datagrams += 1
                if isinstance(message, str):
                    self.started = self.started or message
                    continue
                if len(message) % 2:
                    self.stats.invalid += 1
                    continue
                self._forward(message)

    async def close(self) -> None:
        """Close the media socket, end the STT stream."""
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None and self.tasks is not None:
            # A reader that failed was logged and counted by the task set when it ended.
            await self.tasks.cancel(self.reader)
        self.ws = self.reader = None
        await self.stream.close()


RCVBUF_BYTES = 1 << 20
"""Kernel receive buffer per tap (~2.5 s of 20 ms packets counting overhead): absorbs stalls
of this process (GC, a busy CPU) instead of dropping RTP. Capped by net.core.rmem_max."""


def _udp_socket(bind: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((bind, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MediaGateway:
    """Opens and closes taps; owns the port range."""

    def __init__(
        self,
        *,
        bind: str,
        base_port: int,
        port_count: int,
        stt_url: str,
        token: str,
        buffer_seconds: float,
        tasks: TaskSet,
    ) -> None:
        self.tasks = tasks
        """The media tasks: each tap's STT uplink and, over WebSocket, its media reader."""
        self.bind = bind
        self.ports = PortAllocator(base_port, port_count)
        self.stt_url = stt_url
        self.token = token
        self.buffer_seconds = buffer_seconds
        self.taps: set[MediaTap] = set()

    def _uplink(
        self,
        call_id: str,
        speaker: str,
        fmt: AudioFormat,
        start_offset: float,
        lang: str | None = None,
    ) -> SttUplink:
        """The STT stream one tap feeds (in the call's language, when given)."""
        return SttUplink(
            self.stt_url,
            self.token,
            call_id,
            speaker,
            fmt.rate,
            tasks=self.tasks,
            buffer_seconds=self.buffer_seconds,
            start_offset=start_offset,
            lang=lang,
        )

    async def open_tap(
        self,
        call_id: str,
        speaker: str,
        fmt: AudioFormat,
        on_first_audio: Callable[[MediaTap], None] | None = None,
        start_offset: float = 0.0,
        *,
        lang: str | None = None,
    ) -> MediaTap:
        """Bind a UDP port and start its STT stream; the caller gives the port to Asterisk."""
        loop = asyncio.get_running_loop()
        last_error: OSError | None = None
        for _ in range(min(self.ports.count, 20)):
            port = self.ports.allocate()
            try:
                stream = self._uplink(call_id, speaker, fmt, start_offset, lang)
                try:
                    sock = _udp_socket(self.bind, port)
                    _, tap = await loop.create_datagram_endpoint(
                        lambda port=port, stream=stream: MediaTap(  # type: ignore[misc]
                            call_id, speaker, fmt, stream, port, on_first_audio
                        ),
                        sock=sock,
                    )
                except OSError:
                    await stream.abort()
                    raise
            except OSError as exc:  # port taken by another process: skip it
                self.ports.release(port)
                last_error = exc
                log.warning("media port %d unavailable: %s", port, exc)
                continue
            self.taps.add(tap)
            return tap
        raise PortsExhausted(f"no bindable media port: {last_error}")

    def websocket_tap(
        self,
        call_id: str,
        speaker: str,
        fmt: AudioFormat,
        on_first_audio: Callable[[MediaTap], None] | None = None,
        start_offset: float = 0.0,
        *,
        lang: str | None = None,
    ) -> WebSocketMediaTap:
        """A tap fed by chan_websocket (no port): `connect()` it once Asterisk made the
        ExternalMedia channel and named its connection."""
        stream = self._uplink(call_id, speaker, fmt, start_offset, lang)
        tap = WebSocketMediaTap(call_id, speaker, fmt, stream, 0, on_first_audio, tasks=self.tasks)
        self.taps.add(tap)
        return tap

    async def close_tap(self, tap: MediaTap) -> None:
        """Close the socket, end the STT stream, release the port."""
        try:
            await tap.close()
        finally:
            self.taps.discard(tap)
            if tap.port:
                self.ports.release(tap.port)

    async def close(self) -> None:
        """Close all taps (shutdown)."""
        for tap in list(self.taps):
            await tap.stream.abort()
            await self.close_tap(tap)
