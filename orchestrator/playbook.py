"""The rules playbook: YAML rules loaded per language, matched against finals in microseconds.

A rule has a `type`:
- `phrase` (default): a final of `speaker` contains one of `phrases` (word sequences) or
  matches a `regex` (on lower-case, accent-free text), is not excused by an `unless` phrase,
  and is not negated (a negator among the 5 words before the match, same clause).
- `required`: `speaker` must say one of `phrases` within the first `within_s` seconds.
- `silence`: nobody spoke for `min_s` seconds.  `overtalk`: both spoke at once for `min_s`.
- `pii`: a final of `speaker` contained PII of one of `kinds` (it is redacted anyway).
Timing rules are evaluated by `callstate.CallState`; this module only parses and matches.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from coach.events import COACH_KINDS, SEVERITIES, SPEAKERS
from orchestrator.text import BOUNDARY, fold, tokens

log = logging.getLogger(__name__)

RULE_TYPES: Final = ("phrase", "required", "silence", "overtalk", "pii")
NEGATION_WINDOW: Final = 5
"""Words before a match searched for a negator ("no quiero cancelar", "never said I want to")."""
CLAUSE_WORDS: Final = frozenset(
    {"y", "pero", "porque", "aunque", "asi", "and", "but", "because", "although", "so"}
)
"""Conjunctions that end a negation's reach ("no tengo internet y quiero cancelar")."""
CONDITIONALS: Final = frozenset({"si", "if"})
"""A negator right after these is a condition, not a denial ("si no me lo arreglan, me voy")."""
RELOAD_CHECK_S: Final = 2.0
"""How often the store looks at file modification times."""


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


def _phrases(values: Any, where: str) -> tuple[Phrase, ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PlaybookError(f"{where}: must be a list of strings")
    out = []
    for v in values:
        toks = tuple(t for t in tokens(v) if t != BOUNDARY)
        if not toks:
            raise PlaybookError(f"{where}: empty phrase {v!r}")
        out.append(toks)
    return tuple(out)


def parse_rule(raw: Mapping[str, Any], where: str) -> Rule:
    """One rule from its YAML mapping; raises PlaybookError naming `where`."""
    if not isinstance(raw, Mapping):
        raise PlaybookError(f"{where}: a rule must be a mapping")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise PlaybookError(f"{where}: rule without id")
    where = f"{where} rule {rule_id}"
    rtype = raw.get("type", "phrase")
    if rtype not in RULE_TYPES:
        raise PlaybookError(f"{where}: type must be one of {', '.join(RULE_TYPES)}")
    kind = raw.get("kind", "tip")
    severity = raw.get("severity", "info")
    speaker = raw.get("speaker")
    text = raw.get("text")
    if kind not in COACH_KINDS:
        raise PlaybookError(f"{where}: kind must be one of {', '.join(COACH_KINDS)}")
    if severity not in SEVERITIES:
        raise PlaybookError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    if speaker is not None and speaker not in SPEAKERS:
        raise PlaybookError(f"{where}: speaker must be one of {', '.join(SPEAKERS)}")
    if not isinstance(text, str) or not text.strip():
        raise PlaybookError(f"{where}: text is required")
    patterns = []
    for pattern in raw.get("regex") or []:
        try:
            patterns.append(re.compile(fold(str(pattern))))
        except re.error as exc:
            raise PlaybookError(f"{where}: bad regex {pattern!r}: {exc}") from None
    phrases = _phrases(raw.get("phrases"), f"{where} phrases")
    if rtype in ("phrase", "required") and not phrases and not patterns:
        raise PlaybookError(f"{where}: needs phrases or regex")
    numbers = {}
    for name, default in (("cooldown_s", 60.0), ("within_s", 30.0), ("min_s", 10.0)):
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PlaybookError(f"{where}: {name} must be a number >= 0")
        numbers[name] = float(value)
    return Rule(
        id=rule_id,
        type=rtype,
        kind=kind,
        severity=severity,
        text=text.strip(),
        speaker=speaker,
        phrases=phrases,
        patterns=tuple(patterns),
        unless=_phrases(raw.get("unless"), f"{where} unless"),
        negatable=bool(raw.get("negatable", True)),
        kinds=frozenset(str(k) for k in raw.get("kinds") or ()),
        **numbers,
    )


def parse_playbook(text: str, source: str = "<string>") -> Playbook:
    """A playbook from YAML text; raises PlaybookError."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("lang"), str):
        raise PlaybookError(f"{source}: needs a top-level mapping with `lang`")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise PlaybookError(f"{source}: `rules` must be a non-empty list")
    rules = tuple(parse_rule(r, source) for r in rules_raw)
    ids = [r.id for r in rules]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise PlaybookError(f"{source}: duplicate rule ids {sorted(dupes)}")
    negators_raw = raw.get("negators") or []
    if not isinstance(negators_raw, list) or not all(isinstance(n, str) for n in negators_raw):
        # YAML reads a bare `no` as false: insist on strings so that mistake is caught.
        raise PlaybookError(f"{source}: negators must be a list of quoted strings")
    negators = frozenset(fold(n) for n in negators_raw)
    return Playbook(
        lang=raw["lang"],
        rules=rules,
        negators=negators,
        version=str(raw.get("version", 1)),
        source=source,
    )


@dataclass
class PlaybookStore:
    """The playbooks of a folder (`<lang>.yaml`), re-read when a file changes.

    A file that fails to parse is logged and the previous version of that language kept, so
    a typo in production never switches coaching off.
    """

    folder: Path
    default_lang: str = "es"
    _books: dict[str, Playbook] = field(default_factory=dict)
    _mtimes: dict[Path, float] = field(default_factory=dict)
    _checked: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)

    def load(self) -> None:
        """Load every playbook now; raises PlaybookError if none is usable (start-up check)."""
        self.reload(force=True)
        if not self._books:
            raise PlaybookError(f"no usable playbook in {self.folder}: {self.errors}")
        if self.default_lang not in self._books:
            raise PlaybookError(f"no playbook for the default language {self.default_lang!r}")

    def reload(self, force: bool = False) -> bool:
        """Re-read changed files (at most every RELOAD_CHECK_S); whether anything changed."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_CHECK_S:
            return False
        self._checked = now
        changed = False
        for path in sorted(self.folder.glob("*.yaml")):
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if not force and self._mtimes.get(path) == mtime:
                continue
            self._mtimes[path] = mtime
            try:
                book = parse_playbook(path.read_text(encoding="utf-8"), str(path))
            except (PlaybookError, OSError, UnicodeDecodeError) as exc:
                self.errors[path.stem] = str(exc)
                log.error(
                    "playbook not loaded, keeping the previous one", extra={"error": str(exc)}
                )
                continue
            self.errors.pop(path.stem, None)
            self._books[book.lang] = book
            changed = True
            log.info("playbook loaded", extra={"lang": book.lang, "rules": len(book.rules)})
        return changed

    def get(self, lang: str | None) -> Playbook:
        """The playbook of a language ("es-MX" → "es"), or the default one."""
        self.reload()
        if lang:
            base = lang.lower().split("-")[0].split("_")[0]
            if base in self._books:
                return self._books[base]
        return self._books[self.default_lang]

    @property
    def languages(self) -> list[str]:
        """Loaded languages."""
        return sorted(self._books)
