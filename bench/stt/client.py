"""A WS /stream client that plays audio at real-time pace and timestamps the events it gets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from coach.tasks import TaskSet, first_completed
from fakes import poll

FRAME_S = 0.02


@dataclass
class Segment:
    """A piece of the played timeline: audio of a prompt (or silence) at a stream offset."""

    name: str | None
    start: float  # seconds from stream start
    speech: tuple[float, float] = (0.0, 0.0)  # absolute speech span in stream seconds


@dataclass
class Received:
    """One event and when it arrived (seconds since the first audio frame was sent)."""

    at: float
    event: dict[str, Any]


@dataclass
class Session:
    """Everything a played stream produced."""

    events: list[Received] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def finals(self) -> list[Received]:
        """Final events with text."""
        return [r for r in self.events if r.event["type"] == "final" and r.event["text"].strip()]

    def partials(self) -> list[Received]:
        """Partial events."""
        return [r for r in self.events if r.event["type"] == "partial"]


def timeline(
    prompts: list[tuple[str, npt.NDArray[np.int16], tuple[float, float]]],
    rate: int,
    lead_s: float = 0.5,
    gap_s: float = 2.0,
) -> tuple[npt.NDArray[np.int16], list[Segment]]:
    """Concatenate prompts with silence between them; returns audio and where each one sits."""
    parts: list[npt.NDArray[np.int16]] = [np.zeros(int(lead_s * rate), np.int16)]
    segments = []
    t = lead_s
    for name, pcm, (s0, s1) in prompts:
        segments.append(Segment(name, t, (t + s0, t + s1)))
        parts.append(pcm)
        t += len(pcm) / rate
        parts.append(np.zeros(int(gap_s * rate), np.int16))
        t += gap_s
    return np.concatenate(parts), segments


async def play(
    url: str,
    token: str,
    call_id: str,
    speaker: str,
    pcm: npt.NDArray[np.int16],
    rate: int,
    *,
    realtime: bool = True,
    send_end: bool = True,
    frame_s: float = FRAME_S,
    lang: str | None = None,
) -> Session:
    """Stream `pcm` in 20 ms frames (at real-time pace unless told), collect events until close."""
    session = Session()
    params: dict[str, str | int] = {"callId": call_id, "speaker": speaker, "rate": rate}
    if lang:
        params["lang"] = lang
    query = urlencode(params)
    async with connect(
        f"{url}/stream?{query}",
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=2**20,
        open_timeout=10,
        close_timeout=5,
    ) as ws:
        t0 = time.perf_counter()

        async def reader() -> None:
            try:
                async for message in ws:
                    session.events.append(Received(time.perf_counter() - t0, json.loads(message)))
            except ConnectionClosed:
                pass

        async with TaskSet("bench") as tasks:
            read_task = tasks.spawn(reader(), "ws-reader", call_id=call_id)
            step = int(rate * frame_s)
            data = pcm.astype("<i2").tobytes()
            for i, off in enumerate(range(0, len(pcm), step)):
                if realtime:
                    delay = t0 + i * frame_s - time.perf_counter()
                    if delay > 0:
                        await poll.pace(delay)
                await ws.send(data[off * 2 : (off + step) * 2])
            if send_end:
                await ws.send(json.dumps({"type": "end"}))
            if not await first_completed(read_task, wait=60):
                raise TimeoutError("no close from the server within 60 s")
        session.close_code = ws.close_code
        session.close_reason = ws.close_reason or ""
    return session
