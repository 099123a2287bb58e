"""Does a decoded utterance look finished? Decides whether a short pause may end it.

Whisper marks a sentence end with `.`, `?` or `!`, but on audio cut right after the last word
it often writes no punctuation at all ("Entrando a la conferencia número"). A text with no
punctuation is taken as finished unless its last word is one a sentence cannot end on (an
article, a preposition, a conjunction...): "quiero cancelar el" is a speaker mid-sentence.
A trailing comma, colon, dash or ellipsis always means more is coming.
"""

from __future__ import annotations

from stt.repair import word_key

_SENTENCE_END = (".", "?", "!")
_CONTINUES = (",", ";", ":", "-", "—")
# Whisper's mark for a word cut off or a voice trailing away ("la clave de entrar a par...").
_TRAILS_OFF = ("...", "…")

# Words a Spanish or English sentence practically never ends on.
DANGLING = frozenset(
    [
        "a",
        "al",
        "algo",
        "algún",
        "alguna",
        "ante",
        "bajo",
        "cada",
        "como",
        "con",
        "contra",
        "cual",
        "cuando",
        "de",
        "del",
        "desde",
        "donde",
        "durante",
        "e",
        "el",
        "en",
        "entre",
        "era",
        "es",
        "esa",
        "ese",
        "esta",
        "este",
        "está",
        "fue",
        "ha",
        "hacia",
        "han",
        "hasta",
        "hay",
        "he",
        "la",
        "las",
        "le",
        "les",
        "lo",
        "los",
        "me",
        "mi",
        "mis",
        "muy",
        "más",
        "nos",
        "nuestra",
        "nuestro",
        "o",
        "para",
        "pero",
        "por",
        "porque",
        "que",
        "qué",
        "se",
        "sea",
        "ser",
        "si",
        "sin",
        "sobre",
        "son",
        "su",
        "sus",
        "también",
        "te",
        "tras",
        "tu",
        "tus",
        "u",
        "un",
        "una",
        "unas",
        "uno",
        "unos",
        "y",
        "ya",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "because",
        "but",
        "by",
        "for",
        "from",
        "had",
        "has",
        "have",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "then",
        "to",
        "was",
        "we",
        "were",
        "when",
        "which",
        "while",
        "who",
        "with",
        "would",
        "you",
        "your",
    ]
)


def looks_finished(text: str) -> bool:
    """Whether `text` reads as a complete utterance (see the module docstring)."""
    t = text.rstrip()
    if not t:
        return False
    if t.endswith(_TRAILS_OFF):
        return False
    if t.endswith(_SENTENCE_END):
        return True
    if t.endswith(_CONTINUES):
        return False
    last = word_key(t.split()[-1])
    return bool(last) and last not in DANGLING
