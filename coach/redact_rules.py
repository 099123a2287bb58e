"""The words that say what a number is, in Spanish and English (folded: lower case, no accents).

A number's kind comes from the nearest of these phrases before it in the utterance (or, when the
utterance starts with the number, from the end of the speaker's previous final): "el código de
seguridad es ..." makes what follows a CVV, "el pedido ..." a reference kept in clear.
"""

from __future__ import annotations

from typing import Final

from coach.events import RedactionKind

Phrase = tuple[str, ...]

PAYMENT: Final = "payment"
"""Not a mask kind: the speaker is paying; a run of 4+ digits is then a card number."""
KEEP: Final = "keep"
"""Not a mask kind: a reference the business keeps (order, ticket): left in clear."""


def _phrases(*items: str) -> tuple[Phrase, ...]:
    return tuple(tuple(item.split()) for item in items)


KEYWORDS: Final[dict[str, tuple[Phrase, ...]]] = {
    RedactionKind.CVV: _phrases(
        "cvv", "cvc", "cvv2", "cvc2", "c v v", "c v c", "ce uve uve", "cv", "codigo de seguridad",
        "codigo de verificacion", "numero de seguridad", "codigo cvv", "digitos de atras",
        "digitos del reverso", "digitos de detras", "numeros de atras", "numeritos de atras",
        "security code", "verification code", "card verification", "digits on the back",
        "numbers on the back", "three digit code", "3 digit code", "code on the back",
        "on the back", "de detras", "codigo de atras", "codigo de detras", "numero de atras",
    ),
    RedactionKind.EXPIRY: _phrases(
        "caducidad", "caduca", "caducan", "vencimiento", "vence", "expiracion", "expira",
        "valida hasta", "expiry", "expiration", "expires", "expire", "exp", "valid thru",
        "valid through", "valid until", "good thru",
    ),
    RedactionKind.DOB: _phrases(
        "fecha de nacimiento", "naci", "nacia", "nacio", "naciste", "nacido", "nacida", "nacimiento", "cumpleaños",
        "cumpleanos", "date of birth", "born", "birthday", "dob", "d o b", "birth date",
    ),
    RedactionKind.PHONE: _phrases(
        "telefono", "movil", "celular", "numero de contacto", "fijo", "whatsapp", "phone",
        "mobile", "cell", "contact number", "callback number", "call me at", "call me on",
        "reach me at", "llamarme al", "llamame al", "llamadme al", "llamar al", "llamarle al",
        "extension", "phone number",
    ),
    RedactionKind.NATIONAL_ID: _phrases(
        "dni", "nie", "nif", "documento de identidad", "documento nacional", "identidad",
        "pasaporte", "curp", "rfc", "clave unica", "ssn", "social security", "seguro social",
        "id number", "passport", "identificacion", "cedula", "d n i", "n i e", "n i f",
        "de ene i", "ene i e", "registro federal",
    ),
    RedactionKind.IBAN: _phrases(
        "iban", "numero de cuenta", "cuenta bancaria", "cuenta corriente", "account number",
        "bank account", "i b a n", "ccc",
    ),
    PAYMENT: _phrases(
        "tarjeta", "visa", "mastercard", "master card", "amex", "american express", "credito",
        "debito", "pagar", "pago", "cobrar", "cobro", "card", "credit", "debit", "pay",
        "payment", "long number", "dieciseis digitos", "16 digitos", "sixteen digits",
        "16 digits", "numero largo", "los digitos", "the digits",
    ),
}  # fmt: skip

DEFAULT_KEEP: Final = (
    "pedido", "numero de pedido", "ticket", "incidencia", "referencia", "expediente", "caso",
    "factura", "localizador", "reserva", "seguimiento", "albaran", "order", "order number",
    "reference", "case", "case number", "tracking", "booking", "invoice", "confirmation number",
)  # fmt: skip
"""References kept in clear by default (REDACT_KEEP_AFTER)."""

UNITS_AFTER: Final = frozenset(
    [
        "euros",
        "euro",
        "eur",
        "€",
        "$",
        "%",
        "dolares",
        "dolar",
        "pesos",
        "peso",
        "libras",
        "centimos",
        "centavos",
        "dollars",
        "dollar",
        "bucks",
        "pounds",
        "cents",
        "minutos",
        "minuto",
        "min",
        "segundos",
        "segundo",
        "horas",
        "hora",
        "dias",
        "dia",
        "semanas",
        "semana",
        "meses",
        "mes",
        "años",
        "año",
        "minutes",
        "minute",
        "seconds",
        "second",
        "hours",
        "hour",
        "days",
        "day",
        "weeks",
        "week",
        "months",
        "month",
        "years",
        "year",
        "gigas",
        "giga",
        "gb",
        "megas",
        "mb",
        "kilos",
        "kg",
        "metros",
        "km",
        "percent",
        "veces",
        "times",
        "cuotas",
        "plazos",
        "lineas",
        "lines",
    ]
)
"""A number followed by one of these is an amount, a duration or an age: kept."""

MONTHS: Final = frozenset(
    [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "setiembre",
        "octubre",
        "noviembre",
        "diciembre",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
DATE_JOINERS: Final = frozenset(
    [
        "de",
        "del",
        "el",
        "of",
        "the",
        "/",
        "-",
        ".",
        ",",
        "th",
        "st",
        "nd",
        "rd",
        "año",
        "ano",
        "en",
        "in",
    ]
)
ORDINALS: Final = frozenset(
    [
        "primero",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
        "thirtieth",
    ]
)
"""Day ordinals in spoken dates ("July fourth", "twenty first": "twenty" is a number)."""

BRIDGES: Final = frozenset(
    [
        "eh",
        "em",
        "ehm",
        "mm",
        "mmm",
        "um",
        "uh",
        "er",
        "este",
        "perdon",
        "digo",
        "no",
        "sorry",
        "i",
        "mean",
        "o",
        "sea",
        "vale",
        "ok",
        "perdona",
        "espera",
        "wait",
    ]
)
"""Fillers and corrections a caller says between the digits of one number."""
BRIDGE_MAX: Final = 3

LETTER_NAMES: Final = {
    "a": "a", "be": "b", "ce": "c", "de": "d", "e": "e", "efe": "f", "ge": "g", "hache": "h",
    "i": "i", "jota": "j", "ka": "k", "ele": "l", "eme": "m", "ene": "n", "eñe": "ñ", "o": "o",
    "pe": "p", "cu": "q", "erre": "r", "ere": "r", "ese": "s", "te": "t", "u": "u", "uve": "v",
    "ve": "v", "equis": "x", "ye": "y", "zeta": "z", "ceta": "z", "griega": "y",
}  # fmt: skip
"""Spanish letter names, as a caller spells an id's letter ("equis", "zeta")."""

EMAIL_AT: Final = frozenset({"arroba", "@", "at"})
EMAIL_WORDS: Final = frozenset({"correo", "email", "mail", "emails", "correos"})
"""Words that announce an address: a dotted name right after one is an address even when
Whisper lost its "arroba" ("My email is john.smithtmell.com")."""
EMAIL_DOT: Final = frozenset({"punto", "dot", "."})
EMAIL_JOIN: Final = frozenset(
    {"punto", "dot", ".", "guion", "guiones", "bajo", "underscore", "dash", "hyphen", "-", "_"}
)
EMAIL_STOP: Final = frozenset(
    [
        "es",
        "is",
        "mi",
        "my",
        "correo",
        "email",
        "mail",
        "e",
        "electronico",
        "el",
        "la",
        "a",
        "y",
        "and",
        "or",
        "o",
        "de",
        "del",
        "con",
        "with",
        "me",
        "al",
        "address",
        "direccion",
        "envia",
        "send",
        "manda",
        "escribe",
        "write",
        ":",
        ",",
    ]
)
"""Words that cannot be the first part of an address spoken before "arroba"."""
