"""The event contract (DESIGN.md "Events"): one place that says what every event looks like.

Events travel as JSON objects. `validate` is called at every edge that accepts events from
outside a process (relay `POST /event`, the bus before storing); it returns a clean copy or
raises `EventError` naming the first offending field. Unknown fields are kept (consumers ignore
them) so that newer producers do not break older consumers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

EVENT_TYPES: Final = (
    "call.started",
    "call.answered",
    "call.recording",
    "call.ended",
    "partial",
    "final",
    "coach",
    "summary",
    "metrics",
)
SPEAKERS: Final = ("customer", "agent", "mix")
COACH_KINDS: Final = ("tip", "alert", "coach")
SEVERITIES: Final = ("info", "warning", "critical")
COACH_SOURCES: Final = ("rules", "llm")
END_REASONS: Final = (
    "caller-hangup",
    "agent-hangup",
    "agent-busy",
    "agent-rejected",
    "agent-no-answer",
    "agent-unreachable",
    "replay-finished",
    "fallback",
    "error",
)
"""Why a call ended (`call.ended.reason`)."""
RECORDING_STATES: Final = ("started", "paused", "resumed", "stopped")

MAX_EVENT_BYTES: Final = 64 * 1024
"""Largest serialized event accepted anywhere; a bigger one is refused, not truncated."""
MAX_TEXT_CHARS: Final = 8000
"""Longest single text field (an utterance, a tip, a summary)."""

# Call ids end up in Redis keys and URLs: keep them to a safe alphabet.
CALL_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# Bus-assigned ids are Redis stream ids: "<ms>-<seq>".
EVENT_ID_RE: Final = re.compile(r"^\d{1,20}-\d{1,20}$")


class EventError(ValueError):
    """A malformed event. `field` names the offending field (dotted path) for the caller."""

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.index = index  # position in a batch, when there is one


Check = Callable[[str, Any], None]


def _string(max_chars: int = MAX_TEXT_CHARS, allow_empty: bool = True) -> Check:
    def check(field: str, value: Any) -> None:
        if not isinstance(value, str):
            raise EventError(field, "must be a string")
        if not allow_empty and not value.strip():
            raise EventError(field, "must not be empty")
        if len(value) > max_chars:
            raise EventError(field, f"is longer than {max_chars} characters")

    return check


def _number(lo: float | None = None) -> Check:
    def check(field: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventError(field, "must be a number")
        if not math.isfinite(value):
            raise EventError(field, "must be finite")
        if lo is not None and value < lo:
            raise EventError(field, f"must be >= {lo}")

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(field: str, value: Any) -> None:
        if value not in choices:
            raise EventError(field, f"must be one of {', '.join(choices)}")

    return check


def _boolean(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise EventError(field, "must be true or false")


def _probability(field: str, value: Any) -> None:
    _number(0)(field, value)
    if value > 1:
        raise EventError(field, "must be between 0 and 1")


def _object(spec: Mapping[str, tuple[bool, Check]]) -> Check:
    def check(field: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise EventError(field, "must be an object")
        _check_fields(value, spec, prefix=f"{field}.")

    return check


def _list_of(item: Check, max_items: int) -> Check:
    def check(field: str, value: Any) -> None:
        if not isinstance(value, list):
            raise EventError(field, "must be a list")
        if len(value) > max_items:
            raise EventError(field, f"has more than {max_items} items")
        for i, element in enumerate(value):
            item(f"{field}[{i}]", element)

    return check


_TIME = _number(0)
_WORD = _object(
    {
        "w": (True, _string(200)),
        "start": (True, _TIME),
        "end": (True, _TIME),
        "p": (False, _probability),
    }
)
_UTTERANCE: dict[str, tuple[bool, Check]] = {
    "speaker": (True, _one_of(SPEAKERS)),
    "utteranceId": (True, _string(128, allow_empty=False)),
    "text": (True, _string()),
    "start": (True, _TIME),
    "end": (True, _TIME),
}

# Per type: field -> (required, check). Envelope fields are checked separately.
SCHEMAS: Final[dict[str, dict[str, tuple[bool, Check]]]] = {
    "call.started": {
        "agent": (True, _string(64, allow_empty=False)),
        "caller": (True, _object({"number": (False, _string(64)), "name": (False, _string(128))})),
        "startedAt": (True, _TIME),
        "lang": (True, _string(16, allow_empty=False)),
        "coached": (False, _boolean),
    },
    # The endpoint that actually answered: behind a queue or a Local dial string it is not the
    # dial target of call.started. The relay's agent filter follows it once present.
    "call.answered": {
        "agent": (True, _string(64, allow_empty=False)),
        "answeredAt": (True, _TIME),
    },
    "call.recording": {
        "state": (True, _one_of(RECORDING_STATES)),
        "at": (True, _TIME),
        "path": (False, _string(1000)),
    },
    "call.ended": {
        "endedAt": (True, _TIME),
        "reason": (True, _one_of(END_REASONS)),
        "recording": (False, _string(1000)),
    },
    "partial": dict(_UTTERANCE),
    "final": {
        **_UTTERANCE,
        "confidence": (True, _probability),
        "lang": (True, _string(16, allow_empty=False)),
        "words": (False, _list_of(_WORD, 2000)),
    },
    "coach": {
        "kind": (True, _one_of(COACH_KINDS)),
        "severity": (True, _one_of(SEVERITIES)),
        "text": (True, _string(2000, allow_empty=False)),
        "source": (True, _one_of(COACH_SOURCES)),
        "ruleId": (False, _string(128)),
        "model": (False, _string(200)),
        "refs": (True, _list_of(_string(128), 200)),
    },
    "summary": {
        "text": (True, _string()),
        "disposition": (True, _string(200)),
        "actionItems": (True, _list_of(_string(1000), 100)),
        "sentiment": (True, _string(64)),
    },
    # Metrics are free-form per speaker; the shape is owned by the orchestrator.
    "metrics": {},
}


def _check_fields(
    event: Mapping[str, Any], spec: Mapping[str, tuple[bool, Check]], prefix: str = ""
) -> None:
    for name, (required, check) in spec.items():
        if name not in event or event[name] is None:
            if required:
                raise EventError(prefix + name, "is required")
            continue
        check(prefix + name, event[name])


def validate(event: Any, *, require_id: bool = False) -> dict[str, Any]:
    """Check an event against the contract; return a shallow copy or raise `EventError`.

    `ts` is optional on input (the bus stamps it); `id` is assigned by the bus and refused from
    producers unless `require_id` (events read back from the bus).
    """
    if not isinstance(event, dict):
        raise EventError("event", "must be a JSON object")
    etype = event.get("type")
    if etype not in SCHEMAS:
        raise EventError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    call_id = event.get("callId")
    if not isinstance(call_id, str) or not CALL_ID_RE.match(call_id):
        raise EventError("callId", "must be 1-128 characters of letters, digits and ._:@-")
    if "ts" in event and event["ts"] is not None:
        _number(0)("ts", event["ts"])
    if require_id:
        if not isinstance(event.get("id"), str) or not EVENT_ID_RE.match(event["id"]):
            raise EventError("id", "must be a bus id like 1700000000000-0")
    elif "id" in event:
        raise EventError("id", "is assigned by the bus; producers must not set it")
    _check_fields(event, SCHEMAS[etype])
    if etype in ("partial", "final") and event["end"] < event["start"]:
        raise EventError("end", "must not be before start")
    if etype == "coach" and not (event.get("ruleId") or event.get("model")):
        raise EventError("ruleId", "a coach event needs ruleId (rules) or model (llm)")
    if etype == "metrics":
        for name, value in event.items():
            if name not in ("type", "callId", "ts", "id") and not isinstance(
                value, (dict, list, int, float, str)
            ):
                raise EventError(name, "must be a JSON value")
    return dict(event)


def parse_id(event_id: str) -> tuple[int, int]:
    """Split a bus id into a comparable (milliseconds, sequence) pair; ValueError if malformed."""
    if not EVENT_ID_RE.match(event_id):
        raise ValueError(f"not an event id: {event_id!r}")
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def is_call_id(value: str) -> bool:
    """Whether `value` is an acceptable call id."""
    return bool(CALL_ID_RE.match(value))
