"""A one-syllable answer is transcribed, not dropped as a click.

Utterances with less speech than `min_utterance_s` are dropped as noise. At 0.25 s the demo's
male voice (Pico, lowered) saying "Sí." lasted 0.224 s by the VAD: its final came back empty
and replaced the partial that had shown "Sí".
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from bench.demo_voice import line_audio
from bench.voices import BY_NAME, available
from stt.repair import word_key

pytestmark = [pytest.mark.unit, pytest.mark.slow]

RATE = 16_000


async def stream_finals(engine: Any, pcm: np.ndarray) -> list[str]:
    """The finals' texts (empty ones too) of one stream fed `pcm` (16 kHz PCM16) in 20 ms."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    texts: list[str] = []

    async def emit(event: dict[str, Any]) -> None:
        if event["type"] == "final":
            texts.append(event["text"])

    scheduler = DecodeScheduler(1)
    scheduler.start()
    stream = SttStream(StreamParams("short", "customer", RATE, "es"), engine, scheduler, emit)
    step = RATE // 50
    for i in range(0, len(pcm), step):
        await stream.feed(pcm[i : i + step].astype("<i2").tobytes())
    await stream.finish()
    await scheduler.close()
    return texts


@pytest.mark.parametrize("voice", ["pico-es-male", "pico-es"])
async def test_a_bare_si_is_a_final(engine, voice):
    missing = available(BY_NAME[voice])
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing} missing: scripts/setup installs it")
    if missing:
        pytest.skip(f"{missing} not installed (scripts/setup installs it)")
    speech = line_audio(BY_NAME[voice], "Sí.", RATE)
    x = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    pcm = np.clip(x * 32768, -32768, 32767).astype(np.int16)
    finals = await stream_finals(engine, pcm)
    assert [word_key(w) for t in finals for w in t.split()] == ["sí"], finals
