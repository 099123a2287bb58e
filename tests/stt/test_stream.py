import numpy as np
import pytest

from stt.stream import AudioBuffer, Upsampler, copies

pytestmark = pytest.mark.unit


def test_upsampler_doubles_and_is_continuous_across_chunks():
    x = np.sin(np.arange(800) / 10).astype(np.float32)
    up = Upsampler()
    whole = Upsampler()(x)
    pieces = np.concatenate([up(x[:333]), up(x[333:])])
    assert len(whole) == 1600
    assert np.allclose(whole, pieces)
    assert np.allclose(whole[1::2], x)


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
