"""Does a customer's final ask something? A detector for Spanish and English.

A final asks when it carries a question mark (Whisper writes "¿...?" and "?" for questions it
hears, not always), opens with an interrogative or an auxiliary that starts a question
("¿cuánto...", "puedo...", "how...", "can I..."), holds an accented interrogative ("..., cuánto
me cobran"), wraps a question or a request in a phrase ("quería saber...", "me gustaría...",
"quería añadir...", "I was wondering...", "I want to..."), or tells a problem the caller wants
fixed ("el wifi va lentísimo", "me pide el PUK", "my internet is down"). A final of fewer than
three words asks only with its marks or a phrase ("una pregunta"). Whether the
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
# Spanish interrogatives as the STT writes them without accents; see _ACCENTED.
_SPANISH_WH: Final = frozenset(
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
    ]
)
_OPENERS: Final = _SPANISH_WH | frozenset(
    [
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


# The STT often drops the question marks (a question heard without its rising end), but keeps
# the accents: an accented interrogative anywhere ("..., cuánto me cobran", "a qué hora") asks,
# as does an English one opening a clause after a comma ("my internet is down, what do I do").
_INTERROGATIVE: Final = re.compile(
    r"(?:^|[\s,;:¿(])(?:qué|cómo|cuánt[oa]s?|cuándo|dónde|adónde|cuál(?:es)?|quién(?:es)?)\b"
)
_ACCENTED: Final = _SPANISH_WH
"""Openers that are conjunctions without their accent ("que", "como"): they ask only with it."""
_CLAUSE_EN: Final = re.compile(
    r",\s*(?:what|how|when|where|why|which|who|can|could|do|does|is|are|should|will)\b"
)
# Speaking to the company in the second person plural ("¿me lo igualáis?", "me habéis
# cobrado..."): a request or a complaint about the service, which the KB may answer.
_VOSOTROS: Final = re.compile(r"\b\w+(?:áis|éis)\b")
# A wish to do something ("quería añadir otra línea", "quiero cambiar..."): an infinitive.
_WANT: Final = re.compile(
    r"\b(?:queria|quiero|quisiera|querria|quisieramos)\s+(?:\w+\s+)?\w+(?:ar|er|ir)\b"
)
# A problem told rather than asked ("el wifi va lentísimo", "me pide el PUK"): the caller
# wants the fix. Folded text.
_PROBLEMS: Final = tuple(
    fold(p)
    for p in (
        "no funciona",
        "no me funciona",
        "no va",
        "no me va",
        "va lento",
        "va muy lento",
        "lentísimo",
        "se corta",
        "se me corta",
        "no me llega",
        "no me deja",
        "no navega",
        "no me navega",
        "no tengo internet",
        "no tengo línea",
        "no tengo cobertura",
        "sin internet",
        "sin conexión",
        "sin cobertura",
        "parpadea",
        "me pide",
        "me he equivocado",
        "no me acuerdo",
        "he olvidado",
        "se me ha olvidado",
        "me han cobrado",
        "me cobraron",
        "me han subido",
        "me han robado",
        "he perdido",
        "quiero que",
        "no quiero",
        "quiero hablar",
        "quiero algo",
        "is not working",
        "isn't working",
        "not working",
        "doesn't work",
        "does not work",
        "is down",
        "asking for",
        "keeps",
        "i can't",
        "i cannot",
        "i forgot",
        "i lost",
        "charged me",
        "i was charged",
        "i'd like",
        "i need",
    )
)


# Spanish yes/no questions are statements in their words; the STT often writes them with a
# full stop ("Tienen algún paquete que junte fibra y móvil."). These verbs open one (after a
# pronoun: "me cobran algo si...") at the start of any clause; "puede(n)/puedo" and
# "funciona(n)" ask wherever they are ("mi móvil puede usar una SIM virtual").
_YES_NO: Final = frozenset(
    ["tienen", "teneis", "hay", "cobran", "cobrais", "incluye", "incluyen", "sirve", "vale"]
)
_CLITIC: Final = re.compile(r"^(?:(?:me|te|se|le|les|nos|os|lo|la)\s+)+")
_ANYWHERE: Final = re.compile(r"\b(?:puede|pueden|puedo|podeis|funciona|funcionan)\b")
_CLAUSE: Final = re.compile(r"[.,;:!]+\s*")


def _yes_no(folded: str) -> bool:
    """A clause opening with a yes/no question's verb, or such a verb anywhere (see above)."""
    if _ANYWHERE.search(folded):
        return True
    for clause in _CLAUSE.split(folded):
        words = _CLITIC.sub("", _LEADING.sub("", clause)).split()
        if len(words) >= 2 and words[0] in _YES_NO:
            return True
    return False


def is_question(text: str) -> bool:
    """Whether a final asks something (module docstring)."""
    if "?" in text or "¿" in text:
        return True
    folded = fold(text)
    stripped = _LEADING.sub("", folded)
    first = re.match(r"[a-zñ']+", stripped)
    if len(stripped.split()) < 3:
        return any(p in folded for p in _PHRASES)
    lower = text.lower()
    if first and first[0] in _OPENERS and first[0] not in _ACCENTED:
        return True
    if first and first[0] in _ACCENTED and _INTERROGATIVE.match(_LEADING.sub("", lower)):
        return True  # "qué..." asks, "que tenga un buen día" and "como le decía" do not
    if _INTERROGATIVE.search(lower) or _CLAUSE_EN.search(lower) or _VOSOTROS.search(lower):
        return True
    if _WANT.search(folded) or _yes_no(folded):
        return True
    return any(p in folded for p in (*_PHRASES, *_PROBLEMS))


def anaphoric(text: str) -> bool:
    """Whether a question needs the conversation's topic to be searched."""
    tokens = re.findall(r"[a-zñ]+", fold(text))
    return len(content_words(text)) < MIN_OWN_TERMS or any(t in _ANAPHORA for t in tokens)
