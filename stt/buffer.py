"""The stream's recent audio: 16 kHz samples addressed by absolute index, trimmed on request."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from stt.engine import SAMPLE_RATE


class AudioBuffer:
    """Recent 16 kHz audio addressed by absolute sample index; old audio trimmed on request."""

    def __init__(self, capacity_s: float = 40.0) -> None:
        self._data = np.zeros(int(capacity_s * SAMPLE_RATE), dtype=np.float32)
        self.start = 0  # absolute index of _data[0]
        self.end = 0  # absolute index one past the newest sample
        self._lock = threading.Lock()  # decode threads take snapshots

    def append(self, x: npt.NDArray[np.float32]) -> None:
        """Add samples; if full, the oldest are dropped."""
        with self._lock:
            n = self.end - self.start
            if n + x.size > self._data.size:
                drop = n + x.size - self._data.size
                self._data[: n - drop] = self._data[drop:n]
                self.start += drop
                n -= drop
            self._data[n : n + x.size] = x
            self.end += x.size

    def trim_before(self, abs_index: int) -> None:
        """Forget audio before `abs_index`."""
        with self._lock:
            cut = min(max(0, abs_index - self.start), self.end - self.start)
            if cut:
                n = self.end - self.start
                self._data[: n - cut] = self._data[cut:n]
                self.start += cut

    def slice(self, a: int, b: int | None = None) -> npt.NDArray[np.float32]:
        """A copy of samples [a, b) that are still held."""
        with self._lock:
            b = self.end if b is None else min(b, self.end)
            a = max(a, self.start)
            return self._data[a - self.start : max(a, b) - self.start].copy()
