"""PII redaction: nothing that identifies or pays leaves the building in a prompt.

Transcripts are redacted before they are put into an LLM prompt or an extractive summary, and
each kind found is reported so the playbook can flag it. STT writes numbers as digits or as
words ("cuatro cinco cinco seis..."), so digit words count as digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from orchestrator.text import fold

_DIGIT_WORDS: Final = {
    # Spanish
    "cero": "0", "uno": "1", "una": "1", "un": "1", "dos": "2", "tres": "3", "cuatro": "4",
    "cinco": "5", "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
    # English
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_WORD_OR_DIGITS = r"(?:\d+|" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True)) + r")"
# A run of digits/digit words separated by spaces, dashes, dots or commas.
_NUMBER_RUN: Final = re.compile(
    rf"\b{_WORD_OR_DIGITS}(?:[\s.,-]+{_WORD_OR_DIGITS})+\b|\b\d{{6,}}\b", re.IGNORECASE
)
_EMAIL: Final = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,4})?\b")
_DNI: Final = re.compile(r"\b(?:\d{8}|[XYZ]\d{7})[-\s]?[A-Z]\b", re.IGNORECASE)
_SSN: Final = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
# "mi contraseña es gato123" / "my password is hunter2": the next word is the secret.
_SECRET: Final = re.compile(
    r"\b((?:contrase(?:ñ|n)a|clave|pin|password|passcode|c[oó]digo de seguridad|cvv|cvc|"
    r"security code)(?:\s+(?:es|is|:|era|was))?\s*:?\s+)(\S+)",
    re.IGNORECASE,
)

CARD: Final = "card_number"
ACCOUNT: Final = "account_number"
SECRET: Final = "secret"
EMAIL: Final = "email"
ID_NUMBER: Final = "id_number"
PHONE: Final = "phone_number"
_MASKS: Final = {
    CARD: "[CARD]", ACCOUNT: "[ACCOUNT]", SECRET: "[SECRET]", EMAIL: "[EMAIL]",
    ID_NUMBER: "[ID]", PHONE: "[PHONE]",
}  # fmt: skip


@dataclass(frozen=True)
class Redacted:
    """A redacted text and the kinds of PII removed from it."""

    text: str
    kinds: frozenset[str]


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits_of(run: str) -> str:
    out = []
    for piece in re.findall(r"\d+|[^\W\d]+", fold(run)):
        out.append(piece if piece.isdigit() else _DIGIT_WORDS.get(piece, ""))
    return "".join(out)


def _classify_number(digits: str) -> str | None:
    n = len(digits)
    if 13 <= n <= 19 and luhn_ok(digits):
        return CARD
    if n >= 12:
        # Long but not a valid card: still an account/card-like number; never send it out.
        return ACCOUNT
    if 9 <= n <= 11:
        return PHONE
    if n in (3, 4, 6):
        return None  # amounts, years, CVV-length numbers alone are too ambiguous to mask
    return None


def redact(text: str) -> Redacted:
    """Mask card numbers, account numbers, secrets, e-mails, ids and phone numbers."""
    kinds: set[str] = set()

    def secret(m: re.Match[str]) -> str:
        kinds.add(SECRET)
        return m.group(1) + _MASKS[SECRET]

    def number(m: re.Match[str]) -> str:
        kind = _classify_number(_digits_of(m.group(0)))
        if kind is None:
            return m.group(0)
        kinds.add(kind)
        return _MASKS[kind]

    def simple(kind: str) -> Callable[[re.Match[str]], str]:
        def sub(_m: re.Match[str]) -> str:
            kinds.add(kind)
            return _MASKS[kind]

        return sub

    out = _SECRET.sub(secret, text)
    out = _EMAIL.sub(simple(EMAIL), out)
    out = _IBAN.sub(simple(ACCOUNT), out)
    out = _SSN.sub(simple(ID_NUMBER), out)
    out = _DNI.sub(simple(ID_NUMBER), out)
    out = _NUMBER_RUN.sub(number, out)
    return Redacted(out, frozenset(kinds))
