"""Streaming voice activity detection with the Silero VAD (v6 ONNX shipped in faster-whisper).

Silero scores 32 ms frames (512 samples at 16 kHz) and carries an LSTM state between them,
so a stream keeps one `StreamingVad` and feeds it audio as it arrives; the ONNX session itself
is shared by all streams (onnxruntime sessions are thread-safe for `run`).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import numpy.typing as npt
import onnxruntime
from faster_whisper.utils import get_assets_path

FRAME = 512
"""Samples per VAD frame at 16 kHz (32 ms)."""
FRAME_S = FRAME / 16_000
_CONTEXT = 64


@functools.lru_cache(maxsize=1)
def _session() -> object:
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
        providers=["CPUExecutionProvider"],
        sess_options=opts,
    )


class StreamingVad:
    """Speech probability per 32 ms frame of a 16 kHz stream, keeping state across calls."""

    def __init__(self) -> None:
        self._session = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def __call__(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for every complete frame now available (leftover samples are kept)."""
        buf = np.concatenate([self._pending, audio]) if self._pending.size else audio
        n = len(buf) // FRAME
        self._pending = buf[n * FRAME :].copy()
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        frames = buf[: n * FRAME].reshape(n, FRAME)
        contexts = np.empty((n, _CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        if n > 1:
            contexts[1:] = frames[:-1, -_CONTEXT:]
        self._context = frames[-1, -_CONTEXT:].copy()
        batch = np.ascontiguousarray(np.concatenate([contexts, frames], axis=1))
        out, self._h, self._c = self._session.run(  # type: ignore[attr-defined]
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(out, dtype=np.float32).reshape(-1)
