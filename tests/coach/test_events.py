"""The event contract: valid events pass as sent, each malformed field is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from coach.events import (
    DISPOSITIONS,
    END_REASONS,
    EVENT_TYPES,
    SENTIMENTS,
    CallStarted,
    EventError,
    FinalUtterance,
    Metrics,
    decode,
    parse_id,
    validate,
)

pytestmark = pytest.mark.unit

EXAMPLES: list[dict[str, Any]] = [
    {
        "type": "call.started",
        "callId": "c1",
        "agent": "200",
        "caller": {"number": "1", "name": "A"},
        "startedAt": 1,
        "lang": "es",
        "coached": True,
    },
    {"type": "call.answered", "callId": "c1", "agent": "201", "answeredAt": 1700000000123},
    {"type": "call.recording", "callId": "c1", "state": "stopped", "at": 12.5, "path": "/r/c1.wav"},
    {
        "type": "call.ended",
        "callId": "c1",
        "endedAt": 2,
        "reason": "caller-hangup",
        "recording": "/r/c1.wav",
    },
    {
        "type": "partial",
        "callId": "c1",
        "speaker": "agent",
        "utteranceId": "u",
        "text": "mi tarjeta es [card]",
        "start": 0,
        "end": 0.5,
        "redactions": [{"kind": "card", "start": 0.3, "end": 0.5, "charStart": 14, "charEnd": 20}],
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
        "type": "coach",
        "callId": "c1",
        "kind": "knowledge",
        "severity": "info",
        "text": "Tarifa plana",
        "source": "kb",
        "doc": {"id": "tarifas", "title": "Tarifas", "section": "Fibra", "url": "https://kb/t"},
        "score": 0.82,
        "cardId": "k1",
        "answer": {"text": "Cuesta 30 €.", "done": True, "cites": ["tarifas#2"]},
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
    {  # the shape orchestrator/callstate.py emits
        "type": "metrics",
        "callId": "c1",
        "callTime": 42.0,
        "talkRatio": {"agent": 0.4, "customer": 0.6},
        "longestSilence": 3.2,
        "silenceTotal": 6.5,
        "overtalk": {"count": 2, "seconds": 1.4},
        "speakers": {
            "agent": {"talkTime": 12.0, "utterances": 3, "words": 40, "wordsPerMinute": 200.0},
            "customer": {"talkTime": 18.0, "utterances": 4, "words": 50, "wordsPerMinute": 166.7},
        },
    },
]


def test_every_type_has_an_example() -> None:
    assert {e["type"] for e in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: str(e["type"]))
def test_every_type_validates_a_realistic_example_as_sent(event: dict[str, Any]) -> None:
    sent = copy.deepcopy(event)
    clean = validate(event)
    # What is stored is the producer's object: same values, same types (an int stays an int),
    # same key order; a copy, so stamping `ts` later does not touch the producer's dict.
    assert clean == sent and list(clean) == list(sent)
    assert [type(v) for v in clean.values()] == [type(v) for v in sent.values()]
    assert clean is not event and event == sent


def test_unknown_fields_are_kept_for_newer_consumers() -> None:
    event = {
        "type": "call.ended",
        "callId": "c",
        "endedAt": 1,
        "reason": "error",
        "extra": {"a": 1},
    }
    assert validate(event)["extra"] == {"a": 1}
    started = {**EXAMPLES[0], "caller": {"number": "1", "vip": True}}
    assert validate(started)["caller"] == {"number": "1", "vip": True}


def test_nulls_of_optional_fields_pass_and_of_required_ones_are_missing() -> None:
    assert validate({**EXAMPLES[0], "coached": None, "ts": None})["coached"] is None
    with pytest.raises(EventError) as err:
        validate({**EXAMPLES[0], "agent": None})
    assert (err.value.field, err.value.message) == ("agent", "is required")


def test_ids_are_the_bus_s_to_give() -> None:
    with pytest.raises(EventError) as err:
        validate({**EXAMPLES[3], "id": "1-1"})
    assert err.value.field == "id"
    assert validate({**EXAMPLES[3], "id": "1-1"}, require_id=True)["id"] == "1-1"
    for bad in (None, "1", 5):
        with pytest.raises(EventError) as err:
            validate({**EXAMPLES[3], "id": bad}, require_id=True)
        assert err.value.field == "id"


def _final(**change: Any) -> dict[str, Any]:
    return {**EXAMPLES[5], **change}


def _metrics(**change: Any) -> dict[str, Any]:
    return {**EXAMPLES[-1], **change}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([], "event"),
        ({"callId": "c"}, "type"),
        ({"type": "nonsense", "callId": "c"}, "type"),
        ({"type": "call.ended", "callId": "c", "endedAt": 1}, "reason"),
        ({"type": "call.ended", "callId": "", "endedAt": 1, "reason": "error"}, "callId"),
        ({"type": "call.ended", "endedAt": 1, "reason": "error"}, "callId"),
        (
            {"type": "call.ended", "callId": "c", "endedAt": float("nan"), "reason": "error"},
            "endedAt",
        ),
        (
            {"type": "call.ended", "callId": "c", "endedAt": float("inf"), "reason": "error"},
            "endedAt",
        ),
        ({"type": "call.ended", "callId": "c", "endedAt": True, "reason": "error"}, "endedAt"),
        ({"type": "call.ended", "callId": "c", "endedAt": 1, "reason": "hangup"}, "reason"),
        ({"type": "call.ended", "callId": "c", "endedAt": 1, "reason": "error", "ts": -1}, "ts"),
        ({"type": "call.answered", "callId": "c", "answeredAt": 1}, "agent"),
        ({"type": "call.answered", "callId": "c", "agent": "  ", "answeredAt": 1}, "agent"),
        ({"type": "call.recording", "callId": "c", "state": "on", "at": 0}, "state"),
        ({**EXAMPLES[0], "coached": "no"}, "coached"),
        ({**EXAMPLES[0], "caller": {"number": 5}}, "caller.number"),
        ({**EXAMPLES[0], "caller": "600"}, "caller"),
        (_final(speaker="robot"), "speaker"),
        (_final(confidence=1.5), "confidence"),
        (_final(start=3.0, end=1.0), "end"),
        (_final(text="x" * 9000), "text"),
        (_final(words=[{"w": "x", "start": 0, "end": "late"}]), "words[0].end"),
        (_final(words=[{"w": "x", "start": 0}]), "words[0].end"),
        (_final(words=[{"w": "x", "start": 0, "end": 1}] * 2001), "words"),
        (
            {
                **EXAMPLES[4],
                "redactions": [{"kind": "pin", "start": 0, "end": 1, "charStart": 0, "charEnd": 1}],
            },
            "redactions[0].kind",
        ),
        (
            {
                **EXAMPLES[4],
                "redactions": [
                    {"kind": "card", "start": 0, "end": 1, "charStart": 0, "charEnd": 99}
                ],
            },
            "redactions[0].charEnd",
        ),
        ({**EXAMPLES[6], "ruleId": None}, "ruleId"),
        ({**EXAMPLES[6], "refs": "u"}, "refs"),
        ({**EXAMPLES[7], "score": 2}, "score"),
        ({**EXAMPLES[7], "doc": {"title": "T"}}, "doc.id"),
        ({**EXAMPLES[7], "answer": {"text": "a", "done": "yes", "cites": []}}, "answer.done"),
        ({**EXAMPLES[8], "disposition": "retenido"}, "disposition"),
        ({**EXAMPLES[8], "sentiment": "angry"}, "sentiment"),
        ({**EXAMPLES[8], "actionItems": [3]}, "actionItems[0]"),
        (_metrics(callTime=None), "callTime"),
        (_metrics(talkRatio={"agent": 1.2}), "talkRatio.agent"),
        (_metrics(talkRatio={"robot": 0.5}), "talkRatio"),
        (_metrics(overtalk={"count": 1.5, "seconds": 1}), "overtalk.count"),
        (_metrics(speakers={"agent": {"talk": 3}}), "speakers.agent.talkTime"),
        (_metrics(speakers={"agent": {"talkTime": -1}}), "speakers.agent.talkTime"),
    ],
)
def test_malformed_events_name_the_field(event: object, field: str) -> None:
    with pytest.raises(EventError) as err:
        validate(event)
    assert err.value.field == field
    assert str(err.value) == f"{field}: {err.value.message}"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"type": "x", "callId": "c"}, f"type: must be one of {', '.join(EVENT_TYPES)}"),
        (
            {"type": "call.ended", "callId": "a b", "endedAt": 1, "reason": "error"},
            "callId: must be 1-128 characters of letters, digits and ._:@-",
        ),
        (
            {"type": "call.ended", "callId": "c", "endedAt": 1, "reason": "hangup"},
            f"reason: must be one of {', '.join(END_REASONS)}",
        ),
        (
            {**EXAMPLES[8], "disposition": "ok"},
            f"disposition: must be one of {', '.join(DISPOSITIONS)}",
        ),
        ({**EXAMPLES[8], "sentiment": 1}, "sentiment: must be one of " + ", ".join(SENTIMENTS)),
        (_final(words=[{"w": "x", "start": 0, "end": "late"}]), "words[0].end: must be a number"),
        (_final(confidence=1.5), "confidence: must be between 0 and 1"),
        (_final(start=-1), "start: must be >= 0"),
        (_final(start=float("inf")), "start: must be finite"),
        (_final(text="x" * 8001), "text: is longer than 8000 characters"),
        (
            _final(words=[{"w": "x", "start": 0, "end": 1}] * 2001),
            "words: has more than 2000 items",
        ),
        (_final(utteranceId=""), "utteranceId: must not be empty"),
        ({**EXAMPLES[0], "caller": {"number": 5}}, "caller.number: must be a string"),
        ({**EXAMPLES[0], "coached": "no"}, "coached: must be true or false"),
        ({**EXAMPLES[0], "caller": []}, "caller: must be an object"),
        ({**EXAMPLES[6], "refs": "u"}, "refs: must be a list"),
        ({**EXAMPLES[0], "lang": None}, "lang: is required"),
        (_metrics(overtalk={"count": 1.5, "seconds": 1}), "overtalk.count: must be a whole number"),
        (
            _metrics(talkRatio={"robot": 0.5}),
            "talkRatio: has a key that must be one of customer, agent, mix",
        ),
        (
            {**EXAMPLES[6], "ruleId": None},
            "ruleId: a coach event needs ruleId (rules), model (llm) or doc (kb)",
        ),
    ],
)
def test_errors_say_what_is_wrong_in_words(event: dict[str, Any], error: str) -> None:
    with pytest.raises(EventError) as err:
        validate(event)
    assert str(err.value) == error


def test_decode_gives_a_typed_event_from_json() -> None:
    event = decode(
        b'{"type":"final","callId":"c","speaker":"agent","utteranceId":"u",'
        b'"text":"hola","start":0,"end":1.5,"confidence":0.9,"lang":"es","new":1}'
    )
    assert isinstance(event, FinalUtterance)
    assert (event.utterance_id, event.end, event.speaker) == ("u", 1.5, "agent")
    started = decode(
        '{"id":"5-0","type":"call.started","callId":"c","agent":"200",'
        '"caller":{},"startedAt":1,"lang":"es"}',
        require_id=True,
    )
    assert isinstance(started, CallStarted) and started.id == "5-0"
    metrics = decode(
        '{"type":"metrics","callId":"c","callTime":1,"talkRatio":{},"longestSilence":0,'
        '"silenceTotal":0,"overtalk":{"count":0,"seconds":0},"speakers":{}}'
    )
    assert isinstance(metrics, Metrics) and metrics.talk_ratio == {}
    with pytest.raises(EventError) as err:
        decode(b'{"type":"final","callId":"c"}')
    assert err.value.field == "speaker"
    with pytest.raises(EventError) as err:
        decode(b"{not json")
    assert err.value.field == "event"
    with pytest.raises(EventError) as err:
        decode(b'{"id":"5-0","type":"call.ended","callId":"c","endedAt":1,"reason":"error"}')
    assert err.value.field == "id"


def test_ids_parse_and_order() -> None:
    assert parse_id("1700000000000-2") < parse_id("1700000000001-0")
    with pytest.raises(ValueError):
        parse_id("1700000000000")
