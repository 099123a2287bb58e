"""A word said alone is transcribed once: short windows made Whisper say it two or three times.

The demo call's short sentences ("Entiendo.", "Vaya,", "A usted.", "Adiós.") streamed through
the service came back as "entiendo entiendo", "Baya Baya", "Austin Austin Austin", "Adiós
Adiós": each ends its own utterance, whose 2 s encoder window makes the decoder loop (in the
30 s window it reads the word once). The lines are the demo's, spoken by its voices (Pico).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.demo_voice import line_audio
from bench.voices import BY_NAME, available
from stt.repair import word_key

pytestmark = [pytest.mark.unit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000  # the demo call sends slin16
VOICES = {"customer": "pico-es", "agent": "pico-es-male"}  # make_demo_call's by the script
# The lines of demo/transcript.es.json holding a sentence of one or two words.
SHORT = ("Vaya, siento", "Entiendo.", "A usted.", "No, nada más. Adiós.", "Que tenga un buen")


def short_lines() -> list[tuple[str, str]]:
    """(speaker, text) of the demo lines with a short sentence."""
    script = json.loads((ROOT / "demo" / "transcript.es.json").read_text(encoding="utf-8"))
    out = [(x["speaker"], x["text"]) for x in script["lines"] if x["text"].startswith(SHORT)]
    assert len(out) == len(SHORT), "the demo script changed: update SHORT"
    return out


async def stream_finals(engine: Any, pcm: np.ndarray) -> list[str]:
    """The finals' texts of one stream fed `pcm` (16 kHz PCM16) in 20 ms chunks."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    texts: list[str] = []

    async def emit(event: dict[str, Any]) -> None:
        if event["type"] == "final" and event["text"]:
            texts.append(event["text"])

    scheduler = DecodeScheduler(1)
    scheduler.start()
    stream = SttStream(StreamParams("short", "agent", RATE, "es"), engine, scheduler, emit)
    step = RATE // 50
    for i in range(0, len(pcm), step):
        await stream.feed(pcm[i : i + step].astype("<i2").tobytes())
    await stream.finish()
    await scheduler.close()
    return texts


@pytest.mark.parametrize(("speaker", "text"), short_lines(), ids=lambda v: str(v)[:12])
async def test_no_word_is_said_more_often_than_in_the_script(engine, speaker, text):
    missing = available(BY_NAME[VOICES[speaker]])
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing} missing: scripts/setup installs it")
    if missing:
        pytest.skip(f"{missing} not installed (scripts/setup installs it)")
    speech = line_audio(BY_NAME[VOICES[speaker]], text, RATE)
    # As in the call: silence before the line (more than the pre-roll) and after it.
    x = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    pcm = np.clip(x * 32768, -32768, 32767).astype(np.int16)
    finals = await stream_finals(engine, pcm)
    said = collections.Counter(k for k in map(word_key, text.split()) if k)
    heard = collections.Counter(k for f in finals for k in map(word_key, f.split()) if k)
    assert finals, text
    repeated = {w: n for w, n in heard.items() if n > max(1, said[w])}
    assert not repeated, f"{text!r} -> {finals}"
