"""Redaction corpus figures: recall and precision per kind, per language and per source.

    python -m bench.coach.redact [--verbose]

The corpus is tests/coach/redaction/*.yaml (format at the top of es.yaml). An expected span is
caught when every letter and digit of its substring is inside masked spans of its kind
("hidden" counts it masked as any kind: what matters for privacy); a
masked span is right when it overlaps an expected span of its kind (else it counts against
precision). Items of a `seq` share one `RedactionSession`, as the finals of one speaker do.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coach.redact import RedactConfig, RedactionSession, Span

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "coach" / "redaction"


@dataclass
class Tally:
    """Counts behind recall and precision, by kind."""

    expected: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    hidden: Counter[str] = field(default_factory=Counter)
    """Expected spans masked whatever the kind (what matters for privacy)."""
    masked: Counter[str] = field(default_factory=Counter)
    right: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def recall(self, kind: str) -> float:
        """Caught / expected (1.0 when none expected)."""
        return self.caught[kind] / self.expected[kind] if self.expected[kind] else 1.0

    def precision(self, kind: str | None = None) -> float:
        """Right / masked, of one kind or all."""
        masked = self.masked[kind] if kind else sum(self.masked.values())
        right = self.right[kind] if kind else sum(self.right.values())
        return right / masked if masked else 1.0


@dataclass(frozen=True)
class Utterance:
    """One final of the corpus and its expected spans."""

    text: str
    pii: tuple[tuple[str, str], ...]
    lang: str
    source: str


def load(paths: list[Path] | None = None) -> list[list[Utterance]]:
    """The corpus as sequences of finals (a single item is a sequence of one)."""
    out: list[list[Utterance]] = []
    for path in paths or sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in doc["items"]:
            source = str(item.get("source", doc.get("source", "typed")))
            seq = item.get("seq", [item])
            lang = str(item.get("lang", doc["lang"]))
            out.append([_utterance(u, lang, source, path) for u in seq])
    return out


def _utterance(raw: dict[str, Any], lang: str, source: str, path: Path) -> Utterance:
    text = str(raw["t"])
    pii = tuple((str(k), str(sub)) for k, sub in raw.get("pii") or ())
    for _, sub in pii:
        if sub not in text:
            raise ValueError(f"{path.name}: {sub!r} is not in {text!r}")
    return Utterance(text, pii, lang, str(raw.get("source", source)))


def score(
    corpus: list[list[Utterance]],
    config: RedactConfig | None = None,
    keep: Any = None,
) -> dict[tuple[str, str], Tally]:
    """Tallies by (lang, source), plus ("all", "all") and ("all", source)."""
    tallies: dict[tuple[str, str], Tally] = {}
    for seq in corpus:
        session = RedactionSession(config)
        for n, utt in enumerate(seq):
            spans = session.spans(utt.text, n * 5.0, n * 5.0 + 4.0, final=True)
            for key in (
                (utt.lang, utt.source),
                ("all", "all"),
                ("all", utt.source),
                (utt.lang, "all"),
            ):
                _tally(tallies.setdefault(key, Tally()), utt, spans)
    return tallies


def _tally(t: Tally, utt: Utterance, spans: list[Span]) -> None:
    expected = []
    for kind, sub in utt.pii:
        at = utt.text.index(sub)
        expected.append((kind, at, at + len(sub)))
        t.expected[kind] += 1
        hidden = [i for i in range(at, at + len(sub)) if utt.text[i].isalnum()]
        mine = [s for s in spans if s.kind == kind]
        if all(any(s.start <= i < s.end for s in spans) for i in hidden):
            t.hidden[kind] += 1
        if all(any(s.start <= i < s.end for s in mine) for i in hidden):
            t.caught[kind] += 1
        else:
            t.misses.append(f"{kind}: {utt.text!r} -> {_show(utt.text, spans)!r}")
    for s in spans:
        t.masked[s.kind] += 1
        if any(k == s.kind and a < s.end and b > s.start for k, a, b in expected):
            t.right[s.kind] += 1
        else:
            t.wrong.append(f"{s.kind}: {utt.text!r} -> {_show(utt.text, spans)!r}")


def _show(text: str, spans: list[Span]) -> str:
    out, cursor = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[cursor : s.start], f"[{s.kind}]"]
        cursor = s.end
    return "".join([*out, text[cursor:]])


def report(tallies: dict[tuple[str, str], Tally], verbose: bool = False) -> str:
    """A table of recall/precision per kind for every (lang, source)."""
    lines = []
    for (lang, source), t in sorted(tallies.items()):
        lines.append(
            f"{lang}/{source}: precision {t.precision():.3f} over {sum(t.masked.values())} masks"
        )
        for kind in sorted(set(t.expected) | set(t.masked)):
            lines.append(
                f"  {kind:12} recall {t.recall(kind):.3f} ({t.caught[kind]}/{t.expected[kind]};"
                f" hidden as any kind {t.hidden[kind]})"
                f"  precision {t.precision(kind):.3f} ({t.right[kind]}/{t.masked[kind]})"
            )
        if verbose and (lang, source) == ("all", "all"):
            lines += ["  MISS " + m for m in t.misses] + ["  WRONG " + w for w in t.wrong]
    return "\n".join(lines)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list misses and wrong masks")
    args = parser.parse_args()
    print(report(score(load()), args.verbose))


if __name__ == "__main__":
    main()
