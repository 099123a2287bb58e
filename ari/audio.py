"""WAV loading and simple resampling for the replay tool and tests (stdlib only)."""

from __future__ import annotations

import sys
import wave
from array import array
from pathlib import Path


def load_wav(path: str | Path) -> tuple[int, list[bytes]]:
    """(rate, [PCM16 LE per channel]) of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    samples = array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    out = []
    for ch in range(channels):
        part = samples[ch::channels]
        if sys.byteorder == "big":
            part.byteswap()
        out.append(part.tobytes())
    return rate, out


RAW_RATE = 8000
"""Sample rate of a headerless `.raw` recording (MixMonitor of a G.711 call)."""


def load_audio(path: str | Path, raw_rate: int = RAW_RATE) -> tuple[int, list[bytes]]:
    """(rate, [PCM16 LE per channel]) of a WAV file, or of a call recording as Asterisk writes
    it (`.raw`/`.sln`: headerless signed 16-bit little-endian, interleaved stereo, left =
    caller, right = agent, `raw_rate` Hz)."""
    if Path(path).suffix.lower() not in (".raw", ".sln", ".slin"):
        return load_wav(path)
    data = Path(path).read_bytes()
    data = data[: len(data) - len(data) % 4]  # whole stereo frames only
    samples = array("h", data)
    if sys.byteorder == "big":
        samples.byteswap()
    channels = [samples[0::2], samples[1::2]]
    if sys.byteorder == "big":
        for part in channels:
            part.byteswap()
    return raw_rate, [part.tobytes() for part in channels]


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Linear-interpolation resampling of PCM16 LE (good enough for speech tests)."""
    if src_rate == dst_rate or not pcm:
        return pcm
    src = array("h", pcm)
    n_out = len(src) * dst_rate // src_rate
    out = array("h", bytes(2 * n_out))
    step = src_rate / dst_rate
    last = len(src) - 1
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = src[j]
        b = src[j + 1] if j < last else a
        out[i] = int(a + (b - a) * frac)
    return out.tobytes()


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two PCM16 LE signals (clipped), padding the shorter with silence."""
    x, y = array("h", a), array("h", b)
    n = max(len(x), len(y))
    out = array("h", bytes(2 * n))
    for i in range(n):
        s = (x[i] if i < len(x) else 0) + (y[i] if i < len(y) else 0)
        out[i] = max(-32768, min(32767, s))
    return out.tobytes()
