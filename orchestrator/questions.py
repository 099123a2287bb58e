"""Does a customer's final ask something? A detector for Spanish and English.

A final asks when it carries a question mark (Whisper writes "¿...?" and "?" for questions it
hears), opens with an interrogative or an auxiliary that starts a question ("¿cuánto...",
"puedo...", "how...", "can I..."), or wraps a question or a request in a phrase ("quería
saber...", "me gustaría...", "necesito...", "I was wondering...", "I want to..."). Whether the
knowledge base has an answer is the retrieval score's business, not the detector's.

`anaphoric` says whether a question leans on what was said before ("¿y eso cuánto cuesta?",
"how much is it?"): then its search borrows the topic of the last few finals.
"""

from __future__ import annotations

import re
from typing import Final

from coach.knowledge.analysis import content_words, fold

# Words that open a question even without its question mark. Spanish yes/no questions need
# their marks (or a phrase below): "tiene...", "es..." open statements as often as questions.
_OPENERS: Final = frozenset(
    [
        "que",
        "como",
        "cuanto",
        "cuanta",
        "cuantos",
        "cuantas",
        "cuando",
        "donde",
        "adonde",
        "cual",
        "cuales",
        "quien",
        "quienes",
        "puedo",
        "puede",
        "pueden",
        "podria",
        "podrias",
        "podemos",
        "cobran",
        "cobrais",
        "sabe",
        "sabes",
        "existe",
        "what",
        "how",
        "when",
        "where",
        "why",
        "which",
        "who",
        "whom",
        "whose",
        "can",
        "could",
        "do",
        "does",
        "did",
        "is",
        "are",
        "was",
        "were",
        "will",
        "would",
        "should",
        "may",
        "might",
    ]
)
_PHRASES: Final = tuple(
    fold(p)
    for p in (
        "quería saber",
        "queria saber",
        "quisiera saber",
        "quiero saber",
        "me gustaría",
        "necesito saber",
        "necesito",
        "quería preguntar",
        "quiero preguntar",
        "una pregunta",
        "una duda",
        "tengo una duda",
        "no sé cómo",
        "no sé si",
        "no entiendo",
        "me puede decir",
        "me puede explicar",
        "me explica",
        "quiero darme de baja",
        "quiero cambiar",
        "quiero poner",
        "quería cambiar",
        "i want to know",
        "i'd like to know",
        "i would like to",
        "i was wondering",
        "i wonder",
        "i need to",
        "i want to",
        "tell me",
        "how do i",
        "i don't understand",
        "i have a question",
    )
)
_LEADING: Final = re.compile(
    r"^[\s¿¡,.]*(?:(?:y|e|pero|entonces|oiga|oye|mire|and|so|but|ok|vale|hola|hello|hi)\b[\s,]*)*",
    re.I,
)
_ANAPHORA: Final = frozenset(
    ["eso", "esto", "esa", "ese", "aquello", "ello", "it", "that", "this", "those", "these"]
)
MIN_OWN_TERMS: Final = 3
"""A question with fewer content words than this borrows context (it cannot stand alone)."""


def is_question(text: str) -> bool:
    """Whether a final asks something (module docstring)."""
    if "?" in text or "¿" in text:
        return True
    folded = fold(text)
    stripped = _LEADING.sub("", folded)
    first = re.match(r"[a-zñ']+", stripped)
    if first and first[0] in _OPENERS and len(stripped.split()) >= 3:
        return True
    return any(p in folded for p in _PHRASES)


def anaphoric(text: str) -> bool:
    """Whether a question needs the conversation's topic to be searched."""
    tokens = re.findall(r"[a-zñ]+", fold(text))
    return len(content_words(text)) < MIN_OWN_TERMS or any(t in _ANAPHORA for t in tokens)
