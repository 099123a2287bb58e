"""Text normalisation shared by the playbook and PII redaction: lower case, no accents, tokens."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# A clause boundary token: negation never reaches across it ("no, quiero cancelar" is a request).
BOUNDARY: Final = "|"
_TOKEN_RE: Final = re.compile(r"[a-z0-9ñ']+|[.,;:!?¡¿]")


def fold(text: str) -> str:
    """Lower-case and strip accents (keeping ñ, which changes meaning: año/ano)."""
    text = text.lower().replace("ñ", "\0")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("\0", "ñ")


def tokens(text: str) -> list[str]:
    """Folded word tokens, punctuation collapsed into BOUNDARY tokens."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(fold(text)):
        if tok[0].isalnum() or tok[0] in "ñ'":
            out.append(tok)
        elif out and out[-1] != BOUNDARY:
            out.append(BOUNDARY)
    return out


def word_count(text: str) -> int:
    """Number of words (for speaking rate)."""
    return sum(1 for t in tokens(text) if t != BOUNDARY)
