"""Spoken numbers as a telephone caller says them, with where each one sits in the text.

Callers read card, phone and id numbers digit by digit ("cuatro cinco cuatro cero"), in pairs
("cuarenta y cinco, cuarenta"), in hundreds ("novecientos doce") or with "doble"/"double",
and Whisper writes some of it as digits and some as words. `tokens` splits a text into tokens
that keep their character offsets; `groups` reads the number tokens among them as digit groups
(each one a value as spoken: "cuarenta y cinco" -> "45", "cuatro cinco" -> "4", "5").

Why not text2num's `alpha2digit` (es/en): it rewrites the text, so offsets into the original
are lost (the redactor needs them for `charStart`/`charEnd` and for `words`), it knows neither
"doble"/"double" nor "oh" for zero, and it leaves lone small numbers as words on purpose. The
grammar a caller uses for a number read aloud is small; it is all here.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

_TOKEN: Final = re.compile(r"\d+|[^\W\d_]+|\S", re.UNICODE)


@dataclass(frozen=True)
class Token:
    """A word, a digit string or one punctuation character, with its offsets in the text."""

    text: str
    norm: str
    """Lower case, accents removed (ñ kept)."""
    start: int
    end: int

    @property
    def is_digits(self) -> bool:
        """Written as digits."""
        return self.text.isdigit()

    @property
    def is_word(self) -> bool:
        """Letters only."""
        return self.text.isalpha()


@functools.lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lower case without accents, ñ kept ("Cumpleaños" -> "cumpleaños", "Perdón" -> "perdon")."""
    lower = text.lower()
    if lower.isascii():
        return lower
    out = []
    for ch in lower:
        if ch == "ñ":
            out.append(ch)
            continue
        decomposed = unicodedata.normalize("NFD", ch)
        out.append("".join(c for c in decomposed if unicodedata.category(c) != "Mn"))
    return "".join(out)


def tokens(text: str) -> list[Token]:
    """Split `text` into tokens that keep their offsets."""
    return [Token(m.group(0), fold(m.group(0)), m.start(), m.end()) for m in _TOKEN.finditer(text)]


UNITS: Final = {
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9,
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS: Final = {
    "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19,
    "veintiuno": 21, "veintiun": 21, "veintiuna": 21, "veintidos": 22, "veintitres": 23,
    "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
    "veintiocho": 28, "veintinueve": 29,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
"""Numbers below 30 said in one word that a unit cannot follow."""
TENS: Final = {
    "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70,
    "ochenta": 80, "noventa": 90,
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
HUNDREDS: Final = {
    "cien": 100, "ciento": 100, "doscientos": 200, "doscientas": 200, "trescientos": 300,
    "trescientas": 300, "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500,
    "quinientas": 500, "seiscientos": 600, "seiscientas": 600, "setecientos": 700,
    "setecientas": 700, "ochocientos": 800, "ochocientas": 800, "novecientos": 900,
    "novecientas": 900,
}  # fmt: skip
REPEAT: Final = {"doble": 2, "double": 2, "triple": 3}
"""'doble cinco' is 55, 'triple seven' 777."""
AND_WORDS: Final = frozenset({"y", "and"})
THOUSAND: Final = frozenset({"mil", "thousand"})
HUNDRED: Final = frozenset({"hundred"})
UN: Final = frozenset({"un", "una"})
"""Only a number after a ten and "y" ("treinta y un") or before "mil"."""

NUMBER_WORDS: Final = (
    frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | frozenset(HUNDREDS) | THOUSAND
)


@dataclass(frozen=True)
class Group:
    """Digits said as one number, and the token indexes [first, last] it spans."""

    digits: str
    first: int
    last: int


def is_number_token(toks: list[Token], i: int) -> bool:
    """Whether token `i` starts or continues a number (digits or a number word)."""
    t = toks[i]
    if t.is_digits or (t.norm in NUMBER_WORDS and t.norm != "oh"):
        return True
    if t.norm == "oh":
        # "oh" is zero only among other digits ("four oh one", "double oh four"), else an
        # interjection: look past other "oh"s, "double" and commas for a number.
        return _number_near(toks, i, -1) or _number_near(toks, i, 1)
    if t.norm in REPEAT:
        return i + 1 < len(toks) and (toks[i + 1].norm in UNITS or toks[i + 1].is_digits)
    return False


def _number_near(toks: list[Token], i: int, step: int) -> bool:
    k = i + step
    while 0 <= k < len(toks) and toks[k].norm in ("oh", ",", *REPEAT):
        k += step
    return _number_at(toks, k)


def _number_at(toks: list[Token], i: int) -> bool:
    if not 0 <= i < len(toks):
        return False
    t = toks[i]
    return t.is_digits or (t.norm in NUMBER_WORDS and t.norm != "oh")


def groups(toks: list[Token], first: int, last: int) -> list[Group]:
    """Read tokens [first, last] (number tokens, separators between them) as digit groups."""
    out: list[Group] = []
    i = first
    while i <= last:
        t = toks[i]
        if t.is_digits:
            out.append(Group(t.text, i, i))
            i += 1
        elif (
            t.norm in REPEAT
            and i + 1 <= last
            and (toks[i + 1].norm in UNITS or toks[i + 1].is_digits)
        ):
            nxt = toks[i + 1]
            digit = nxt.text if nxt.is_digits else str(UNITS[nxt.norm])
            out.append(Group(digit * REPEAT[t.norm], i, i + 1))
            i += 2
        elif t.norm in NUMBER_WORDS or t.norm == "oh" or t.norm in UN:
            value, j = _compound(toks, i, last)
            if j < i:
                i += 1
                continue
            out.append(Group(str(value), i, j))
            i = j + 1
        else:
            i += 1
    return out


def _compound(toks: list[Token], i: int, last: int) -> tuple[int, int]:
    """One spoken number from token `i`: its value and the index of its last token (< i: none).

    Grammar: [sub] [mil|thousand [sub]], where sub is below a thousand; a sub that is a lone
    unit is one digit ("cuatro cinco" is 4, then 5), unless a thousand follows ("cuatro mil").
    """
    sub = _sub(toks, i, last)
    if sub is None and toks[i].norm in THOUSAND:
        total, j = 1000, i
    elif sub is not None and sub[1] + 1 <= last and toks[sub[1] + 1].norm in THOUSAND:
        total, j = max(sub[0], 1) * 1000, sub[1] + 1
    elif sub is not None:
        return sub
    else:
        return 0, i - 1
    rest = _sub(toks, j + 1, last) if j + 1 <= last else None
    if rest is not None:
        return total + rest[0], rest[1]
    return total, j


_ZEROS: Final = frozenset({"cero", "zero", "oh"})


def _sub(toks: list[Token], k: int, last: int) -> tuple[int, int] | None:
    """A number below a thousand from token `k`: (value, last index), or None."""
    first = k
    value, j = 0, k - 1

    def norm(n: int) -> str:
        return toks[n].norm if n <= last and not toks[n].is_digits else ""

    if norm(k) in HUNDREDS:
        value, j, k = HUNDREDS[norm(k)], k, k + 1
    elif norm(k) in UNITS and norm(k) not in _ZEROS and norm(k + 1) in HUNDRED:
        value, j, k = UNITS[norm(k)] * 100, k + 1, k + 2
        if norm(k) in AND_WORDS and (norm(k + 1) in TENS or norm(k + 1) in TEENS):
            k += 1
    w = norm(k)
    if w in TENS:
        value, j = value + TENS[w], k
        if norm(k + 1) in AND_WORDS | {"-"} and (
            (norm(k + 2) in UNITS and norm(k + 2) not in _ZEROS) or norm(k + 2) in UN
        ):
            value, j = value + UNITS.get(norm(k + 2), 1), k + 2
        elif w.endswith("ty") and norm(k + 1) in UNITS and norm(k + 1) not in _ZEROS:
            value, j = value + UNITS[norm(k + 1)], k + 1  # "forty five"
    elif w in TEENS:
        value, j = value + TEENS[w], k
    elif w in UNITS and (j < first or w not in _ZEROS):
        value, j = value + UNITS[w], k  # "ciento cinco", or one digit
    elif w in UN and norm(k + 1) in THOUSAND:
        value, j = 1, k
    return (value, j) if j >= first else None
