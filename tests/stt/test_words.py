"""Finals carry words with times from the call's start and calibrated confidences (issue 17)."""

import numpy as np
import pytest

from coach.events import validate
from stt.confidence import calibrated
from tests.stt import audio

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def test_calibration_is_a_monotone_map_into_0_1():
    raw = [0.0, 0.05, 0.3, 0.5, 0.8, 0.95, 1.0]
    cal = [calibrated(p) for p in raw]
    assert all(0.0 < c < 1.0 for c in cal)
    assert cal == sorted(cal)


def test_a_decode_times_each_word_within_its_audio(engine):
    p = audio.tone_file(
        "conf-getpin"
    )  # "Por favor ingrese la clave de entrada para la conferencia."
    x = audio.to_float16k(np.concatenate([audio.silence(1.0), p]))
    hyp = engine.decode(x, words=True)
    words = hyp.words
    assert [w["w"] for w in words] == hyp.text.split()
    assert all(0 <= w["start"] <= w["end"] <= hyp.audio_s for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    # The first word does not swallow the second of silence before it (at most 1.4 s long).
    assert words[0]["end"] - words[0]["start"] <= 1.4 and words[0]["end"] >= 1.0
    assert all(0 <= w["p"] <= 1 for w in words)
    assert hyp.confidence == pytest.approx(np.mean([w["p"] for w in words]))
    assert engine.decode(x).text == hyp.text  # timing words does not change them


async def test_finals_carry_words_timed_from_the_call_start(engine):
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    scheduler = DecodeScheduler(1)
    scheduler.start()
    # A reconnected stream: 100 s of the call were sent before it.
    stream = SttStream(StreamParams("c1", "agent", 8000, offset=100.0), engine, scheduler, emit)
    pcm = np.concatenate([audio.silence(2.0), audio.tone_file("conf-getpin"), audio.silence(1.0)])
    for i in range(0, len(pcm), 160):
        await stream.feed(pcm[i : i + 160].astype("<i2").tobytes())
    await stream.finish()
    await scheduler.close()
    finals = [e for e in events if e["type"] == "final" and e["text"]]
    assert finals
    for final in finals:
        validate(final)
        words = final["words"]
        assert " ".join(w["w"] for w in words) == final["text"]
        assert final["start"] - 0.5 <= words[0]["start"] and words[-1]["end"] <= final["end"] + 0.5
        assert words[0]["start"] >= 102.0 - 0.3
        assert final["confidence"] == pytest.approx(np.mean([w["p"] for w in words]), abs=1e-3)
