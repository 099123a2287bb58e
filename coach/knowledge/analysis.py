"""Text analysis for retrieval: fold, tokenize, drop stopwords, stem per language.

The same function analyses passages and questions, so both sides agree on what a term is.
Accents are folded (a transcript may or may not carry them: "facturación" = "facturacion"),
stopwords cover Spanish and English function words *and* the fillers customers wrap a
question in ("hola, buenas, quería saber..."), and stemming is Snowball's (`snowballstemmer`,
the Snowball project's own generated Python; it uses PyStemmer's C code when installed).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

import snowballstemmer

LANGS: Final = ("es", "en")
"""Languages with a stemmer and stopwords; anything else is analysed as Spanish."""
_STEMMERS: Final = {"es": "spanish", "en": "english"}
_TOKEN: Final = re.compile(r"[a-z0-9ñ]+")

_ES: Final = """
a al algo alguna algunas alguno algunos ante antes aqui asi aun bajo bien cada como con
contra cual cuales cuando de del desde donde dos e el ella ellas ello ellos en entre era eran
es esa esas ese eso esos esta estaba estan estar este esto estos estoy fue fueron ha habia
han hasta hay la las le les lo los mas me mi mis mucho muy nada ni no nos nosotros o os otra
otro para pero poco por porque que quien se sea ser si sido sin sobre su sus tambien tan te
tengo tiene tienen todo todos tu tus un una unas uno unos usted ustedes y ya yo mio mia
cuanto cuanta cuantos cuantas cual que quien como donde cuando puedo puede pueden podria
hacer hago hace tener tenia estoy soy son seria va voy vamos hola buenas buenos dias tardes
noches oiga mire vale bueno pues entonces queria quisiera quiero saber gustaria preguntar
pregunta favor gracias señor señora señorita ah eh oye vez algo entonces verdad necesito
necesitaria tema cosa cosas mismo misma ahora hoy ayer mañana
"""
_EN: Final = """
a about am an and are as at be been being but by can could did do does doing for from had has
have having he her here hers him his how i if in into is it its just me my no nor not of on
once only or other our out own same she should so some such than that the their them then
there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours hello hi hey please thanks thank
wanted want wonder wondering know like tell could ok okay yes well um uh need get got
"""
STOPWORDS: Final = frozenset(_ES.split()) | frozenset(_EN.split())
"""Function words and question fillers of both languages (accent-folded)."""

_ES_HINTS: Final = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "de",
        "del",
        "que",
        "en",
        "por",
        "para",
        "con",
        "una",
        "uno",
        "es",
        "y",
        "se",
        "su",
        "al",
        "lo",
        "como",
        "mas",
        "pero",
    ]
)
_EN_HINTS: Final = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "you",
        "that",
        "it",
        "for",
        "on",
        "with",
        "are",
        "this",
        "be",
        "at",
        "or",
        "your",
        "can",
        "how",
    ]
)


def fold(text: str) -> str:
    """Lower case without accents ("Facturación" -> "facturacion"); ñ stays (año is not ano)."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("ñ", "\x00"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\x00", "ñ")


def words(text: str) -> list[str]:
    """The folded word tokens of `text`, stopwords included."""
    return _TOKEN.findall(fold(text))


@lru_cache(maxsize=200_000)
def stem(word: str, lang: str) -> str:
    """The Snowball stem of one folded word in `lang` (es/en; others as es)."""
    return str(_stemmer(lang if lang in _STEMMERS else "es").stemWord(word))


@lru_cache(maxsize=4)
def _stemmer(lang: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(_STEMMERS[lang])


def content_words(text: str) -> list[str]:
    """Folded tokens that carry meaning (no stopwords, no single letters)."""
    return [w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def terms(text: str, lang: str) -> list[str]:
    """Index terms of `text`: content words stemmed in `lang`."""
    return [stem(w, lang) for w in content_words(text)]


def detect_lang(text: str, default: str = "es") -> str:
    """`es` or `en` by counting function words (enough for a passage or a sentence)."""
    tokens = words(text)
    es = sum(1 for t in tokens if t in _ES_HINTS)
    en = sum(1 for t in tokens if t in _EN_HINTS)
    if es == en:
        return default
    return "es" if es > en else "en"
