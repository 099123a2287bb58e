"""Fake STT `WS /stream` server: records the audio it receives, answers with `final` events.

Protocol as DESIGN.md "STT service": `?callId=&speaker=&rate=`, bearer token, binary PCM16 LE
frames, text `{"type":"end"}` -> last final, then close. Finals are also published to the
bus, as the real service does. Knobs: `down` (refuse with 503), `read_delay` (slow reader:
seconds per frame), `close_after_bytes` (drop the socket once, like an STT restart).
A wrong token is accepted and then closed with 4401, as the real service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from coach.bus import Bus


@dataclass
class StreamLog:
    call_id: str
    speaker: str
    rate: int
    audio: bytearray = field(default_factory=bytearray)
    ended: bool = False
    offset: float = 0.0
    first_audio_at: float | None = None
    lang: str | None = None


class FakeStt:
    def __init__(self, token: str, bus: Bus | None = None) -> None:
        self.token = token
        self.bus = bus
        self.down = False
        self.read_delay = 0.0
        self.close_after_bytes: int | None = None
        self.streams: list[StreamLog] = []
        self.finals: list[dict[str, Any]] = []
        self.open_streams = 0
        self.refused = 0
        self.handshakes = 0
        self.bad_tokens = 0
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self.port = 0
        self._utt: defaultdict[tuple[str, str], int] = defaultdict(int)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FakeStt:
        self._server = await serve(
            self._handler, "127.0.0.1", self.port, process_request=self._check, max_size=2**20
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def audio(self, call_id: str, speaker: str) -> bytes:
        """All audio received for (call, speaker), across reconnections, in order."""
        return b"".join(
            bytes(s.audio) for s in self.streams if s.call_id == call_id and s.speaker == speaker
        )

    def first_audio_at(self, call_id: str) -> float | None:
        times = [
            s.first_audio_at
            for s in self.streams
            if s.call_id == call_id and s.first_audio_at is not None
        ]
        return min(times) if times else None

    async def wait_for(self, predicate: Any, wait: float = 20.0) -> None:
        """Wait until predicate() is true (re-checked on every change)."""
        async with asyncio.timeout(wait), self._changed:
            while not predicate():
                # Woken by every received frame/stream change; the short timeout also covers
                # counters changed outside the handler (refused handshakes).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.down:
            self.refused += 1
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down\n")
        query = parse_qs(urlsplit(request.path).query)
        if urlsplit(request.path).path != "/stream" or not query.get("callId"):
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # set once the handshake is done
        self.handshakes += 1
        if ws.request.headers.get("Authorization") != f"Bearer {self.token}":
            # As the real service: the handshake succeeds, then the socket closes with 4401.
            self.bad_tokens += 1
            await ws.close(4401, "missing or wrong service token")
            await self._notify()
            return
        query = {k: v[0] for k, v in parse_qs(urlsplit(ws.request.path).query).items()}
        log = StreamLog(
            query["callId"],
            query.get("speaker", "?"),
            int(query.get("rate", 16000)),
            offset=float(query.get("offset", 0)),
            lang=query.get("lang"),
        )
        self.streams.append(log)
        self.open_streams += 1
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if self.read_delay:
                        await asyncio.sleep(self.read_delay)
                    if log.first_audio_at is None:
                        log.first_audio_at = time.monotonic()
                    log.audio.extend(message)
                    await self._notify()
                    if (
                        self.close_after_bytes is not None
                        and len(log.audio) >= self.close_after_bytes
                    ):
                        self.close_after_bytes = None
                        await ws.close(1012, "restart")
                        return
                elif json.loads(message).get("type") == "end":
                    log.ended = True
                    # Like the real STT: silence (a held tap sends zeros) produces no text.
                    if any(log.audio):
                        final = await self._final(log)
                        await ws.send(json.dumps(final))
                    await ws.close()
                    return
        except ConnectionClosed:
            pass
        finally:
            self.open_streams -= 1
            await self._notify()

    async def _final(self, log: StreamLog) -> dict[str, Any]:
        self._utt[(log.call_id, log.speaker)] += 1
        n = self._utt[(log.call_id, log.speaker)]
        seconds = len(log.audio) / 2 / log.rate
        event = {
            "type": "final",
            "callId": log.call_id,
            "speaker": log.speaker,
            "utteranceId": f"{log.speaker}-{n}",
            "text": f"{log.speaker} said {seconds:.2f}s",
            "start": 0.0,
            "end": round(seconds, 2),
            "confidence": 0.9,
            "lang": "es",
        }
        if self.bus is not None:
            event = await self.bus.publish(event)
        self.finals.append(event)
        return event


__all__ = ["FakeStt", "Headers"]
