"""What the orchestrator does with personal data: it reads, it does not detect.

STT masks personal data before publishing (coach/redact.py) and lists each span in the final's
`redactions`; the playbook's `pii` rules read those kinds. Before a transcript goes into an LLM
prompt or a summary it gets a second, stateless pass of the same redactor (defence in depth:
a producer outside the stack may have published raw text through the relay), plus the one
mask that is the orchestrator's own: a password or PIN said aloud ("mi clave es gato99"),
which is no `RedactionKind` because STT has no business keeping it apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from coach.redact import RedactConfig, redact_text

SECRET: Final = "secret"
"""The orchestrator's own kind: a password or PIN (masked `[secret]` in prompts)."""
# "mi contraseña es gato123" / "my password is hunter2": the next word is the secret.
_SECRET: Final = re.compile(
    r"\b((?:contrase(?:ñ|n)a|clave|pin|password|passcode)(?:\s+(?:es|is|:|era|was))?\s*:?\s+)"
    r"(?!\[)(\S+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Redacted:
    """A text fit for a prompt, and the kinds masked in it by this pass."""

    text: str
    kinds: frozenset[str]


def event_kinds(event: dict[str, Any]) -> frozenset[str]:
    """The kinds STT masked in an event (its `redactions`)."""
    spans = event.get("redactions")
    if not isinstance(spans, list):
        return frozenset()
    return frozenset(str(s.get("kind")) for s in spans if isinstance(s, dict) and s.get("kind"))


def for_prompt(text: str, config: RedactConfig | None = None) -> Redacted:
    """`text` (already masked by STT) with anything left masked again, and secrets."""
    red = redact_text(text, config)
    kinds = set(red.kinds)

    def secret(m: re.Match[str]) -> str:
        kinds.add(SECRET)
        return m.group(1) + f"[{SECRET}]"

    return Redacted(_SECRET.sub(secret, red.text), frozenset(kinds))
