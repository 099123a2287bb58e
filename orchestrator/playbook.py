"""The rules playbook: YAML rules loaded per language, matched against finals in microseconds.

A rule has a `type`:
- `phrase` (default): a final of `speaker` contains one of `phrases` (word sequences) or
  matches a `regex` (on lower-case, accent-free text), is not excused by an `unless` phrase,
  and is not negated (a negator among the 5 words before the match, same clause).
- `required`: `speaker` must say one of `phrases` within the first `within_s` seconds.
- `silence`: nobody spoke for `min_s` seconds.  `overtalk`: both spoke at once for `min_s`.
- `pii`: a final of `speaker` contained PII of one of `kinds` (it is redacted anyway).
Timing rules are evaluated by `callstate.CallState`; this module holds the rules and matches
them. The YAML format is validated in `playbook_schema.py`; `playbook_store.py` keeps the
playbooks of a folder and re-reads them when they change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from orchestrator.text import BOUNDARY, fold, tokens

RULE_TYPES: Final = ("phrase", "required", "silence", "overtalk", "pii")
NEGATION_WINDOW: Final = 5
"""Words before a match searched for a negator ("no quiero cancelar", "never said I want to")."""
CLAUSE_WORDS: Final = frozenset(
    {"y", "pero", "porque", "aunque", "asi", "and", "but", "because", "although", "so"}
)
"""Conjunctions that end a negation's reach ("no tengo internet y quiero cancelar")."""
CONDITIONALS: Final = frozenset({"si", "if"})
"""A negator right after these is a condition, not a denial ("si no me lo arreglan, me voy")."""


class PlaybookError(ValueError):
    """A playbook file is malformed; the message names the file and rule."""


Phrase = tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """One playbook rule (see module docstring for the meaning of each type)."""

    id: str
    type: str
    kind: str
    severity: str
    text: str
    speaker: str | None = None
    phrases: tuple[Phrase, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    unless: tuple[Phrase, ...] = ()
    negatable: bool = True
    cooldown_s: float = 60.0
    within_s: float = 30.0
    min_s: float = 10.0
    kinds: frozenset[str] = frozenset()

    def render(self, **values: Any) -> str:
        """The rule's text with `{placeholders}` filled in (unknown ones left as they are)."""
        try:
            return self.text.format(**values)
        except (KeyError, IndexError, ValueError):
            return self.text


@dataclass(frozen=True)
class Playbook:
    """The rules of one language."""

    lang: str
    rules: tuple[Rule, ...]
    negators: frozenset[str] = frozenset()
    version: str = "1"
    source: str = ""

    def of_type(self, rule_type: str) -> tuple[Rule, ...]:
        """Rules of one type, in file order."""
        return tuple(r for r in self.rules if r.type == rule_type)

    def match(self, speaker: str, text: str) -> list[Rule]:
        """Phrase rules that fire on one final of `speaker`."""
        toks = tokens(text)
        folded: str | None = None
        fired: list[Rule] = []
        for rule in self.rules:
            if rule.type != "phrase" or (rule.speaker and rule.speaker != speaker):
                continue
            if any(_find(toks, p) >= 0 for p in rule.unless):
                continue
            hit = False
            for phrase in rule.phrases:
                at = _find(toks, phrase)
                while at >= 0:
                    if not (rule.negatable and self._negated(toks, at)):
                        hit = True
                        break
                    at = _find(toks, phrase, at + 1)
                if hit:
                    break
            if not hit and rule.patterns:
                folded = folded if folded is not None else fold(text)
                for pattern in rule.patterns:
                    for m in pattern.finditer(folded):
                        at = len(tokens(folded[: m.start()]))
                        if not (rule.negatable and self._negated(tokens(folded), at)):
                            hit = True
                            break
                    if hit:
                        break
            if hit:
                fired.append(rule)
        return fired

    def says(self, rule: Rule, text: str) -> bool:
        """Whether `text` contains one of the rule's phrases or patterns (no negation check)."""
        toks = tokens(text)
        if any(_find(toks, p) >= 0 for p in rule.phrases):
            return True
        folded = fold(text)
        return any(p.search(folded) for p in rule.patterns)

    def _negated(self, toks: Sequence[str], at: int) -> bool:
        for j in range(at - 1, max(0, at - NEGATION_WINDOW) - 1, -1):
            tok = toks[j]
            if tok == BOUNDARY or tok in CLAUSE_WORDS:
                return False
            if tok in self.negators and not (j > 0 and toks[j - 1] in CONDITIONALS):
                return True
        return False


def _find(toks: Sequence[str], phrase: Phrase, start: int = 0) -> int:
    n = len(phrase)
    first = phrase[0]
    for i in range(start, len(toks) - n + 1):
        if toks[i] == first and tuple(toks[i : i + n]) == phrase:
            return i
    return -1
