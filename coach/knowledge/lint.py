"""The knowledge-base linter: what makes cards noisy, vague or missing.

- `overlap`: two passages (of different sections) that share most of their terms: the same
  answer written twice, so two near-identical cards compete (and may disagree).
- `overlong`: a section over `MAX_PASSAGE_WORDS` words, cut into several passages: a card
  shows a fragment of it.
- `no-headings`: a document without headings is one passage, with no section to link to.
- `unreadable`: a file that could not be read (format error, too large).
- `empty`: a document with no text.

Candidate pairs come from the index's postings of each passage's rarest terms, so the check
does not compare every pair of a large knowledge base.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO

from coach.knowledge.analysis import content_words, stem
from coach.knowledge.base import MAX_PASSAGE_WORDS, KnowledgeBase
from coach.knowledge.index import Passage

OVERLAP: Final = 0.6
"""Share of terms (weighted Jaccard on term counts) above which two passages overlap."""
RARE_TERMS: Final = 6
"""Rarest terms of a passage whose postings give its candidate pairs."""
MAX_POSTINGS: Final = 500
"""A term in more passages than this is not rare enough to find near-duplicates by."""
MIN_TERMS: Final = 4
"""Passages with fewer terms are not compared (a two-word answer overlaps by chance)."""


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, where it is, and what to do."""

    kind: str
    where: str
    message: str


def _bag(p: Passage) -> Counter[str]:
    return Counter(stem(w, p.lang) for w in content_words(p.text))


def _similarity(a: Counter[str], b: Counter[str]) -> float:
    inter = sum((a & b).values())
    union = sum((a | b).values())
    return inter / union if union else 0.0


def lint(kb: KnowledgeBase, progress: Callable[[str], None] | None = None) -> list[Finding]:
    """Build `kb` and return its findings, most serious kinds first."""
    say = progress or (lambda _msg: None)
    snap = kb.build(progress=lambda i, n, rel: say(f"reading {i}/{n} {rel}"))
    kb.snapshot = snap
    out: list[Finding] = [Finding("unreadable", rel, err) for rel, err in snap.errors.items()]
    for src in snap.docs.values():
        if not src.passages:
            out.append(Finding("empty", src.rel, "no text found"))
        elif not src.doc.has_headings:
            out.append(
                Finding("no-headings", src.rel, "no headings: one passage, no section to link")
            )
        for title in src.split_sections:
            out.append(
                Finding(
                    "overlong",
                    f"{src.rel} § {title}",
                    f"over {MAX_PASSAGE_WORDS} words: split it into one question per heading",
                )
            )
    out.extend(_overlaps(kb, say))
    return out


def _overlaps(kb: KnowledgeBase, say: Callable[[str], None]) -> list[Finding]:
    """One finding per passage that overlaps others: its closest partner and how many."""
    index = kb.snapshot.index
    bags = [_bag(p) for p in index.passages]
    partners: dict[int, list[tuple[float, int]]] = {}
    n = len(index.passages)
    for i, p in enumerate(index.passages):
        if i % 500 == 0:
            say(f"comparing passages {i}/{n}")
        if len(bags[i]) < MIN_TERMS:
            continue
        rare = sorted(bags[i], key=lambda t: -index.idf.get(t, 0.0))[:RARE_TERMS]
        candidates = {
            j
            for t in rare
            if len(index.postings.get(t, {})) <= MAX_POSTINGS
            for j in index.postings.get(t, {})
            if j > i
        }
        for j in candidates:
            q = index.passages[j]
            if (q.doc_id == p.doc_id and q.section == p.section) or len(bags[j]) < MIN_TERMS:
                continue
            sim = _similarity(bags[i], bags[j])
            if sim >= OVERLAP:
                partners.setdefault(i, []).append((sim, j))
                partners.setdefault(j, []).append((sim, i))
    found: list[Finding] = []
    for i in sorted(partners):
        sim, j = max(partners[i])
        others = len(partners[i]) - 1
        more = f" and {others} more" if others else ""
        found.append(
            Finding(
                "overlap",
                f"{index.passages[i].id} ~ {index.passages[j].id}{more}",
                f"{sim:.0%} of their terms are shared: keep one answer, link the other",
            )
        )
    return found


def report(findings: list[Finding], out: TextIO = sys.stdout) -> None:
    """Print findings grouped by kind, one per line."""
    for f in findings:
        print(f"{f.kind:12} {f.where}: {f.message}", file=out)
    counts = Counter(f.kind for f in findings)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no findings"
    print(f"lint: {summary}", file=out)
