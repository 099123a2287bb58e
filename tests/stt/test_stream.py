import numpy as np
import pytest

from stt.buffer import AudioBuffer
from stt.repair import copies

pytestmark = pytest.mark.unit


def test_audio_buffer_addresses_by_absolute_sample_and_trims():
    buf = AudioBuffer(capacity_s=1.0)
    buf.append(np.arange(10_000, dtype=np.float32))
    buf.trim_before(4_000)
    assert buf.start == 4_000
    assert buf.slice(3_000, 4_002).tolist() == [4_000.0, 4_001.0]
    # Overflow drops the oldest samples and keeps addressing right.
    buf.append(np.arange(10_000, 24_000, dtype=np.float32))
    assert buf.end == 24_000
    assert buf.start == 24_000 - 16_000
    assert buf.slice(23_998).tolist() == [23_998.0, 23_999.0]


def test_copies_detects_a_repeated_prompt_but_not_shared_words():
    prompt = "Por favor presione uno para activar el modo mudo."
    assert copies(prompt, "presione uno para activar el modo mudo")
    assert copies(prompt, "modo mudo")  # a short text that is all prompt
    assert not copies(prompt, "para salir de este menú")  # "para" alone is not a copy
    assert not copies(prompt, "")


async def stream_finals(engine, pcm: np.ndarray, pause_at: int, gap_s: float, config) -> list[str]:
    """Play 8 kHz `pcm` through an SttStream in 20 ms chunks; let the speculative decode of the
    pause that starts at sample `pause_at` finish before the speech after it arrives."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    scheduler = DecodeScheduler(1)
    scheduler.start()
    stream = SttStream(StreamParams("c1", "agent", 8000), engine, scheduler, emit, config)
    chunk = 160
    resume = pause_at + int(gap_s * 8000)
    for i in range(0, len(pcm), chunk):
        await stream.feed(pcm[i : i + chunk].astype("<i2").tobytes())
        if i < resume <= i + chunk:
            # The pause's speculative decode and what the stream does with its text.
            await stream.idle()
    await stream.finish()
    await scheduler.close()
    return [e["text"] for e in events if e["type"] == "final"]


@pytest.mark.slow
@pytest.mark.parametrize(("cut_s", "finals"), [(None, 2), (2.9, 1)])
async def test_a_short_pause_ends_a_finished_sentence_only(engine, cut_s, finals):
    from stt.segmenter import SegmenterConfig
    from stt.stream import StreamConfig
    from tests.stt import audio

    getpin = audio.tone_file("conf-getpin")  # "Por favor ingrese la clave ... para la conferencia."
    gap_s = 0.45  # past the early hangover (0.3 s), short of the hangover (0.8 s)
    if cut_s is None:
        # Sentence end, short pause, next sentence.
        head, tail = getpin, audio.tone_file("conf-invalid")
    else:
        # "... de entrada par..." | short pause | "...a la conferencia.": a breath mid-word.
        head, tail = getpin[: int(cut_s * 8000)], getpin[int(cut_s * 8000) :]
    pcm = np.concatenate([head, audio.silence(gap_s), tail, audio.silence(1.0)])
    config = StreamConfig(
        segmenter=SegmenterConfig(hangover_s=0.8), early_hangover_s=0.3, partials=False
    )
    texts = await stream_finals(engine, pcm, len(head), gap_s, config)
    assert len(texts) == finals, texts
    assert "conferencia" in " ".join(texts).lower()
