"""Redacting the transcript of record with the live path's redactor (coach/redact.py).

The call's utterances are masked in the order they were spoken, both speakers interleaved,
each speaker with its own `RedactionSession` and one `CallContext` shared by the two: the
agent's "¿me da el número de la tarjeta?" primes the customer's bare digits, as it does live.
Nothing unmasked leaves this module (it is what `store` writes).

The record masks as hard as a live partial does, on top of the final's rules: it is a second
hypothesis of the same speech, and a keyword it mishears loses the context the live final had
(seen: "código de seguridad es 9, 4, 7" decoded as "coño de seguinal es, 9, 4, 7", whose CVV the
final's rules alone leave in clear). So while a payment is being spoken of any number is
masked, and a trailing run of 3+ digits is too; the cost is the odd reference number masked
that the live transcript shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from coach.record.record_write import RecordUtterance
from coach.redact import CallContext, RedactConfig, RedactionSession, Span, apply
from second_pass.transcribe import RawUtterance


def mask(utterances: Iterable[RawUtterance], config: RedactConfig) -> list[RecordUtterance]:
    """The utterances redacted, in spoken order."""
    call = CallContext()
    sessions: dict[str, RedactionSession] = {}
    out: list[RecordUtterance] = []
    for u in sorted(utterances, key=lambda u: (u.start, u.speaker)):
        session = sessions.setdefault(u.speaker, RedactionSession(config, call))
        # The partial's rules first: they read the context and never change it.
        strict = session.spans(u.text, u.start, u.end, final=False)
        spans = union(session.spans(u.text, u.start, u.end, final=True), strict)
        masked = apply(u.text, spans, u.start, u.end, [dict(w) for w in u.words])
        out.append(
            RecordUtterance(
                speaker=u.speaker,
                start=u.start,
                end=u.end,
                text=masked.text,
                words=masked.words or [],
                confidence=u.confidence,
                redactions=masked.redactions,
            )
        )
    return out


def union(first: list[Span], more: list[Span]) -> list[Span]:
    """`first`, plus the spans of `more` that overlap none of them (`apply` takes disjoint
    spans; where both found one, the final's kind and extent win)."""
    out = list(first)
    for s in more:
        if all(s.end <= f.start or s.start >= f.end for f in out):
            out.append(s)
    return sorted(out, key=lambda s: s.start)
