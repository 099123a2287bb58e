"""WAV loading, resampling (coach.resample, the one resampler) and mixing for the replay tool
and tests."""

from __future__ import annotations

import sys
import wave
from array import array
from pathlib import Path

from coach.resample import resample_pcm16


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
    """Mono PCM16 LE from `src_rate` to `dst_rate` (coach.resample: soxr, whole signal)."""
    return resample_pcm16(pcm, src_rate, dst_rate)


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two PCM16 LE signals (clipped), padding the shorter with silence."""
    x, y = array("h", a), array("h", b)
    n = max(len(x), len(y))
    out = array("h", bytes(2 * n))
    for i in range(n):
        s = (x[i] if i < len(x) else 0) + (y[i] if i < len(y) else 0)
        out[i] = max(-32768, min(32767, s))
    return out.tobytes()
