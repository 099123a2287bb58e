"""Passages and their BM25 index, with a score in [0, 1] and answer trimming.

Why a small BM25 of our own rather than `rank-bm25` or `bm25s`: rank-bm25 scores every passage
for every query (its cost grows with the KB, not with the question), bm25s brings scipy and its
own tokenizer; we need postings (only passages sharing a term are touched), per-term query
weights (context and synonyms count less than the question's own words) and a score we can
read as a confidence. That is ~100 lines.

The score: each query term is a *group* of alternatives (its Spanish and English stems, and
its synonyms from the KB's `_synonyms.txt`); a passage earns, per group, the best BM25 term
score of an alternative it contains; the sum is divided by what a passage containing every
group once at average length would earn (sum of weight x idf). So 1.0 = every meaningful word
of the question is in the passage, 0.5 = half of the question's information (idf-weighted).
A word the KB has never seen counts in the divisor with a typical idf: a question about
something the KB does not cover cannot score high on the few words it shares.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Final

import numpy as np

from coach.knowledge.analysis import LANGS, content_words, detect_lang, stem
from coach.knowledge.semantic import Embedder

K1: Final = 1.2
B: Final = 0.75
TITLE_BOOST: Final = 2
"""A section's heading counts this many times: it says what the passage answers."""
SYNONYM_WEIGHT: Final = 0.8
"""A synonym's match is worth this share of the word itself."""
OTHER_LANG_FACTOR: Final = 0.92
"""A passage in another language than the asked one scores this much less (ties go to the
caller's language; a passage that is the only source still shows)."""
IDEAL_FLOOR: Final = 1.5
"""The divisor is at least this many typical (median) idfs: a question of one common word
cannot reach a high score by matching it."""
SEMANTIC_WEIGHT: Final = 0.5
"""Share of the semantic similarity in the fused score (the rest is the lexical score)."""
SEM_LOW: Final = 0.80
SEM_HIGH: Final = 0.90
"""e5 cosine similarities live in a narrow band: below SEM_LOW is unrelated (0), above
SEM_HIGH a paraphrase (1); measured on the labelled question set (bench/kb)."""
SEMANTIC_CANDIDATES: Final = 20
"""Passages the semantic side adds to the lexical candidates (the most similar ones)."""
SEMANTIC_CONTEXT_WORDS: Final = 24
"""Words of the borrowed context final that the query embedding sees, at most."""
TRIM_CHARS: Final = 320
"""A card's text: the best sentences up to about this length."""


@dataclass(frozen=True)
class Passage:
    """One searchable unit: a section of a document (one question, ideally)."""

    id: str
    """`<docId>#<anchor>`: unique in the KB, stable while the file keeps its headings."""
    doc_id: str
    title: str
    """The document's title."""
    section: str | None
    anchor: str
    url: str
    text: str
    lang: str


@dataclass(frozen=True)
class Hit:
    """A passage found for a query, its score in [0, 1] and the sentences that answer."""

    passage: Passage
    score: float
    text: str


@dataclass
class _Group:
    weight: float
    alts: dict[str, float]  # term -> factor (1.0 the word's own stems, SYNONYM_WEIGHT others)


@dataclass
class Index:
    """An inverted index over passages (immutable once built; rebuilt on change)."""

    passages: list[Passage]
    synonyms: dict[str, frozenset[str]] = field(default_factory=dict)
    """Folded word -> its synonym group's folded words."""
    embedder: Embedder | None = None
    """Semantic ranking, when a model is installed (semantic.py)."""

    def __post_init__(self) -> None:
        self.postings: dict[str, dict[int, int]] = {}
        self.lengths: list[int] = []
        for pid, p in enumerate(self.passages):
            head = f"{p.section or ''} " * TITLE_BOOST
            tokens = [stem(w, p.lang) for w in content_words(f"{head} {p.title} {p.text}")]
            self.lengths.append(len(tokens))
            for term, tf in Counter(tokens).items():
                self.postings.setdefault(term, {})[pid] = tf
        n = len(self.passages)
        self.avgdl = (sum(self.lengths) / n) if n else 1.0
        self.idf = {
            t: math.log(1 + (n - len(ps) + 0.5) / (len(ps) + 0.5))
            for t, ps in self.postings.items()
        }
        self.unknown_idf = median(self.idf.values()) if self.idf else 1.0
        self.by_id = {p.id: p for p in self.passages}
        # The same postings as arrays: a term's passages and their BM25 term factor (without
        # idf), so a query's scores are a few numpy operations, not a loop per posting.
        lengths = np.asarray(self.lengths, dtype=np.float64)
        self._arrays: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
        for term, plist in self.postings.items():
            pids = np.fromiter(plist.keys(), dtype=np.int64, count=len(plist))
            tfs = np.fromiter(plist.values(), dtype=np.float64, count=len(plist))
            norm = K1 * (1 - B + B * lengths[pids] / self.avgdl)
            self._arrays[term] = (pids, tfs * (K1 + 1) / (tfs + norm))
        self._langs = np.asarray([p.lang for p in self.passages])
        self.vectors: np.ndarray[Any, Any] | None = None
        self.embedded = 0
        """Passages this build had the model embed (the others came from a cache)."""
        if self.embedder is not None and self.passages:
            before = self.embedder.embedded
            self.vectors = self.embedder.passages(
                [f"{p.title}. {p.section or ''}. {p.text}" for p in self.passages]
            )
            self.embedded = self.embedder.embedded - before

    def _groups(self, text: str, weight: float, seen: set[str]) -> list[_Group]:
        groups = []
        for word in content_words(text):
            if word in seen:
                continue
            seen.add(word)
            alts = {stem(word, lang): 1.0 for lang in LANGS}
            for syn in self.synonyms.get(word, ()):
                for lang in LANGS:
                    alts.setdefault(stem(syn, lang), SYNONYM_WEIGHT)
            groups.append(_Group(weight, alts))
        return groups

    def query(self, text: str, context: tuple[tuple[str, float], ...] = ()) -> list[_Group]:
        """The weighted term groups of a question plus context texts (text, weight)."""
        seen: set[str] = set()
        groups = self._groups(text, 1.0, seen)
        for ctx, w in context:
            groups.extend(self._groups(ctx, w, seen))
        return groups

    def search(
        self,
        text: str,
        *,
        k: int = 3,
        lang: str | None = None,
        context: tuple[tuple[str, float], ...] = (),
        min_score: float = 0.0,
    ) -> list[Hit]:
        """The `k` best passages for `text` scoring at least `min_score`, best first."""
        groups = self.query(text, context)
        n = len(self.passages)
        ideal = 0.0
        lex = np.zeros(n)
        for g in groups:
            known = [self.idf[t] for t in g.alts if t in self.idf]
            ideal += g.weight * (max(known) if known else self.unknown_idf)
            best: np.ndarray[Any, Any] | None = None
            for term, factor in g.alts.items():
                arrays = self._arrays.get(term)
                if arrays is None:
                    continue
                pids, bm = arrays
                if best is None:
                    best = np.zeros(n)
                best[pids] = np.maximum(best[pids], self.idf[term] * factor * bm)
            if best is not None:
                lex += g.weight * best
        if ideal <= 0:
            return []
        ideal = max(ideal, IDEAL_FLOOR * self.unknown_idf)
        fused = np.minimum(1.0, lex / ideal)
        candidates = lex > 0
        if self.vectors is not None and self.embedder is not None:
            sims = self.vectors @ self.embedder.query(self.semantic_text(text, context))
            sem = np.clip((sims - SEM_LOW) / (SEM_HIGH - SEM_LOW), 0.0, 1.0).astype(np.float64)
            if n > SEMANTIC_CANDIDATES:
                candidates[np.argpartition(-sims, SEMANTIC_CANDIDATES)[:SEMANTIC_CANDIDATES]] = True
            else:
                candidates[:] = True
            asked = lang or detect_lang(text)
            # Words cannot match across languages: there the meaning alone decides.
            fused = np.where(
                self._langs == asked, (1 - SEMANTIC_WEIGHT) * fused + SEMANTIC_WEIGHT * sem, sem
            )
        if lang:
            fused = np.where(self._langs == lang, fused, fused * OTHER_LANG_FACTOR)
        chosen = np.flatnonzero(candidates & (fused >= min_score))
        if not len(chosen):
            return []
        order = chosen[np.lexsort((chosen, -fused[chosen]))][:k]
        return [
            Hit(
                self.passages[pid],
                round(float(fused[pid]), 3),
                trim(self.passages[pid].text, groups),
            )
            for pid in (int(i) for i in order)
        ]

    @staticmethod
    def semantic_text(text: str, context: tuple[tuple[str, float], ...]) -> str:
        """What the model embeds for a question: the question, and for a question that leans
        on what was said before, the newest earlier final's last SEMANTIC_CONTEXT_WORDS words
        (the model's cost grows with its input; the older finals are the lexical side's)."""
        if not context:
            return text
        words = context[0][0].split()
        return " ".join([text, *words[-SEMANTIC_CONTEXT_WORDS:]])


_SENTENCE: Final = re.compile(r"(?<=[.!?;])\s+|\n+")


def trim(text: str, groups: list[_Group], limit: int = TRIM_CHARS) -> str:
    """The sentences of `text` that answer: the best-matching one, then its neighbours in
    reading order while they fit in `limit` characters."""
    if len(text) <= limit:
        return text
    sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) <= 1:
        return text[:limit].rsplit(" ", 1)[0] + "…"

    def value(sentence: str) -> float:
        found = {stem(w, lang) for w in content_words(sentence) for lang in LANGS}
        return sum(g.weight for g in groups if found & g.alts.keys())

    values = [value(s) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (values[i], -i))
    keep = {best}
    size = len(sentences[best])
    for i in sorted(range(len(sentences)), key=lambda i: (-values[i], abs(i - best))):
        if i in keep:
            continue
        if abs(i - best) == 1 or values[i] > 0:
            if size + len(sentences[i]) + 1 > limit:
                continue
            keep.add(i)
            size += len(sentences[i]) + 1
    out = " ".join(sentences[i] for i in sorted(keep))
    return out if len(out) <= limit + 40 else out[:limit].rsplit(" ", 1)[0] + "…"
