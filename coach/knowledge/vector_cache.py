"""Passage embeddings on disk (`KB_CACHE_DIR`), so a restart, or the second service reading the
same knowledge base (the relay and the orchestrator), embeds only passages it has not seen.

One file per model family (`passages-<model>.npz`: numpy's uncompressed archive of three
arrays, read with `allow_pickle=False`, so a file is data and never code): `keys` (N x 16
bytes, blake2b of the passage text as the model is given it), `vectors` (N x dim float32) and
`meta` (JSON: format and the exact model id with its version). Why numpy's format rather than
SQLite or pickle: the vectors come out as one array, ready to stack; the whole file is read and
written at once (a few MB per thousand passages), which an index rebuild does anyway.

- Writes are atomic: a unique temporary file in the same folder, fsync, `os.replace`. A reader
  sees the old file or the new one, never half of one.
- Two processes writing at once: the read-merge-write is serialised by an `flock` on
  `.lock` in the folder, and each writer keeps the entries another one added since it read
  the file; so neither loses the other's work.
- A truncated or unreadable file, or one written for another model version or format, is
  rebuilt with a warning (it is only a cache: the passages are embedded again).
- Bounded: a rewrite keeps the passages of the current build, plus entries another process
  wrote since this one read the file, up to `MAX_ENTRIES`; entries this process read and no
  longer uses (edited or deleted passages) are dropped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np

log = logging.getLogger(__name__)

FORMAT: Final = 1
"""Bumped when the file's layout changes (an older file is then rebuilt)."""
MAX_ENTRIES: Final = 200_000
"""Vectors kept in the file at most (about 300 MB at 384 float32 dimensions)."""
KEY_BYTES: Final = 16

Vectors = dict[bytes, np.ndarray[Any, Any]]


def text_key(text: str) -> bytes:
    """The cache key of a passage text (the model id is the file's, not the key's)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


class VectorCache:
    """The cache file of one model in a folder; not thread-safe (the embedder serialises it)."""

    def __init__(self, folder: Path, model_id: str, family: str, dim: int) -> None:
        self.folder = folder
        self.model_id = model_id
        self.dim = dim
        self.path = folder / f"passages-{_slug(family)}.npz"
        self._read_keys: set[bytes] = set()
        self._stamp: tuple[int, int] | None = None
        self.needs_rewrite = False
        """The file was missing entries we use, unreadable or of another model: write it."""

    def changed(self) -> bool:
        """Whether the file differs from the one last read (another process wrote it)."""
        return _stamp(self.path) != self._stamp

    def read(self) -> Vectors:
        """The file's vectors ({} when missing; {} and a warning when unusable)."""
        if not self.path.exists():
            self._stamp, self._read_keys = None, set()
            return {}
        try:
            with self._locked():  # not while a writer is between its read and its rename
                self._stamp = _stamp(self.path)
                entries = self._load()
        except OSError as exc:  # no lock file possible (read-only folder): read without it
            log.debug("knowledge embedding cache read unlocked", extra={"error": str(exc)})
            self._stamp = _stamp(self.path)
            entries = self._load()
        self._read_keys = set(entries)
        return entries

    def _load(self) -> Vectors:
        if not self.path.exists():
            return {}
        problem = None
        try:
            with open(self.path, "rb") as f, np.load(f, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                keys, vectors = data["keys"], data["vectors"]
            if meta.get("format") != FORMAT or meta.get("model") != self.model_id:
                problem = f"written for {meta.get('model')!r} (format {meta.get('format')})"
            elif (
                keys.ndim != 2
                or keys.shape[1] != KEY_BYTES
                or vectors.shape != (len(keys), self.dim)
                or vectors.dtype != np.float32
            ):
                problem = f"inconsistent arrays {keys.shape} {vectors.shape} {vectors.dtype}"
        except (
            OSError,
            ValueError,
            EOFError,
            KeyError,
            zipfile.BadZipFile,
            TypeError,
            AttributeError,
        ) as exc:
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem is not None:
            log.warning(
                "knowledge embedding cache rebuilt",
                extra={"file": str(self.path), "model": self.model_id, "error": problem[:300]},
            )
            self.needs_rewrite = True
            return {}
        return {bytes(k): v for k, v in zip(keys, vectors, strict=True)}

    def write(self, current: Mapping[bytes, np.ndarray[Any, Any]]) -> int:
        """Replace the file with `current` plus what others added since our read; the count
        written. A failure (read-only folder, full disk) is logged: the cache is optional."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked():
                keep: Vectors = dict(current)
                if self.changed():
                    for key, vec in self._load().items():
                        if len(keep) >= MAX_ENTRIES:
                            break
                        if key not in self._read_keys:
                            keep.setdefault(key, vec)  # another writer's: not stale to us
                if len(keep) > MAX_ENTRIES:
                    keep = dict(list(keep.items())[:MAX_ENTRIES])
                self._replace(keep)
                self._stamp = _stamp(self.path)
                self._read_keys = set(keep)
        except OSError as exc:
            log.warning(
                "knowledge embedding cache not written",
                extra={"file": str(self.path), "error": str(exc)},
            )
            return 0
        self.needs_rewrite = False
        return len(keep)

    def _replace(self, entries: Vectors) -> None:
        keys = np.frombuffer(b"".join(entries), dtype=np.uint8).reshape(-1, KEY_BYTES)
        vectors = (
            np.stack(list(entries.values())).astype(np.float32, copy=False)
            if entries
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        meta = np.array(json.dumps({"format": FORMAT, "model": self.model_id}))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=keys, vectors=vectors, meta=meta)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def embedding(self) -> Iterator[None]:
        """Held while this process embeds passages: a second process starting on the same
        knowledge base waits for the first one's vectors instead of computing them again.
        Without a usable folder it does not wait (the cache is optional)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = open(self.folder / ".embedding.lock", "a+b")  # noqa: SIM115 - held below
        except OSError:
            yield
            return
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(
                    "knowledge embedding waits for another process on the same cache",
                    extra={"file": str(self.path)},
                )
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name.lower()).strip("-")
