"""One speaker's audio stream to STT `WS /stream`, surviving STT restarts and slowness.

input (`feed`, never blocks) -> bounded deque -> sender task -> WebSocket.
Overflow policy: the deque holds at most `buffer_seconds` of audio; when STT is down or slower
than real time the OLDEST audio is dropped (counted in `dropped_bytes`), so that after STT
comes back the call continues with its most recent speech rather than lagging further behind.
Reconnection: `coach.backoff.RECONNECT` (exponential, jittered); each new socket carries
`offset=` (seconds of audio sent before it) so STT can keep utterance times relative to the
call start. Its tasks (sender, socket reader) run in the gateway's `TaskSet`: a sender that
fails unexpectedly is logged with the call id and counted, and the uplink closes itself
(`error` set, queued audio counted as dropped) while the call goes on.

Not to be confused with the STT service's side of the same socket (stt/stream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import socket
from collections import deque
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from coach.backoff import RECONNECT, Backoff
from coach.errors import CoachError
from coach.tasks import TaskFailure, TaskSet, first_completed

log = logging.getLogger("ari.stt")

FATAL_CLOSE_CODES = frozenset({1003, 1007, 1009, 4400, 4401, 4403})
"""STT close codes that reconnecting cannot cure (bad token, bad parameters, bad frames)."""
FATAL_HTTP_STATUS = frozenset({400, 401, 403, 404})
"""Handshake refusals that reconnecting cannot cure."""


class UplinkError(CoachError):
    """STT ended or refused the stream; `retryable` says whether a new socket can help."""


def _close_error(code: int | None, reason: str | None = None) -> UplinkError:
    return UplinkError(
        f"STT closed the stream: {code} {reason or ''}".strip(),
        retryable=code not in FATAL_CLOSE_CODES,
    )


def _closed_error(ws: ClientConnection) -> UplinkError:
    return _close_error(ws.close_code, ws.close_reason)


MAX_FRAME_BYTES = 6400
"""Largest binary frame sent (200 ms of slin16): batches what queued up, bounds frame size."""


WRITE_LIMIT = 32 * 1024
"""High-water mark of the WebSocket's write buffer; above it `send` waits (backpressure)."""
SNDBUF_BYTES = 64 * 1024
"""Kernel send buffer of an STT socket: kept small so a slow STT shows up as backpressure
within ~2 s of audio instead of megabytes hidden in the kernel, and our deque stays the bound."""


def _limit_send_buffer(ws: ClientConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)


class UplinkState(enum.Enum):
    """State of one uplink to STT."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    ENDING = "ending"
    CLOSED = "closed"


class SttUplink:
    """Forward PCM16 LE chunks of one (call, speaker) to STT; `close()` sends `{"type":"end"}`."""

    def __init__(
        self,
        stt_url: str,
        token: str,
        call_id: str,
        speaker: str,
        rate: int,
        *,
        tasks: TaskSet,
        buffer_seconds: float = 30.0,
        backoff: Backoff = RECONNECT,
        end_timeout: float = 10.0,
        frame_ms: int = 100,
        start_offset: float = 0.0,
        lang: str | None = None,
    ) -> None:
        self.stt_url = stt_url
        self.lang = lang
        """The call's spoken language sent as `lang=` (a code or `auto`); None = STT's LANG."""
        self.token = token
        self.call_id = call_id
        self.speaker = speaker
        self.rate = rate
        self.max_bytes = int(buffer_seconds * rate) * 2
        self.tasks = tasks
        self.backoff = backoff
        self.end_timeout = end_timeout
        # Audio is sent in frames of about `frame_ms`: 5 RTP packets per WebSocket message
        # cuts the per-message cost (syscalls, wakeups) five-fold for <= 100 ms of latency.
        self.frame_bytes = max(2, rate * frame_ms // 1000 * 2)
        self.frame_seconds = frame_ms / 1000
        self._oldest_at = 0.0
        self.state = UplinkState.CONNECTING
        self.start_offset = start_offset  # seconds of the call before this stream's first sample
        self.sent_bytes = 0
        self.dropped_bytes = 0
        self.connects = 0
        self.events_received = 0
        self.error: UplinkError | None = None
        """Set when STT refused the stream for good (the stream is then CLOSED)."""
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        """Set by feed() and close(): wakes the sender waiting for audio."""
        self._close_requested = asyncio.Event()
        """Set by close() only: cuts a reconnect backoff short (audio must not: while STT is
        down every RTP packet would otherwise trigger a reconnect)."""
        self._closing = False
        self._task = tasks.spawn(
            self._run(),
            "stt-uplink",
            call_id=call_id,
            name=f"stt-{call_id}-{speaker}",
            on_failure=self._failed,
        )

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting to be sent."""
        return self._queued

    def feed(self, pcm: bytes) -> None:
        """Queue audio; drops the oldest beyond the bound (never blocks the RTP path)."""
        if self._closing or not pcm:
            return
        if not self._chunks:
            self._oldest_at = asyncio.get_running_loop().time()
        self._chunks.append(pcm)
        self._queued += len(pcm)
        while self._queued > self.max_bytes and self._chunks:
            old = self._chunks.popleft()
            self._queued -= len(old)
            self.dropped_bytes += len(old)
        self._wakeup.set()

    async def close(self) -> None:
        """Send what is queued, then `{"type":"end"}`, and wait (bounded) for STT to finish."""
        self._closing = True
        self._wakeup.set()
        self._close_requested.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.end_timeout)
        except (TimeoutError, asyncio.CancelledError):
            log.warning(
                "STT stream did not end in time",
                extra={"callId": self.call_id, "speaker": self.speaker},
            )
            await self.tasks.cancel(self._task)
        except Exception:  # noqa: BLE001 - the task set logged and counted it (`_failed`)
            pass
        self.state = UplinkState.CLOSED

    async def abort(self) -> None:
        """Stop at once (service shutdown)."""
        self._closing = True
        await self.tasks.cancel(self._task)
        self.state = UplinkState.CLOSED

    def _url(self) -> str:
        query = {"callId": self.call_id, "speaker": self.speaker, "rate": self.rate}
        offset = self.start_offset + self.sent_bytes / 2 / self.rate
        if offset > 0:
            query["offset"] = round(offset, 3)
        if self.lang:
            query["lang"] = self.lang
        return f"{self.stt_url}/stream?{urlencode(query)}"

    def _failed(self, failure: TaskFailure) -> None:
        # An unexpected error in the sender (a bug, not STT refusing): already logged with the
        # call id and counted by the task set. Stop this speaker's uplink; the call goes on.
        self._fail(UplinkError(f"uplink failed: {failure.error!r}", retryable=False))
        self.state = UplinkState.CLOSED

    async def _run(self) -> None:
        retry = self.backoff.retry()
        while True:
            if self._closing and not self._chunks and self.sent_bytes == 0 and self.connects == 0:
                break  # nothing was ever said: no need to open a stream just to end it
            self.state = UplinkState.CONNECTING
            try:
                async with connect(
                    self._url(),
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    close_timeout=2,
                    max_queue=64,
                    write_limit=WRITE_LIMIT,
                    # PCM barely compresses; deflate would cost more CPU than the whole path.
                    compression=None,
                ) as ws:
                    self.connects += 1
                    _limit_send_buffer(ws)
                    retry.reset()
                    self.state = UplinkState.STREAMING
                    if await self._stream(ws):
                        break
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, UplinkError) as exc:
                error = _as_stream_error(exc)
                if not error.retryable:
                    self._fail(error)
                    break
                log.warning(
                    "STT stream interrupted: %s",
                    error,
                    extra={"callId": self.call_id, "speaker": self.speaker},
                )
            if self._closing and not self._chunks:
                break  # ending and nothing left to say: do not reconnect just for the end
            self.state = UplinkState.BACKOFF
            await self._sleep_or_close(retry.next())
        self.state = UplinkState.CLOSED

    def _fail(self, error: UplinkError) -> None:
        # Retrying would be refused the same way: stop, and drop what is queued (counted).
        self.error = error
        self._closing = True
        self.dropped_bytes += self._queued
        self._chunks.clear()
        self._queued = 0
        log.error(
            "STT refused the stream for good: %s",
            error,
            extra={
                "callId": self.call_id,
                "speaker": self.speaker,
                "droppedBytes": self.dropped_bytes,
            },
        )

    async def _sleep_or_close(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            # While closing we still retry, but a close() wakes one long backoff early.
            await asyncio.wait_for(self._close_requested.wait(), delay)
        self._close_requested.clear()

    async def _stream(self, ws: ClientConnection) -> bool:
        """Send until closing; return True after a clean end."""
        reader = self.tasks.spawn(self._read(ws), "stt-reader", call_id=self.call_id)
        try:
            while True:
                if not self._chunks:
                    if self._closing:
                        self.state = UplinkState.ENDING
                        await ws.send(json.dumps({"type": "end"}))
                        # STT flushes its last utterance then closes; wait for that close.
                        await asyncio.wait_for(asyncio.shield(reader), self.end_timeout)
                        return True
                    self._wakeup.clear()
                    # Shielded: the race cancels the loser, and the reader must outlive it.
                    await first_completed(self._wakeup.wait(), asyncio.shield(reader))
                    if reader.done():
                        raise _closed_error(ws)
                    continue
                if self._queued < self.frame_bytes and not self._closing:
                    wait = self._oldest_at + self.frame_seconds - asyncio.get_running_loop().time()
                    if wait > 0:
                        await asyncio.sleep(wait)  # let a full frame accumulate
                        continue
                frame = self._take(MAX_FRAME_BYTES)
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    # Put it back: it was not delivered, the next socket sends it.
                    self._chunks.appendleft(frame)
                    self._queued += len(frame)
                    raise _closed_error(ws) from None
                self.sent_bytes += len(frame)
        finally:
            await self.tasks.cancel(reader)

    def _take(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._chunks and size + len(self._chunks[0]) <= limit:
            chunk = self._chunks.popleft()
            parts.append(chunk)
            size += len(chunk)
        if not parts:  # a single chunk larger than the limit
            chunk = self._chunks.popleft()
            parts.append(chunk)
            size = len(chunk)
        self._queued -= size
        if self._chunks:
            self._oldest_at = asyncio.get_running_loop().time()
        return b"".join(parts)

    async def _read(self, ws: ClientConnection) -> None:
        # STT also publishes these to the bus; we only count them (and drain the socket).
        # A closed socket ends the reader normally: the sender reads why from `ws`.
        with contextlib.suppress(ConnectionClosed):
            async for _message in ws:
                self.events_received += 1


def _as_stream_error(exc: Exception) -> UplinkError:
    """Classify a connection failure: only refusals retrying cannot cure are fatal."""
    if isinstance(exc, UplinkError):
        return exc
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return UplinkError(
            f"STT refused the handshake: HTTP {status}", retryable=status not in FATAL_HTTP_STATUS
        )
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return _close_error(rcvd.code, rcvd.reason) if rcvd else _close_error(None)
    return UplinkError(f"{type(exc).__name__}: {exc}", retryable=True)
