"""Mask personal data in transcripts before anything is published: card numbers, CVV, expiry
dates, national ids (DNI/NIE, CURP, RFC, SSN), IBANs, phone numbers, e-mails, dates of birth.

A masked span reads `[kind]` (one `coach.events.RedactionKind`) and is recorded in the event as
`redactions: [{kind, start, end, charStart, charEnd}]` (seconds from the call start, offsets of
`[kind]` in the masked text); words inside a span become one word `[kind]`.

How a number gets its kind (numbers are digits or words: coach/numwords.py):
1. Shapes that say it alone: e-mail addresses (written or spoken with "arroba"/"at ... dot"),
   IBANs, DNI/NIE with their letter, CURP/RFC, SSN; card numbers of 13-19 digits that pass Luhn;
   phone numbers that `phonenumbers` accepts for Spain, Mexico, the US or the UK.
2. The nearest keyword before it (coach/redact_rules.py): "código de seguridad" makes
   everything after it up to the end of the utterance (the pause) a CVV; "caduca" a date an
   expiry, "nací el" a date of birth; "teléfono", "DNI", "IBAN" and so on; "pedido", "ticket"
   a reference kept in clear (REDACT_KEEP_AFTER). A number followed by a unit ("euros",
   "minutos", "años") is an amount, a duration or an age and stays.
3. The session of the speaker's stream: a keyword at the end of one final ("el CVV es ...")
   gives its kind to the numbers that open the next one; while a payment is being spoken of
   (a payment word or a card number in the last `payment_window_s`), any run of 4+ digits is a
   card number, so a card read in two finals is masked in both.
4. Otherwise a long unexplained number (8+ digits) is masked too: as a card if it starts like
   one (3-6), else as a phone number. Partials, which are never revised, mask harder: a
   trailing run of 3+ digits (it may still grow into a card), and while a payment is spoken
   of any number at all.

Raw text is never logged here.
"""

from __future__ import annotations

import collections
import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.es import dni as std_dni
from stdnum.es import nie as std_nie
from stdnum.mx import curp as std_curp
from stdnum.mx import rfc as std_rfc

from coach.events import REDACTION_KINDS, RedactionKind
from coach.numwords import UNITS, Token, fold, groups, is_number_token, tokens
from coach.redact_rules import (
    BRIDGE_MAX,
    BRIDGES,
    DATE_JOINERS,
    DEFAULT_KEEP,
    EMAIL_AT,
    EMAIL_DOT,
    EMAIL_JOIN,
    EMAIL_STOP,
    EMAIL_WORDS,
    KEEP,
    KEYWORDS,
    LETTER_NAMES,
    MONTHS,
    ORDINALS,
    PAYMENT,
    UNITS_AFTER,
    Phrase,
)
from coach.settings import SettingsError

K = RedactionKind
KEYWORD_REACH: Final = 10
"""Word tokens between a keyword and the number it names, at most."""
SEPARATORS: Final = frozenset({",", ".", "-", "/", "(", ")", "+"})
"""Punctuation inside one spoken or written number ("4540-1234", "(555) 123-4567")."""
PHONE_REGIONS: Final = ("ES", "MX", "US", "GB")
_SKIP_BEFORE_VALUE: Final = frozenset(
    [
        "es",
        "son",
        "el",
        "la",
        "los",
        "las",
        "mi",
        "mis",
        "su",
        "sus",
        "a",
        "en",
        "is",
        "are",
        "my",
        "the",
        "on",
        "at",
        ":",
        "number",
        "numero",
        "de",
        "del",
        "si",
        "yes",
        "vale",
        "claro",
        "pues",
        "ok",
        "sure",
        "it",
        "s",
        "'",
        "bueno",
        "mira",
        ",",
        ".",
        "letra",
    ]
)
_IN_ID: Final = frozenset({"letra", "letter", "doble"})
"""Words inside a spelled id: "... letra T", "uve doble"."""
_WRITTEN: Final = (
    (K.EMAIL, re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (K.IBAN, re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{2,4}){3,8}\b")),
    (K.NATIONAL_ID, re.compile(r"\b[A-Z&Ñ]{4}\d{6}[HM][A-Z]{5}[A-Z0-9]\d\b")),  # CURP
    (K.NATIONAL_ID, re.compile(r"\b[A-Z&Ñ]{3,4}-?\d{6}-?[A-Z0-9]{3}\b")),  # RFC
    (K.NATIONAL_ID, re.compile(r"\b[XYZxyz][ .-]?\d{7}[ .-]?[A-Za-z]\b")),  # NIE
    (K.NATIONAL_ID, re.compile(r"\b\d{1,2}[ .]?\d{3}[ .]?\d{3}[ -]?[A-Za-z]\b")),  # DNI
    (K.NATIONAL_ID, re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),  # SSN
)


@dataclass(frozen=True)
class RedactConfig:
    """What to mask and what to keep (REDACT_* settings; see coach/ENV docs in stt/ENV.md)."""

    kinds: frozenset[str] = frozenset(REDACTION_KINDS)
    """Kinds masked (REDACT_KINDS: comma-separated, `all` (default) or `none`)."""
    keep_after: tuple[str, ...] = DEFAULT_KEEP
    """Phrases introducing a reference kept in clear (REDACT_KEEP_AFTER, comma-separated;
    `none`: keep no reference)."""
    payment_window_s: float = 90.0
    """Seconds a payment stays "being spoken of" after its last sign (REDACT_PAYMENT_WINDOW_S)."""
    armed_window_s: float = 20.0
    """Seconds a keyword at the end of a final names the numbers of the next one."""

    @classmethod
    def parse(
        cls, kinds: str = "all", keep_after: str | None = None, payment_window_s: float = 90.0
    ) -> RedactConfig:
        """From the settings' text (REDACT_KINDS, REDACT_KEEP_AFTER, REDACT_PAYMENT_WINDOW_S:
        the service reading them, stt, checks the number); a bad kind raises SettingsError."""
        raw = kinds.strip().lower() or "all"
        named = {"all": frozenset(REDACTION_KINDS), "none": frozenset[str]()}
        chosen = named[raw] if raw in named else _items(raw)
        unknown = chosen - set(REDACTION_KINDS)
        if unknown:
            raise SettingsError(
                f"REDACT_KINDS: unknown kind(s) {', '.join(sorted(unknown))}; "
                f"use 'all', 'none' or some of {', '.join(REDACTION_KINDS)}"
            )
        keep: tuple[str, ...]
        if keep_after is None or not keep_after.strip():
            keep = DEFAULT_KEEP
        elif fold(keep_after).strip() == "none":
            keep = ()
        else:
            keep = tuple(sorted(_items(fold(keep_after))))
        return cls(kinds=chosen, keep_after=keep, payment_window_s=payment_window_s)


def _items(raw: str) -> frozenset[str]:
    return frozenset(x.strip() for x in raw.split(",") if x.strip())


@dataclass(frozen=True)
class Span:
    """A sensitive span of the raw text: [start, end) character offsets."""

    kind: str
    start: int
    end: int


@dataclass
class Found:
    """What one text holds: its spans, and what it tells the session about the next final."""

    spans: list[Span]
    payment: bool = False
    """A payment word or a card number was in it."""
    armed: str | None = None
    """It ended with a keyword and no value after it: the kind the next final's numbers get."""
    card_digits: int = 0
    """Digits masked as card in it (the session adds them up until a card is complete)."""


@dataclass
class _Ctx:
    payment: bool
    armed: str | None
    partial: bool
    keep: tuple[Phrase, ...]
    card_digits: int = 0
    only_numbers: bool = False


@dataclass
class _Scan:
    text: str
    toks: list[Token]
    keywords: list[tuple[int, int, str]]  # (first token, last token, kind), in order
    used: list[bool] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    card_digits: int = 0

    def add(self, kind: str, first: int, last: int) -> None:
        for i in range(first, last + 1):
            self.used[i] = True
        self.spans.append(Span(kind, self.toks[first].start, self.toks[last].end))

    def free(self, first: int, last: int) -> bool:
        return not any(self.used[first : last + 1])


def find(text: str, *, payment: bool = False, armed: str | None = None, partial: bool = False,
         keep: Sequence[str] = DEFAULT_KEEP, card_digits: int = 0) -> Found:  # fmt: skip
    """The sensitive spans of `text` (all kinds; the config filters later).

    `payment`: a payment is being spoken of; `armed`: the kind the previous final announced;
    `card_digits`: digits of the card being read so far (13+: complete, a CVV may follow).
    """
    toks = tokens(text)
    ctx = _Ctx(payment, armed, partial, tuple(tuple(p.split()) for p in keep), card_digits)
    scan = _Scan(text, toks, _keywords(toks, ctx.keep), [False] * len(toks))
    _written(scan)
    _emails(scan)
    _dotted_emails(scan)
    _after_keywords(scan, ctx)
    _runs(scan, ctx)
    spans = _merge(scan)
    kinds = {s.kind for s in spans}
    found = Found(spans, payment=K.CARD in kinds or any(k == PAYMENT for _, _, k in scan.keywords))
    found.armed = _trailing_keyword(scan)
    found.card_digits = scan.card_digits
    return found


# -- keywords ---------------------------------------------------------------------------------


def _keywords(toks: list[Token], keep: tuple[Phrase, ...]) -> list[tuple[int, int, str]]:
    """Every keyword occurrence, longest phrase first at each position."""
    words = [i for i, t in enumerate(toks) if t.is_word or t.is_digits]
    norms = [toks[i].norm for i in words]
    # Whisper mishears a keyword by a letter or two ("Cavuca", "Segurinal", "Cónigo"): a word
    # that is no keyword but is that close to one reads as it. Exact matches are tried first.
    norms = [n if n in _KEYWORD_WORDS else (near_keyword(n) or n) for n in norms]
    table = _phrase_index(keep)
    out: list[tuple[int, int, str]] = []
    j = 0
    while j < len(norms):
        for phrase, kind in table.get(norms[j], ()):
            n = len(phrase)
            if tuple(norms[j : j + n]) == phrase:
                out.append((words[j], words[j + n - 1], kind))
                j += n
                break
        else:
            j += 1
    return out


@functools.lru_cache(maxsize=16)
def _phrase_index(keep: tuple[Phrase, ...]) -> dict[str, list[tuple[Phrase, str]]]:
    """Keyword phrases by their first word, longest first."""
    table: list[tuple[Phrase, str]] = [(p, kind) for kind, ps in KEYWORDS.items() for p in ps]
    table += [(p, KEEP) for p in keep]
    index: dict[str, list[tuple[Phrase, str]]] = {}
    for phrase, kind in sorted(table, key=lambda pk: -len(pk[0])):
        index.setdefault(phrase[0], []).append((phrase, kind))
    return index


_KEYWORD_WORDS: Final = frozenset(w for ps in KEYWORDS.values() for p in ps for w in p)
_FUZZY_MIN: Final = 6
"""Words shorter than this are never read as a misheard keyword (too many near neighbours)."""
_FUZZY_TARGETS: Final = tuple(
    sorted(
        w
        for kind, ps in KEYWORDS.items()
        # Payment words stay exact but "tarjeta": "debido" is one letter from "debito".
        for p in ps
        for w in p
        if len(w) >= _FUZZY_MIN and w.isalpha() and (kind != PAYMENT or w == "tarjeta")
    )
)
NOT_KEYWORDS: Final = frozenset({"debido", "debida", "seguida", "seguido", "pasaporta"})
"""Common words a letter or two from a keyword."""


@functools.lru_cache(maxsize=8192)
def near_keyword(word: str) -> str | None:
    """The keyword word `word` is a mishearing of (edit distance 1, or 2 from 9 letters)."""
    n = len(word)
    if n < _FUZZY_MIN or not word.isalpha() or word in NOT_KEYWORDS:
        return None
    limit = 1 if n < 9 else 2
    best: tuple[int, str] | None = None
    for target in _FUZZY_TARGETS:
        if abs(len(target) - n) > limit:
            continue
        d = _distance(word, target, limit)
        if d <= limit and (best is None or d < best[0]):
            best = (d, target)
    return best[1] if best else None


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or limit + 1 as soon as it must exceed `limit`."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def _keyword_before(scan: _Scan, index: int, reach: int = KEYWORD_REACH) -> str | None:
    """The kind of the nearest keyword ending before token `index`, within `reach` words."""
    best: tuple[int, str] | None = None
    for _first, last, kind in scan.keywords:
        if last < index:
            best = (last, kind)
    if best is None:
        return None
    between = sum(1 for t in scan.toks[best[0] + 1 : index] if t.is_word or t.is_digits)
    return best[1] if between <= reach else None


def _trailing_keyword(scan: _Scan) -> str | None:
    """A value keyword near the end with no number after it: the next final holds the value."""
    if not scan.keywords:
        return None
    _first, last, kind = scan.keywords[-1]
    if kind in (KEEP, PAYMENT):
        return K.CARD if kind == PAYMENT and _only_filler_after(scan, last) else None
    return kind if _only_filler_after(scan, last) else None


def _only_filler_after(scan: _Scan, last: int) -> bool:
    rest = [t for t in scan.toks[last + 1 :] if t.is_word or t.is_digits]
    if any(t.is_digits or t.norm in UNITS for t in rest):
        return False
    return len(rest) <= 4


# -- shapes that say what they are ----------------------------------------------------------


def _written(scan: _Scan) -> None:
    for kind, pattern in _WRITTEN:
        for m in pattern.finditer(scan.text):
            value = re.sub(r"[ .-]", "", m.group(0)).upper()
            if not _written_ok(kind, pattern, value, scan, m.start()):
                continue
            idx = [i for i, t in enumerate(scan.toks) if t.start < m.end() and t.end > m.start()]
            if idx and scan.free(idx[0], idx[-1]):
                scan.add(kind, idx[0], idx[-1])


def _written_ok(kind: str, pattern: re.Pattern[str], value: str, scan: _Scan, at: int) -> bool:
    if kind == K.EMAIL:
        return True
    before = _keyword_before(scan, _token_at(scan, at), reach=6)
    if kind == K.IBAN:
        return std_iban.is_valid(value) or before == K.IBAN
    if pattern is _WRITTEN[2][1]:
        return std_curp.is_valid(value) or before == K.NATIONAL_ID
    if pattern is _WRITTEN[3][1]:
        return std_rfc.is_valid(value) or before == K.NATIONAL_ID
    if pattern is _WRITTEN[4][1]:
        return std_nie.is_valid(value) or before == K.NATIONAL_ID
    if pattern is _WRITTEN[5][1]:
        return std_dni.is_valid(value.zfill(9)) or before == K.NATIONAL_ID
    return True


def _token_at(scan: _Scan, char: int) -> int:
    for i, t in enumerate(scan.toks):
        if t.end > char:
            return i
    return len(scan.toks)


def _emails(scan: _Scan) -> None:
    """Addresses spoken: "juan punto perez arroba gmail punto com", "john at gmail dot com"."""
    toks = scan.toks
    for at, t in enumerate(toks):
        near_at = t.norm not in EMAIL_AT and _near_arroba(t)
        if (t.norm not in EMAIL_AT and not near_at) or scan.used[at]:
            continue
        # The domain: word (dot word)+ ; "at" needs the dot to be an address at all.
        j, dots = at + 1, 0
        if j >= len(toks) or not (toks[j].is_word or toks[j].is_digits):
            continue
        end = j
        while j + 2 < len(toks) and toks[j + 1].norm in EMAIL_DOT and toks[j + 2].is_word:
            j += 2
            dots += 1
            end = j
        if dots == 0 and (t.norm == "at" or near_at):
            continue
        # The local part: word ((dot|dash|underscore) word)*, not a stop word.
        i = at - 1
        if i < 0 or not (toks[i].is_word or toks[i].is_digits) or toks[i].norm in EMAIL_STOP:
            continue
        begin, extra = i, 0
        # Back over "punto"/"guion bajo" joins, and up to two words said with spaces between
        # ("ana lopez 85 arroba ...").
        while i - 1 >= 0:
            k = i - 1
            while k >= 0 and toks[k].norm in EMAIL_JOIN:
                k -= 1
            if k < 0 or not (toks[k].is_word or toks[k].is_digits) or toks[k].norm in EMAIL_STOP:
                break
            if k == i - 1:
                if extra == 2:
                    break
                extra += 1
            i = begin = k
        if scan.free(begin, end):
            scan.add(K.EMAIL, begin, end)


def _near_arroba(t: Token) -> bool:
    """Whisper's "Arrogas", "Arroda" for "arroba" (only with a dotted domain after it)."""
    return t.is_word and len(t.norm) >= 5 and _distance(t.norm, "arroba", 2) <= 2


def _dotted_emails(scan: _Scan) -> None:
    """A name written with dots right after "correo"/"email": an address whose "arroba" was
    lost ("john.smithtmell.com"); the dots must be written without spaces, the last part short
    as a domain's end is."""
    toks = scan.toks
    for k, t in enumerate(toks):
        if t.norm not in EMAIL_WORDS:
            continue
        words = 0
        for i in range(k + 1, len(toks)):
            if toks[i].is_word or toks[i].is_digits:
                words += 1
                if words > 4:
                    break
            j = i
            while (
                j + 2 < len(toks)
                and toks[j + 1].text == "."
                and toks[j].end == toks[j + 1].start
                and toks[j + 1].end == toks[j + 2].start
                and (toks[j + 2].is_word or toks[j + 2].is_digits)
            ):
                j += 2
            if j > i and toks[j].is_word and 2 <= len(toks[j].norm) <= 4:
                if scan.free(i, j):
                    scan.add(K.EMAIL, i, j)
                break


# -- keyword-led values: CVV, expiry, date of birth, spelled ids ------------------------------


def _after_keywords(scan: _Scan, ctx: _Ctx) -> None:
    kws = scan.keywords
    for n, (_first, last, kind) in enumerate(kws):
        stop = kws[n + 1][0] if n + 1 < len(kws) else len(scan.toks)
        if kind == K.CVV:
            _cvv(scan, last + 1, _next_other(kws, n, (K.CVV, PAYMENT)))
        elif kind in (K.EXPIRY, K.DOB):
            _date(scan, kind, last + 1, stop)
        elif kind == K.NATIONAL_ID:
            _spelled_id(scan, last + 1, stop)
    if ctx.armed in (K.EXPIRY, K.DOB, K.CVV, K.NATIONAL_ID):
        stop = kws[0][0] if kws else len(scan.toks)
        if ctx.armed == K.CVV:
            _cvv(scan, 0, stop)
        elif ctx.armed == K.NATIONAL_ID:
            _spelled_id(scan, 0, stop)
        else:
            _date(scan, ctx.armed, 0, stop)


def _next_other(kws: list[tuple[int, int, str]], n: int, same: tuple[str, ...]) -> int:
    for first, _last, kind in kws[n + 1 :]:
        if kind not in same:
            return first
    return 10**9


def _cvv(scan: _Scan, begin: int, stop: int) -> None:
    """Every number after the keyword until the pause (the end of the utterance)."""
    toks = scan.toks
    stop = min(stop, len(toks))
    nums = [i for i in range(begin, stop) if is_number_token(toks, i) and not scan.used[i]]
    nums = [i for i in nums if not _unit_after(toks, i)]
    if nums:
        scan.add(K.CVV, nums[0], nums[-1])


def _date(scan: _Scan, kind: str, begin: int, stop: int) -> None:
    toks = scan.toks
    stop = min(stop, len(toks))
    i, skipped = begin, 0
    while i < stop and not _date_token(toks, i):
        if toks[i].is_word:
            skipped += 1
        if skipped > 4:
            return
        i += 1
    if i >= stop:
        return
    first = last = i
    while i < stop and (
        _date_token(toks, i) or toks[i].norm in DATE_JOINERS or toks[i].norm in ("y", "and")
    ):
        if _date_token(toks, i):
            last = i
        i += 1
    if scan.free(first, last):
        scan.add(kind, first, last)


def _date_token(toks: list[Token], i: int) -> bool:
    return is_number_token(toks, i) or toks[i].norm in MONTHS or toks[i].norm in ORDINALS


def _id_piece(toks: list[Token], i: int) -> bool:
    t = toks[i]
    if is_number_token(toks, i):
        return True
    if t.is_word and len(t.text) == 1:
        return True
    if t.norm in LETTER_NAMES:
        return True
    # Runs of capitals Whisper writes for a spelled code ("BADD", "HCMLNS").
    return t.is_word and t.text.isupper() and len(t.text) <= 6


def _spelled_id(scan: _Scan, begin: int, stop: int) -> None:
    """Digits and spelled letters after "DNI", "NIE", "CURP" ... ("equis uno dos ... zeta")."""
    toks = scan.toks
    stop = min(stop, len(toks))
    i, skipped = begin, 0
    while i < stop and not (is_number_token(toks, i) or _starts_id(toks, i)):
        if toks[i].is_word:
            if toks[i].norm not in _SKIP_BEFORE_VALUE:
                return
            skipped += 1
        if skipped > 4:
            return
        i += 1
    first = last = i
    digits = 0
    while i < stop:
        t = toks[i]
        if _id_piece(toks, i):
            last = i
            if is_number_token(toks, i):
                digits += sum(len(g.digits) for g in groups(toks, i, i)) or 1
            i += 1
        elif t.norm in SEPARATORS or t.norm in BRIDGES or t.norm in _IN_ID:
            if t.norm == "doble" and toks[i - 1].norm == "uve":
                last = i
            i += 1
        elif t.norm == "de" and i + 1 < stop and toks[i + 1].text[:1].isupper():
            last = i + 1  # "zeta de Zaragoza"
            i += 2
        else:
            break
    if digits >= 4 and first < stop and scan.free(first, last):
        scan.add(K.NATIONAL_ID, first, last)


def _starts_id(toks: list[Token], i: int) -> bool:
    t = toks[i]
    return t.norm in ("x", "y", "z", "equis", "zeta", "ye") or (
        t.is_word and t.text.isupper() and 1 <= len(t.text) <= 4
    )


# -- number runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    first: int
    last: int
    digits: str


def _number_runs(scan: _Scan) -> list[_Run]:
    """Maximal runs of number tokens joined by separators, "y" inside a number, or fillers."""
    toks = scan.toks
    out: list[_Run] = []
    i = 0
    while i < len(toks):
        if scan.used[i] or not is_number_token(toks, i):
            i += 1
            continue
        first = last = i
        j = i + 1
        while j < len(toks):
            if scan.used[j]:
                break
            if is_number_token(toks, j) or (
                toks[j].norm in ("y", "and", "un", "una") and _in_number(toks, j)
            ):
                last = j
                j += 1
                continue
            # Separators and up to BRIDGE_MAX filler words, when a number follows them.
            k, words = j, 0
            while (
                k < len(toks)
                and not scan.used[k]
                and (toks[k].norm in SEPARATORS or toks[k].norm in BRIDGES)
            ):
                words += toks[k].is_word
                k += 1
            if (
                k > j
                and words <= BRIDGE_MAX
                and k < len(toks)
                and not scan.used[k]
                and is_number_token(toks, k)
            ):
                j = k
                continue
            break
        digits = "".join(g.digits for g in groups(toks, first, last))
        out.append(_Run(first, last, digits))
        i = last + 1
    return out


def _in_number(toks: list[Token], j: int) -> bool:
    """'y'/'and' between a ten and a unit, or 'un' after 'treinta y'."""
    if toks[j].norm in ("un", "una"):
        return j >= 1 and toks[j - 1].norm in ("y", "and")
    return 0 < j < len(toks) - 1 and is_number_token(toks, j - 1) and is_number_token(toks, j + 1)


def _unit_after(toks: list[Token], last: int) -> bool:
    for t in toks[last + 1 : last + 3]:
        if t.norm in UNITS_AFTER:
            return True
        if t.norm not in (",", "."):
            return False
    return False


def _runs(scan: _Scan, ctx: _Ctx) -> None:
    toks = scan.toks
    runs = _number_runs(scan)
    inside = {i for run in runs for i in range(run.first, run.last + 1)}
    ctx.only_numbers = bool(runs) and all(
        i in inside or not (t.is_word or t.is_digits) or t.norm in _AROUND_NUMBERS
        for i, t in enumerate(toks)
    )
    for n, run in enumerate(runs):
        if _unit_after(toks, run.last) or not run.digits:
            continue
        context = _keyword_before(scan, run.first)
        if context is None and not any(last < run.first for _, last, _ in scan.keywords):
            context = ctx.armed
        trailing = n == len(runs) - 1 and run.last >= len(toks) - 2
        kind: str | None = K.NATIONAL_ID if _dni_letter_after(toks, run) else None
        kind = kind or _classify(run, context, ctx, trailing=trailing)
        if kind is None:
            continue
        first, last = run.first, run.last
        if kind in (K.PHONE, K.IBAN, K.NATIONAL_ID):
            first, last = _widen(scan, kind, first, last)
        if scan.free(first, last):
            scan.add(kind, first, last)
            if kind == K.CARD:
                scan.card_digits += len(run.digits)


_AROUND_NUMBERS: Final = BRIDGES | frozenset(
    [
        "y",
        "and",
        "si",
        "yes",
        "es",
        "is",
        "el",
        "la",
        "los",
        "the",
        "son",
        "are",
        "vale",
        "ok",
        "pues",
        "bueno",
        "entonces",
        "then",
        "luego",
    ]
)
"""Words an utterance that is only a number read aloud may also hold ("sí, es el 4 5")."""


def _dni_letter_after(toks: list[Token], run: _Run) -> bool:
    """7-8 digits then the DNI's check letter, written or named ("... uno, ge")."""
    if not 7 <= len(run.digits) <= 8:
        return False
    k = run.last + 1
    while k < len(toks) and toks[k].norm in (",", "-", ".", "letra"):
        k += 1
    if k >= len(toks) or not toks[k].is_word:
        return False
    letter = toks[k].norm if len(toks[k].text) == 1 else LETTER_NAMES.get(toks[k].norm, "")
    return bool(letter) and std_dni.is_valid(run.digits.zfill(8) + letter.upper())


def _classify(run: _Run, context: str | None, ctx: _Ctx, trailing: bool) -> str | None:
    d = run.digits
    n = len(d)
    if context == KEEP:
        return None
    if context == K.CVV:
        return K.CARD if n >= 13 else K.CVV
    if context in (K.EXPIRY, K.DOB):
        return context
    if context == K.PHONE and n >= 6:
        return K.PHONE
    if context == K.NATIONAL_ID and n >= 5:
        return K.NATIONAL_ID
    if context == K.IBAN and n >= 8:
        return K.IBAN
    if 13 <= n <= 19 and luhn.is_valid(d):
        return K.CARD
    if context in (PAYMENT, K.CARD) or ctx.payment:
        # A card is read in pieces (STT may cut it after every digit or two): while paying,
        # every piece is card until 13+ digits were; then 3-4 digits alone are the CVV.
        complete = ctx.card_digits >= 13
        if complete and context is None and 3 <= n <= 4 and (ctx.only_numbers or n == 3):
            return K.CVV
        if n >= 4 or ctx.only_numbers or ctx.partial or context in (PAYMENT, K.CARD):
            return K.CARD
        if n == 3 and context is None:
            return K.CVV if complete else K.CARD
    if (9 <= n <= 13 and _phone(d)) or (n == 9 and d[0] in "6789"):
        return K.PHONE
    if n >= 8:
        return K.CARD if d[0] in "3456" else K.PHONE
    if ctx.partial and trailing and n >= 3:
        return K.CARD
    return None


def _phone(digits: str) -> bool:
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _widen(scan: _Scan, kind: str, first: int, last: int) -> tuple[int, int]:
    """Take in the '+'/'más' of a phone, the country letters of an IBAN, a DNI's letter."""
    toks = scan.toks
    if kind == K.PHONE:
        if first >= 1 and toks[first - 1].norm in ("+", "mas", "plus") and not scan.used[first - 1]:
            first -= 1
    elif kind == K.IBAN:
        k = first - 1
        while (
            k >= 0
            and not scan.used[k]
            and k >= first - 3
            and (
                (toks[k].is_word and toks[k].text.isupper() and len(toks[k].text) <= 2)
                or toks[k].norm in ("e", "ese")
            )
        ):
            k -= 1
        first = k + 1
    elif kind == K.NATIONAL_ID:
        while (
            last + 2 < len(toks)
            and toks[last + 1].norm in (",", "-", ".", "letra")
            and (
                (toks[last + 2].is_word and len(toks[last + 2].text) == 1)
                or toks[last + 2].norm in LETTER_NAMES
            )
        ):
            last += 1
        if (
            last + 1 < len(toks)
            and toks[last + 1].is_word
            and (len(toks[last + 1].text) == 1 or toks[last + 1].norm in LETTER_NAMES)
            and not scan.used[last + 1]
        ):
            last += 1
        if first >= 1 and toks[first - 1].norm in ("x", "y", "z", "equis", "zeta"):
            first -= 1
    return first, last


def _merge(scan: _Scan) -> list[Span]:
    """Sort the spans; join neighbours of one kind with only separators or fillers between."""
    spans = sorted(scan.spans, key=lambda s: s.start)
    out: list[Span] = []
    for s in spans:
        if out and out[-1].kind == s.kind:
            gap = scan.text[out[-1].end : s.start]
            words = re.findall(r"\w+", gap)
            # One short word between two pieces of one number is a misheard joiner
            # ("40 al 5" for "cuarenta y cinco"): masking it costs less than leaving it.
            short = len(words) == 1 and len(words[0]) <= 2 and len(gap) <= 6
            if (short or all(fold(w) in BRIDGES for w in words)) and len(gap) <= 30:
                out[-1] = Span(s.kind, out[-1].start, max(out[-1].end, s.end))
                continue
        if out and s.start < out[-1].end:
            continue
        out.append(s)
    return out


# -- applying it to events ----------------------------------------------------------------------


@dataclass(frozen=True)
class Redacted:
    """A masked text, its `redactions` (wire form) and its masked `words`."""

    text: str
    redactions: list[dict[str, Any]]
    words: list[dict[str, Any]] | None = None

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds masked."""
        return frozenset(str(r["kind"]) for r in self.redactions)


def apply(
    text: str,
    spans: Iterable[Span],
    start: float,
    end: float,
    words: list[dict[str, Any]] | None = None,
) -> Redacted:
    """Replace `spans` of `text` by `[kind]`; times from the words covered, else the utterance."""
    spans = sorted(spans, key=lambda s: s.start)
    placed = _align(text, words) if words else []
    out: list[str] = []
    reds: list[dict[str, Any]] = []
    cursor = 0
    length = 0
    for s in spans:
        out.append(text[cursor : s.start])
        length += s.start - cursor
        mask = f"[{s.kind}]"
        covered = [
            w for w, a, b in placed if a is not None and b is not None and a < s.end and b > s.start
        ]
        t0 = float(covered[0]["start"]) if covered else start
        t1 = float(covered[-1]["end"]) if covered else end
        reds.append(
            {
                "kind": str(s.kind),
                "start": round(t0, 3),
                "end": round(max(t0, t1), 3),
                "charStart": length,
                "charEnd": length + len(mask),
            }
        )
        out.append(mask)
        length += len(mask)
        cursor = s.end
    out.append(text[cursor:])
    masked_words = _mask_words(placed, spans) if words is not None else None
    return Redacted("".join(out), reds, masked_words)


def _align(
    text: str, words: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], int | None, int | None]]:
    """Each word with its offsets in `text` (None when it cannot be found in order)."""
    out: list[tuple[dict[str, Any], int | None, int | None]] = []
    cursor = 0
    for w in words:
        piece = str(w.get("w", "")).strip()
        at = text.find(piece, cursor) if piece else -1
        if at < 0:
            out.append((w, None, None))
            continue
        out.append((w, at, at + len(piece)))
        cursor = at + len(piece)
    return out


def _mask_words(
    placed: list[tuple[dict[str, Any], int | None, int | None]], spans: list[Span]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    done: set[int] = set()
    for w, a, b in placed:
        hit = None
        if a is not None and b is not None:
            hit = next((n for n, s in enumerate(spans) if a < s.end and b > s.start), None)
        elif spans and any(ch.isdigit() for ch in str(w.get("w", ""))):
            continue  # not where we expected it: never let digits through
        if hit is None:
            out.append(w)
            continue
        if hit in done:
            last = out[-1]
            last["end"] = w.get("end", last["end"])
            if "p" in w and "p" in last:
                last["p"] = min(float(last["p"]), float(w["p"]))
            continue
        done.add(hit)
        masked = {**w, "w": f" [{spans[hit].kind}]"}
        out.append(masked)
    return out


def redact_text(text: str, config: RedactConfig | None = None) -> Redacted:
    """Mask one text with no session (the post-call pass, the orchestrator's second look)."""
    config = config or RedactConfig()
    found = find(text, keep=config.keep_after)
    spans = [s for s in found.spans if s.kind in config.kinds]
    return apply(text, spans, 0.0, 0.0)


@dataclass
class CallContext:
    """What one speaker's finals tell the other speaker's stream in the same call.

    The agent usually asks ("¿me dice el número de la tarjeta?", "what's the security code?")
    and the customer answers with bare numbers: the question must prime the answer's stream.
    """

    payment_until: float = -math.inf
    """Call time until which a payment is being spoken of (by either speaker)."""
    armed: tuple[str, float, int] | None = None
    """(kind, until, id of the session that announced it): a question left hanging."""


MAX_CALLS: Final = 4096
"""Calls whose shared context a process remembers (oldest forgotten first)."""


class CallContexts:
    """callId -> CallContext, shared by the streams of one call in one process; bounded."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._calls: collections.OrderedDict[str, CallContext] = collections.OrderedDict()
        self._max = max_calls

    def get(self, call_id: str) -> CallContext:
        """The call's context (made on first use; a forgotten call starts afresh)."""
        ctx = self._calls.get(call_id)
        if ctx is None:
            ctx = self._calls[call_id] = CallContext()
            while len(self._calls) > self._max:
                self._calls.popitem(last=False)
        self._calls.move_to_end(call_id)
        return ctx


class RedactionSession:
    """One speaker's stream in one call: context carries from final to final, in order.

    `final` must see the finals in the order they are published (it learns from them);
    `partial` reads the context and never changes it (a partial is replaced by its final).
    With `call`, the payment and a hanging question are shared with the call's other streams.
    """

    def __init__(self, config: RedactConfig | None = None, call: CallContext | None = None) -> None:
        self.config = config or RedactConfig()
        self.call = call
        self._payment_until = -math.inf
        self._armed: tuple[str, float] | None = None
        self._card_digits = 0

    def _context(self, at: float) -> tuple[bool, str | None]:
        until = self._payment_until
        if self.call is not None:
            until = max(until, self.call.payment_until)
        payment = at <= until
        if not payment:
            self._card_digits = 0
        armed = self._armed[0] if self._armed and at <= self._armed[1] else None
        shared = self.call.armed if self.call is not None else None
        if armed is None and shared and shared[2] != id(self) and at <= shared[1]:
            armed = shared[0]
        return payment, armed

    def _learn(self, found: Found, end: float) -> None:
        self._card_digits += found.card_digits
        if found.payment:
            self._payment_until = end + self.config.payment_window_s
        self._armed = (found.armed, end + self.config.armed_window_s) if found.armed else None
        call = self.call
        if call is None:
            return
        call.payment_until = max(call.payment_until, self._payment_until)
        if found.armed:
            call.armed = (found.armed, end + self.config.armed_window_s, id(self))
        elif call.armed and call.armed[2] != id(self):
            call.armed = None  # this final answered the other speaker's question

    def partial(self, event: dict[str, Any]) -> dict[str, Any]:
        """The partial event with its text masked and `redactions` set."""
        return self._event(event, final=False)

    def final(self, event: dict[str, Any]) -> dict[str, Any]:
        """The final event with text and words masked and `redactions` set; learns context."""
        return self._event(event, final=True)

    def spans(self, text: str, start: float, end: float, *, final: bool) -> list[Span]:
        """The spans to mask in one utterance (a final also updates the context)."""
        payment, armed = self._context(start)
        found = find(
            text,
            payment=payment,
            armed=armed,
            partial=not final,
            keep=self.config.keep_after,
            card_digits=self._card_digits,
        )
        if final:
            self._learn(found, end)
        return [s for s in found.spans if s.kind in self.config.kinds]

    def _event(self, event: dict[str, Any], final: bool) -> dict[str, Any]:
        text = str(event.get("text") or "")
        start = float(event.get("start") or 0.0)
        end = float(event.get("end") or start)
        spans = self.spans(text, start, end, final=final)
        words = event.get("words")
        red = apply(text, spans, start, end, words if isinstance(words, list) else None)
        out = {**event, "text": red.text}
        if red.redactions:
            out["redactions"] = red.redactions
        else:
            out.pop("redactions", None)
        if red.words is not None:
            out["words"] = red.words
        return out
