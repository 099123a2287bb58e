"""The one resampler of PCM audio: stt's 8 -> 16 kHz hot path, ari's replay tool and test
doubles, the benchmarks and the tests all resample here, with libsoxr (`soxr`).

Why soxr and not linear interpolation: from 8 kHz, linear interpolation loses 4 dB at 3.4 kHz
and leaves images of the speech band above 4 kHz at -8 to -28 dB, which Whisper's mel filters
(up to 8 kHz) hear; soxr is flat to 3.4 kHz with images below -120 dB. On the 115 Spanish dev
prompts the service's decoder makes 263 word errors (of 1352) on linearly upsampled audio and
242-257 with soxr's filters, 257 with the streaming one used here (the spread between soxr's
variants is the decoder reacting to tiny changes). CPU is negligible next to a decode: about
0.6 ms per second of audio streaming, 0.1 ms whole-signal. Figures: bench/stt/README.md
(`python -m bench.stt.resample` re-measures them).

- `StreamResampler`: chunk by chunk, for live audio. It uses soxr's variable-rate engine, which
  returns output steadily (a constant ~30 ms held back at 8 -> 16 kHz) where soxr's fixed-rate
  engine returns it in bursts (60 ms held back on average, 115 ms at worst): on the hot path
  that would delay end-of-speech detection. The filter delay is compensated: output sample k is
  input time k / dst, so timestamps stay exact; `flush()` returns what is held back.
- `resample` / `resample_pcm16`: a whole signal at once (soxr's high-quality fixed-rate filter).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
import soxr

Sample = TypeVar("Sample", np.float32, np.int16)


class StreamResampler:
    """`src` Hz -> `dst` Hz mono float32, continuous across chunks (see the module docstring)."""

    def __init__(self, src: int, dst: int) -> None:
        self.src = src
        self.dst = dst
        self._stream = (
            soxr.ResampleStream(src, dst, 1, dtype="float32", quality="HQ", vr=True)
            if src != dst
            else None
        )

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The resampled audio available so far (about `len(x) * dst / src` samples)."""
        if self._stream is None:
            return x
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(x)
        return out

    def flush(self) -> npt.NDArray[np.float32]:
        """The audio still held back (the end of the stream); the resampler is done after it."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(
            np.zeros(0, np.float32), last=True
        )
        return out


def resample(x: npt.NDArray[Sample], src: int, dst: int) -> npt.NDArray[Sample]:
    """A whole mono signal (float32 or int16) from `src` Hz to `dst` Hz, same dtype."""
    if src == dst or x.size == 0:
        return x
    out: npt.NDArray[Sample] = soxr.resample(x, src, dst, quality="HQ")
    return out


def resample_pcm16(pcm: bytes, src: int, dst: int) -> bytes:
    """Mono PCM16 little-endian bytes from `src` Hz to `dst` Hz."""
    if src == dst or not pcm:
        return pcm
    x = np.frombuffer(pcm, dtype="<i2")
    return resample(x.astype(np.int16), src, dst).astype("<i2").tobytes()


def pcm16_to_float(pcm: npt.NDArray[np.int16], src: int, dst: int) -> npt.NDArray[np.float32]:
    """PCM16 samples at `src` Hz -> float32 in [-1, 1) at `dst` Hz (what the decoder takes)."""
    return resample(pcm.astype(np.float32) / 32768.0, src, dst)
