"""The playbook YAML format, validated: `parse_playbook` turns a file's text into a `Playbook`
or raises `PlaybookError` naming the file, the rule and the field (the format itself is
described in `playbook.py`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from coach.events import COACH_KINDS, SEVERITIES, SPEAKERS
from orchestrator.playbook import RULE_TYPES, Phrase, Playbook, PlaybookError, Rule
from orchestrator.text import BOUNDARY, fold, tokens


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
