"""A knowledge base from a folder (`KB_DIR`): documents -> passages -> index, rebuilt on change.

- Every file with a known suffix (readers.READERS) under the folder is a document; names
  starting with `_` or `.` are not (`_synonyms.txt` is the synonym list, see below).
- A document's id is its path relative to the folder, slugged (`tarifas/fibra.md` ->
  `tarifas-fibra`; the suffix is added when two files would collide). Ids are looked up, never
  joined to a path: `/kb/docs/{id}` cannot reach outside the folder.
- A section becomes a passage; a section over `MAX_PASSAGE_WORDS` is cut at paragraph ends
  into several (same section title, anchors `-2`, `-3`...), which the linter reports.
- `_synonyms.txt`: one group of equivalent single words per line, comma-separated, any
  language (`factura, recibo, invoice, bill`). It is also how a Spanish question finds an
  English passage: lexical retrieval only knows words, not meanings.
- `refresh()` compares the folder's (path, size, mtime) signature with the last build and
  rebuilds only when it changed: cheap enough to call every few seconds. A build replaces the
  index in one assignment, so searches never see half of one.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from coach.knowledge.analysis import detect_lang, fold
from coach.knowledge.index import Hit, Index, Passage
from coach.knowledge.readers import READERS, Document, ReadError, Section, read, slug
from coach.knowledge.semantic import Embedder

log = logging.getLogger(__name__)

MAX_PASSAGE_WORDS: Final = 160
"""A longer section is split at paragraph ends: long passages make noisy, vague cards."""
MAX_FILES: Final = 20_000
"""Files read from KB_DIR at most (the rest are ignored and reported)."""
SYNONYMS_FILE: Final = "_synonyms.txt"
PROGRESS_S: Final = 10.0
"""Seconds between progress lines while reading a large folder."""
_LANG_SUFFIX: Final = re.compile(r"\.(es|en)$")

Signature = tuple[tuple[str, int, int], ...]
Progress = Callable[[int, int, str], None]


@dataclass
class SourceDoc:
    """A document as loaded: where it came from and its passages."""

    id: str
    path: Path
    rel: str
    doc: Document
    lang: str
    passages: list[Passage]
    split_sections: list[str] = field(default_factory=list)
    """Section titles that were too long and were cut into several passages."""


@dataclass
class Snapshot:
    """One build of the knowledge base."""

    docs: dict[str, SourceDoc]
    index: Index
    errors: dict[str, str]
    signature: Signature
    built_at: float
    build_s: float


class KnowledgeBase:
    """The knowledge base of one folder; `search()` is safe to call from any task."""

    def __init__(
        self, root: Path, url_prefix: str = "/kb/docs/", embedder: Embedder | None = None
    ) -> None:
        self.root = root
        self.url_prefix = url_prefix
        self.embedder = embedder
        self.snapshot = Snapshot({}, Index([]), {}, (), 0.0, 0.0)

    # -- building ----------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The documents under the folder, sorted (ids depend on that order on collisions)."""
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            for name in sorted(filenames):
                if name.startswith((".", "_")) or Path(name).suffix.lower() not in READERS:
                    continue
                found.append(Path(dirpath) / name)
                if len(found) >= MAX_FILES:
                    return found
        return found

    def signature(self) -> Signature:
        """(relative path, size, mtime) of every document and the synonym list."""
        out = []
        for p in [*self.files(), self.root / SYNONYMS_FILE]:
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p.relative_to(self.root)), st.st_size, st.st_mtime_ns))
        return tuple(out)

    def refresh(self, progress: Progress | None = None) -> bool:
        """Rebuild if the folder changed since the last build; True when it rebuilt."""
        sig = self.signature()
        if sig == self.snapshot.signature and self.snapshot.built_at:
            return False
        self.snapshot = self.build(sig, progress)
        s = self.snapshot
        log.info(
            "knowledge base indexed",
            extra={
                "kbDir": str(self.root),
                "documents": len(s.docs),
                "passages": len(s.index.passages),
                "embedded": s.index.embedded,
                "errors": len(s.errors),
                "buildS": round(s.build_s, 3),
            },
        )
        for rel, err in s.errors.items():
            log.warning("knowledge document skipped", extra={"file": rel, "error": err})
        return True

    def build(self, sig: Signature | None = None, progress: Progress | None = None) -> Snapshot:
        """Read every document and index its passages (does not replace the current one)."""
        t0 = time.perf_counter()
        sig = sig if sig is not None else self.signature()
        files = self.files()
        log.info("knowledge base indexing", extra={"kbDir": str(self.root), "files": len(files)})
        docs: dict[str, SourceDoc] = {}
        errors: dict[str, str] = {}
        last = time.monotonic()
        for i, path in enumerate(files):
            rel = str(path.relative_to(self.root))
            if progress:
                progress(i + 1, len(files), rel)
            if time.monotonic() - last >= PROGRESS_S:
                last = time.monotonic()
                log.info("knowledge base reading", extra={"done": i, "files": len(files)})
            try:
                doc = read(path)
            except (ReadError, OSError, UnicodeError) as exc:
                errors[rel] = str(exc)
                continue
            doc_id = self._doc_id(rel, docs)
            docs[doc_id] = self._source(doc_id, path, rel, doc)
        passages = [p for d in docs.values() for p in d.passages]
        index = Index(passages, self._synonyms(), self.embedder)
        return Snapshot(docs, index, errors, sig, time.time(), time.perf_counter() - t0)

    @staticmethod
    def _doc_id(rel: str, taken: dict[str, SourceDoc]) -> str:
        base = slug(str(Path(rel).with_suffix("")).replace(os.sep, "-"), 100)
        if base not in taken:
            return base
        base = slug(rel.replace(os.sep, "-"), 100)
        n, unique = 2, base
        while unique in taken:
            unique, n = f"{base}-{n}", n + 1
        return unique

    def _source(self, doc_id: str, path: Path, rel: str, doc: Document) -> SourceDoc:
        m = _LANG_SUFFIX.search(path.stem)
        lang = m[1] if m else detect_lang(" ".join(s.text for s in doc.sections[:20]))
        src = SourceDoc(doc_id, path, rel, doc, lang, [])
        for section in doc.sections:
            chunks = _chunks(section.text)
            if len(chunks) > 1:
                src.split_sections.append(section.title or "(top)")
            for n, chunk in enumerate(chunks):
                anchor = section.anchor if n == 0 else f"{section.anchor}-{n + 1}"
                pid = f"{doc_id}#{anchor}"[:128]
                src.passages.append(
                    Passage(
                        id=pid,
                        doc_id=doc_id,
                        title=doc.title,
                        section=section.title,
                        anchor=anchor,
                        url=f"{self.url_prefix}{doc_id}#{anchor}",
                        text=chunk,
                        lang=lang,
                    )
                )
        return src

    def _synonyms(self) -> dict[str, frozenset[str]]:
        path = self.root / SYNONYMS_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return {}
        out: dict[str, frozenset[str]] = {}
        for line in lines:
            if line.lstrip().startswith("#"):
                continue
            group = frozenset(fold(w.strip()) for w in line.split(",") if w.strip())
            for w in group:
                out[w] = out.get(w, frozenset()) | (group - {w})
        return out

    # -- reading -----------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        k: int = 3,
        lang: str | None = None,
        context: tuple[tuple[str, float], ...] = (),
        min_score: float = 0.0,
    ) -> list[Hit]:
        """The best passages for a question (see `Index.search`)."""
        return self.snapshot.index.search(
            text, k=k, lang=lang, context=context, min_score=min_score
        )

    def passage(self, passage_id: str) -> Passage | None:
        """A passage by id, or None."""
        return self.snapshot.index.by_id.get(passage_id)

    def doc(self, doc_id: str) -> SourceDoc | None:
        """A document by id (never by path), or None."""
        return self.snapshot.docs.get(doc_id)

    def __iter__(self) -> Iterator[SourceDoc]:
        return iter(self.snapshot.docs.values())

    def stats(self) -> dict[str, int]:
        """Counts for /health."""
        s = self.snapshot
        return {
            "documents": len(s.docs),
            "passages": len(s.index.passages),
            "errors": len(s.errors),
        }


def _chunks(text: str) -> list[str]:
    """`text` cut at line ends (else sentence ends, else words) into pieces of at most
    MAX_PASSAGE_WORDS words."""
    if len(text.split()) <= MAX_PASSAGE_WORDS:
        return [text] if text.strip() else []
    units: list[str] = []
    for line in text.split("\n"):
        if len(line.split()) <= MAX_PASSAGE_WORDS:
            units.append(line)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", line):
            tokens = sentence.split()
            for i in range(0, len(tokens), MAX_PASSAGE_WORDS):
                units.append(" ".join(tokens[i : i + MAX_PASSAGE_WORDS]))
    out: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        n = len(unit.split())
        if current and size + n > MAX_PASSAGE_WORDS:
            out.append("\n".join(current))
            current, size = [], 0
        current.append(unit)
        size += n
    if current:
        out.append("\n".join(current))
    return out


def section_of(doc: SourceDoc, anchor: str) -> Section | None:
    """The section of a document with this anchor."""
    return next((s for s in doc.doc.sections if s.anchor == anchor), None)
