"""Same audio, same words: finals do not depend on how fast decodes come back (issue 17)."""

import numpy as np
import pytest

from tests.stt import audio

pytestmark = [pytest.mark.unit, pytest.mark.slow]

# Real prompts of the Spanish dev list: a menu with many pauses, and sentences that are played
# back to back with a pause longer than the early hangover and shorter than the hangover, so
# whether they split is decided by the speculative decode's text.
PROMPTS = ("conf-usermenu", "agent-user", "conf-invalid", "conf-getpin", "conf-now-muted")
GAP_S = 0.45


def speech(name: str) -> np.ndarray:
    """The prompt's speech, without the silence the recording has around it."""
    from bench.stt import corpus

    p = corpus.load(name)
    s0, s1 = p.speech_span
    return p.pcm[int(max(0.0, s0 - 0.05) * p.rate) : int((s1 + 0.05) * p.rate)]


async def finals(engine, pcm: np.ndarray, delay_s: float, settle: bool) -> list[tuple]:
    """Stream `pcm` in 20 ms chunks; every decode takes `delay_s` longer. With `settle` each
    chunk waits for the decodes it caused (an idle machine), else audio arrives as fast as the
    stream takes it (a machine far behind)."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    scheduler = DecodeScheduler(2, test_delay_s=delay_s)
    scheduler.start()
    stream = SttStream(StreamParams("c1", "agent", 8000), engine, scheduler, emit)
    for i in range(0, len(pcm), 160):
        await stream.feed(pcm[i : i + 160].astype("<i2").tobytes())
        if settle:
            await stream.idle()
    await stream.finish()
    await scheduler.close()
    return [
        (e["text"], e["start"], e["end"], e["confidence"], e.get("words"))
        for e in events
        if e["type"] == "final"
    ]


async def test_finals_are_the_same_whether_decodes_are_instant_or_half_a_second_late(engine):
    parts = [audio.silence(0.5)]
    for name in PROMPTS:
        parts += [speech(name), audio.silence(GAP_S)]
    parts.append(audio.silence(1.0))
    pcm = np.concatenate(parts)
    fast = await finals(engine, pcm, 0.0, settle=True)
    slow = await finals(engine, pcm, 0.5, settle=False)
    assert fast == slow
    # The short gaps between sentences did split them (the early end is in effect under load).
    assert len(fast) >= len(PROMPTS)
    assert "conferencia" in " ".join(t for t, *_ in fast).lower()
