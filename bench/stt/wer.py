"""Word error rate with Spanish-aware normalisation (case, accents, punctuation, numbers).

Evaluation code (benchmarks and tests score transcripts with it; no service imports it):
`from bench.stt.wer import normalise, wer, WerCounts`.
Numbers are scored as words: "3" and "tres" are the same word; "1234" becomes
"mil doscientos treinta y cuatro".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_UNITS = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciseis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidos",
    "veintitres",
    "veinticuatro",
    "veinticinco",
    "veintiseis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_TENS = {
    3: "treinta",
    4: "cuarenta",
    5: "cincuenta",
    6: "sesenta",
    7: "setenta",
    8: "ochenta",
    9: "noventa",
}
_HUNDREDS = {
    1: "ciento",
    2: "doscientos",
    3: "trescientos",
    4: "cuatrocientos",
    5: "quinientos",
    6: "seiscientos",
    7: "setecientos",
    8: "ochocientos",
    9: "novecientos",
}
# Words that mean the same thing once accents and case are gone.
_SYNONYMS = {
    "u": "o",
    "un": "uno",
    "una": "uno",
    "ok": "okey",
    "okay": "okey",
    "asterisco": "asterisco",
}


def number_words(n: int) -> str:
    """Spanish words for 0 <= n < 10**9, without accents ("21" -> "veintiuno")."""
    if n < 30:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens] + ("" if unit == 0 else " y " + _UNITS[unit])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        if n == 100:
            return "cien"
        return _HUNDREDS[hundreds] + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        head = "mil" if thousands == 1 else number_words(thousands) + " mil"
        return head + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000_000:
        millions, rest = divmod(n, 1_000_000)
        head = "un millon" if millions == 1 else number_words(millions) + " millones"
        return head + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(_UNITS[int(d)] for d in str(n))


_EN_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words_en(n: int) -> str:
    """English words for 0 <= n < 10**9 ("21" -> "twenty one")."""
    if n < 20:
        return _EN_UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _EN_TENS[tens] + ("" if unit == 0 else " " + _EN_UNITS[unit])
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size and n < size * 1000:
            head, rest = divmod(n, size)
            return f"{number_words_en(head)} {name}" + (
                "" if rest == 0 else " " + number_words_en(rest)
            )
    return " ".join(_EN_UNITS[int(d)] for d in str(n))


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    # Keep ñ distinct from n: it changes the word.
    out = []
    for ch in decomposed:
        if unicodedata.combining(ch) and ch != "\u0303":
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _digits_to_words(match: re.Match[str], lang: str = "es") -> str:
    digits = match.group(0).replace(".", "").replace(",", "")
    units, words = (_EN_UNITS, number_words_en) if lang == "en" else (_UNITS, number_words)
    if len(digits) > 9 or (len(digits) > 1 and digits.startswith("0")):
        # Phone numbers, PINs: said digit by digit.
        return " " + " ".join(units[int(d)] for d in digits) + " "
    return " " + words(int(digits)) + " "


def normalise(text: str, lang: str = "es") -> list[str]:
    """Lower-case words without accents, punctuation or digits (numbers spelled out in `lang`)."""
    t = _strip_accents(text.lower())
    if lang == "en":
        # "Don't" and "dont" are one word; the hyphen of "twenty-one" is a space.
        t = t.replace("'", "").replace("’", "")
    t = re.sub(r"\d+(?:[.,]\d{3})*", lambda m: _digits_to_words(m, lang), t)
    t = re.sub(r"[^\wñ\s]", " ", t)
    t = t.replace("_", " ")
    return [_SYNONYMS.get(w, w) for w in t.split()]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def hits(ref: list[str], hyp: list[str]) -> list[bool]:
    """For each hypothesis word, whether a minimum-edit alignment matches it to an equal
    reference word (the words a listener would count as right)."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    out = [False] * m
    i, j = n, m
    while i > 0 and j > 0:
        if d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            out[j - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif d[i][j] == d[i][j - 1] + 1:
            j -= 1
        else:
            i -= 1
    return out


@dataclass
class WerCounts:
    """Accumulated errors and reference words over many utterances (corpus WER)."""

    errors: int = 0
    words: int = 0
    lang: str = "es"

    def add(self, reference: str, hypothesis: str) -> float:
        """Score one pair, add it to the totals, return its own WER."""
        ref, hyp = normalise(reference, self.lang), normalise(hypothesis, self.lang)
        errors = edit_distance(ref, hyp)
        self.errors += errors
        self.words += len(ref)
        return errors / max(1, len(ref))

    @property
    def wer(self) -> float:
        """Corpus WER: total errors / total reference words."""
        return self.errors / max(1, self.words)


def wer(reference: str, hypothesis: str) -> float:
    """WER of one hypothesis against one reference, after normalisation."""
    return WerCounts().add(reference, hypothesis)


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs."""
    counts = WerCounts()
    for ref, hyp in pairs:
        counts.add(ref, hyp)
    return counts.wer
