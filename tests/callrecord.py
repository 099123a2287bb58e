"""A whole call as bus events (started, answered, finals with words, coaching, metrics,
summary, ended), valid under the contract, for the call-record tests."""

from __future__ import annotations

from typing import Any

T0 = 1_764_000_000_000
"""startedAt of the first generated call (ms)."""

LINES_ES: tuple[tuple[str, str], ...] = (
    ("agent", "Buenos días, le atiende Marta, ¿en qué puedo ayudarle?"),
    ("customer", "Hola, quiero cancelar mi suscripción porque es muy cara"),
    ("agent", "Entiendo, antes de cancelar le puedo ofrecer un descuento"),
    ("customer", "No gracias, ya lo he decidido, quiero darme de baja"),
    ("agent", "De acuerdo, tramito la baja hoy mismo"),
    ("customer", "Muchas gracias por su ayuda"),
)
LINES_EN: tuple[tuple[str, str], ...] = (
    ("agent", "Good morning, this is Mark, how can I help you?"),
    ("customer", "I was charged twice for my last invoice"),
    ("agent", "I am sorry about that, I will refund the duplicate charge"),
    ("customer", "Thank you, that was quick"),
)


def words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Word timings spread evenly over the utterance."""
    tokens = text.split()
    step = (end - start) / max(1, len(tokens))
    return [
        {
            "w": w,
            "start": round(start + i * step, 2),
            "end": round(start + (i + 1) * step, 2),
            "p": 0.9,
        }
        for i, w in enumerate(tokens)
    ]


def call_events(
    call_id: str,
    agent: str = "200",
    lang: str = "es",
    lines: tuple[tuple[str, str], ...] | None = None,
    *,
    started_at: int = T0,
    gap: float = 5.0,
    rule: str = "cancel-intent",
    disposition: str = "cancellation_requested",
    sentiment: str = "negative",
    recording: str | None = None,
    answered_by: str | None = None,
) -> list[dict[str, Any]]:
    """Every event of one call, in order (utterance i starts at i * gap seconds)."""
    lines = lines or (LINES_EN if lang.startswith("en") else LINES_ES)
    evs: list[dict[str, Any]] = [
        {
            "type": "call.started",
            "callId": call_id,
            "agent": agent,
            "caller": {"number": "+34600111222", "name": "Ana"},
            "startedAt": started_at,
            "lang": lang,
        },
        {
            "type": "call.answered",
            "callId": call_id,
            "agent": answered_by or agent,
            "answeredAt": started_at + 2000,
        },
    ]
    for i, (speaker, text) in enumerate(lines):
        start = i * gap
        end = start + gap - 1.0
        utt = f"{speaker[0]}{i}"
        evs.append(
            {
                "type": "partial",
                "callId": call_id,
                "speaker": speaker,
                "utteranceId": utt,
                "text": text.split()[0],
                "start": start,
                "end": start + 0.5,
            }
        )
        evs.append(
            {
                "type": "final",
                "callId": call_id,
                "speaker": speaker,
                "utteranceId": utt,
                "text": text,
                "start": start,
                "end": end,
                "confidence": 0.91,
                "lang": lang,
                "words": words(text, start, end),
            }
        )
        if i == 1:
            evs.append(
                {
                    "type": "coach",
                    "callId": call_id,
                    "kind": "alert",
                    "severity": "warning",
                    "text": "Cancellation intent: offer the retention plan",
                    "source": "rules",
                    "ruleId": rule,
                    "refs": [utt],
                }
            )
    call_time = len(lines) * gap
    evs.append(
        {
            "type": "metrics",
            "callId": call_id,
            "callTime": call_time,
            "talkRatio": {"customer": 0.45, "agent": 0.55},
            "longestSilence": 1.0,
            "silenceTotal": float(len(lines)),
            "overtalk": {"count": 1, "seconds": 0.4},
            "speakers": {
                "agent": {"talkTime": 10.0, "utterances": 3, "words": 30, "wordsPerMinute": 150.0},
                "customer": {
                    "talkTime": 8.0,
                    "utterances": 3,
                    "words": 25,
                    "wordsPerMinute": 140.0,
                },
            },
        }
    )
    evs.append(
        {
            "type": "summary",
            "callId": call_id,
            "text": "The customer asked to cancel.",
            "disposition": disposition,
            "actionItems": ["Process the cancellation"],
            "sentiment": sentiment,
        }
    )
    evs.append(
        {
            "type": "call.ended",
            "callId": call_id,
            "endedAt": started_at + int(call_time * 1000),
            "reason": "caller-hangup",
            **({"recording": recording} if recording else {}),
        }
    )
    return evs
