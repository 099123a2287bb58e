"""The event contract: valid events pass, each malformed field is named."""

from __future__ import annotations

import pytest

from coach.events import EventError, parse_id, validate

pytestmark = pytest.mark.unit


def test_every_type_validates_a_realistic_example() -> None:
    examples = [
        {
            "type": "call.started",
            "callId": "c1",
            "agent": "200",
            "caller": {"number": "1", "name": "A"},
            "startedAt": 1,
            "lang": "es",
        },
        {"type": "call.ended", "callId": "c1", "endedAt": 2, "reason": "caller-hangup"},
        {
            "type": "partial",
            "callId": "c1",
            "speaker": "agent",
            "utteranceId": "u",
            "text": "ho",
            "start": 0,
            "end": 0.5,
        },
        {
            "type": "final",
            "callId": "c1",
            "speaker": "mix",
            "utteranceId": "u",
            "text": "hola",
            "start": 0,
            "end": 1,
            "confidence": 0.8,
            "lang": "es",
            "words": [{"w": "hola", "start": 0, "end": 1, "p": 0.9}],
        },
        {
            "type": "coach",
            "callId": "c1",
            "kind": "alert",
            "severity": "critical",
            "text": "¡Ojo!",
            "source": "rules",
            "ruleId": "churn",
            "refs": ["u"],
        },
        {
            "type": "summary",
            "callId": "c1",
            "text": "x",
            "disposition": "retained",
            "actionItems": ["llamar"],
            "sentiment": "negative",
        },
        {
            "type": "metrics",
            "callId": "c1",
            "talkRatio": {"agent": 0.4, "customer": 0.6},
            "silence": 1.5,
        },
    ]
    for event in examples:
        assert validate(event) == event


def test_unknown_fields_are_kept_for_newer_consumers() -> None:
    event = {"type": "call.ended", "callId": "c", "endedAt": 1, "reason": "error", "extra": {"a": 1}}
    assert validate(event)["extra"] == {"a": 1}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([], "event"),
        ({"type": "call.ended", "callId": "c", "endedAt": 1}, "reason"),
        ({"type": "call.ended", "callId": "", "endedAt": 1, "reason": "error"}, "callId"),
        ({"type": "call.ended", "callId": "c", "endedAt": float("nan"), "reason": "error"}, "endedAt"),
        ({"type": "call.ended", "callId": "c", "endedAt": True, "reason": "error"}, "endedAt"),
        ({"type": "call.ended", "callId": "c", "endedAt": 1, "reason": "hangup"}, "reason"),
        ({"type": "call.answered", "callId": "c", "answeredAt": 1}, "agent"),
        ({"type": "call.recording", "callId": "c", "state": "on", "at": 0}, "state"),
        (
            {
                "type": "call.started",
                "callId": "c",
                "agent": "1",
                "caller": {},
                "startedAt": 1,
                "lang": "es",
                "coached": "no",
            },
            "coached",
        ),
        (
            {
                "type": "call.started",
                "callId": "c",
                "agent": "1",
                "caller": {"number": 5},
                "startedAt": 1,
                "lang": "es",
            },
            "caller.number",
        ),
        (
            {
                "type": "coach",
                "callId": "c",
                "kind": "tip",
                "severity": "info",
                "text": "t",
                "source": "llm",
                "refs": [],
            },
            "ruleId",
        ),
        (
            {
                "type": "partial",
                "callId": "c",
                "speaker": "agent",
                "utteranceId": "u",
                "text": "x" * 9000,
                "start": 0,
                "end": 1,
            },
            "text",
        ),
    ],
)
def test_malformed_events_name_the_field(event: object, field: str) -> None:
    with pytest.raises(EventError) as err:
        validate(event)
    assert err.value.field == field


def test_ids_parse_and_order() -> None:
    assert parse_id("1700000000000-2") < parse_id("1700000000001-0")
    with pytest.raises(ValueError):
        parse_id("1700000000000")
