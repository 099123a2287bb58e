"""coach.resample: the one resampler (stt's 8 -> 16 kHz hot path, ari, bench, tests)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from coach.resample import StreamResampler, pcm16_to_float, resample, resample_pcm16

pytestmark = pytest.mark.unit


def streamed(x: npt.NDArray[np.float32], sizes: list[int]) -> npt.NDArray[np.float32]:
    """`x` through one StreamResampler 8 -> 16 kHz in chunks of `sizes` (cycled), flushed."""
    r = StreamResampler(8000, 16000)
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(r(x[i : i + n]))
        i, k = i + n, k + 1
    out.append(r.flush())
    return np.concatenate(out)


def level_db(y: npt.NDArray[np.float32], freq: float, rate: int, amplitude: float) -> float:
    """Level of `freq` in `y` relative to a sine of `amplitude` (Hann-windowed spectrum)."""
    w = np.hanning(len(y))
    spectrum = np.abs(np.fft.rfft(y * w))
    bins = np.fft.rfftfreq(len(y), 1 / rate)
    peak = spectrum[np.argmin(np.abs(bins - freq))]
    return float(20 * np.log10(peak / (amplitude * w.sum() / 2) + 1e-12))


def sine(freq: float, seconds: float = 1.0, rate: int = 8000) -> npt.NDArray[np.float32]:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def test_stream_doubles_and_does_not_depend_on_the_chunking():
    x = (np.sin(np.arange(8000) / 7) * 0.5).astype(np.float32)
    whole = streamed(x, [8000])
    assert len(whole) == 16_000
    assert np.array_equal(streamed(x, [160]), whole)
    assert np.array_equal(streamed(x, [333, 17, 1000]), whole)


def test_stream_keeps_time_exact_and_returns_audio_steadily():
    # An impulse at input sample 1000 (0.125 s) comes out at output sample 2000: the filter
    # delay is compensated, so the stream's timestamps stay exact.
    x = np.zeros(8000, np.float32)
    x[1000] = 1.0
    assert int(np.argmax(streamed(x, [160]))) == 2000
    # 20 ms chunks in, about 20 ms out each time: never more than 40 ms held back (soxr's
    # fixed-rate engine holds up to 115 ms in bursts, which would delay end-of-speech).
    r = StreamResampler(8000, 16000)
    fed = out = 0
    held = []
    for _ in range(100):
        fed += 160
        out += len(r(np.zeros(160, np.float32)))
        held.append(2 * fed - out)
    assert max(held) <= 640
    assert out + len(r.flush()) == 2 * fed


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2000.0, 3000.0, 3400.0])
def test_telephone_band_is_flat_and_its_images_are_gone(freq):
    # Linear interpolation loses 4 dB at 3.4 kHz and leaves the image at 8000 - f at -8 dB.
    y = streamed(sine(freq), [160])[2000:-2000]
    assert abs(level_db(y, freq, 16000, 0.5)) < 0.5
    assert level_db(y, 8000 - freq, 16000, 0.5) < -60


def test_whole_signal_resampling_of_pcm16_and_float():
    pcm = (sine(1000.0, rate=16000) * 32767).astype("<i2").tobytes()
    down = resample_pcm16(pcm, 16000, 8000)
    assert len(down) == len(pcm) // 2
    y = (np.frombuffer(down, "<i2")[500:-500] / 32767).astype(np.float32)
    assert abs(level_db(y, 1000.0, 8000, 0.5)) < 0.5
    assert resample_pcm16(pcm, 16000, 16000) is pcm
    assert resample_pcm16(b"", 8000, 16000) == b""
    x = sine(3000.0)
    up = resample(x, 8000, 16000)
    assert up.dtype == np.float32 and len(up) == 16000
    assert level_db(up[2000:-2000], 5000.0, 16000, 0.5) < -60
    f = pcm16_to_float((x * 32768).astype(np.int16), 8000, 16000)
    assert np.allclose(f, up, atol=1e-3)
