"""The event contract (DESIGN.md "Events"): one place that says what every event looks like.

Every event type is a `msgspec.Struct` below, tagged on `type`; `Event` is their union and
`docs/events.schema.json` is generated from it (`python -m coach.schema`). Field names are the
JSON names (camelCase) through `rename="camel"`.

`validate` is called at every edge that accepts events from outside a process (relay
`POST /event`, the bus before storing). It checks the producer's object against the types and
returns a shallow copy *of that object*, never a re-encoded model: unknown fields are kept
(consumers ignore them) so that newer producers do not break older consumers, and what the bus
stores is what the producer sent. A malformed event raises `EventError` naming the first
offending field (a dotted path such as `words[0].end`).
"""

from __future__ import annotations

import re
from enum import Enum, StrEnum
from typing import Annotated, Any, Final, TypeAlias, get_args

import msgspec

MAX_EVENT_BYTES: Final = 64 * 1024
"""Largest serialized event accepted anywhere; a bigger one is refused, not truncated."""
MAX_TEXT_CHARS: Final = 8000
"""Longest single text field (an utterance, a tip, a summary)."""
MAX_NUMBER: Final = 2**53
"""Largest number accepted (the exact-integer range of a JSON double); refuses infinity."""

# Call ids end up in Redis keys and URLs: keep them to a safe alphabet.
CALL_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
CALL_ID_RE: Final = re.compile(CALL_ID_PATTERN)
# Bus-assigned ids are Redis stream ids: "<ms>-<seq>".
EVENT_ID_PATTERN: Final = r"^\d{1,20}-\d{1,20}$"
EVENT_ID_RE: Final = re.compile(EVENT_ID_PATTERN)
_NOT_BLANK: Final = r"\S"


class Speaker(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    MIX = "mix"
    """Both parties on one channel (no stereo tap)."""


class CoachKind(StrEnum):
    TIP = "tip"
    ALERT = "alert"
    COACH = "coach"
    KNOWLEDGE = "knowledge"
    """A knowledge-base card (`source: "kb"`)."""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class CoachSource(StrEnum):
    RULES = "rules"
    LLM = "llm"
    KB = "kb"


class EndReason(StrEnum):
    """Why a call ended (`call.ended.reason`)."""

    CALLER_HANGUP = "caller-hangup"
    AGENT_HANGUP = "agent-hangup"
    AGENT_BUSY = "agent-busy"
    AGENT_REJECTED = "agent-rejected"
    AGENT_NO_ANSWER = "agent-no-answer"
    AGENT_UNREACHABLE = "agent-unreachable"
    REPLAY_FINISHED = "replay-finished"
    FALLBACK = "fallback"
    """A call the dialplan connected without the app, seen ending."""
    ERROR = "error"


class RecordingState(StrEnum):
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    STOPPED = "stopped"


class Disposition(StrEnum):
    """The outcome of a call (`summary.disposition`)."""

    COMPLETED = "completed"
    RESOLVED = "resolved"
    RETAINED = "retained"
    """A customer who asked to leave and stays."""
    CANCELLATION_REQUESTED = "cancellation_requested"
    ESCALATED = "escalated"
    NO_CONVERSATION = "no_conversation"
    UNKNOWN = "unknown"
    """The summariser could not tell."""


class Sentiment(StrEnum):
    """The customer's sentiment over the call (`summary.sentiment`)."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"


class RedactionKind(StrEnum):
    """What a masked span was; the masked text reads `[kind]`."""

    CARD = "card"
    CVV = "cvv"
    EXPIRY = "expiry"
    NATIONAL_ID = "national_id"
    IBAN = "iban"
    PHONE = "phone"
    EMAIL = "email"
    DOB = "dob"


def _values(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in enum)


SPEAKERS: Final = _values(Speaker)
COACH_KINDS: Final = ("tip", "alert", "coach")
"""Kinds a playbook rule or the LLM may give (`knowledge` cards come from the knowledge base)."""
SEVERITIES: Final = _values(Severity)
COACH_SOURCES: Final = _values(CoachSource)
END_REASONS: Final = _values(EndReason)
"""Why a call ended (`call.ended.reason`)."""
RECORDING_STATES: Final = _values(RecordingState)
DISPOSITIONS: Final = _values(Disposition)
SENTIMENTS: Final = _values(Sentiment)
REDACTION_KINDS: Final = _values(RedactionKind)


Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
Text64 = Annotated[str, msgspec.Meta(max_length=64)]
Text128 = Annotated[str, msgspec.Meta(max_length=128)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
Text500 = Annotated[str, msgspec.Meta(max_length=500)]
Text1000 = Annotated[str, msgspec.Meta(max_length=1000)]
Text2000 = Annotated[str, msgspec.Meta(max_length=2000)]
# Strings that must not be empty or blank.
Name64 = Annotated[str, msgspec.Meta(max_length=64, pattern=_NOT_BLANK)]
Name128 = Annotated[str, msgspec.Meta(max_length=128, pattern=_NOT_BLANK)]
Name2000 = Annotated[str, msgspec.Meta(max_length=2000, pattern=_NOT_BLANK)]
Lang = Annotated[str, msgspec.Meta(max_length=16, pattern=_NOT_BLANK)]

CallId = Annotated[str, msgspec.Meta(pattern=CALL_ID_PATTERN)]
EventId = Annotated[str, msgspec.Meta(pattern=EVENT_ID_PATTERN)]
Seconds = Annotated[
    float, msgspec.Meta(ge=0, le=MAX_NUMBER, description="seconds (from call start, or a duration)")
]
EpochMs = Annotated[
    float, msgspec.Meta(ge=0, le=MAX_NUMBER, description="milliseconds since the Unix epoch")
]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_NUMBER)]
Rate = Annotated[float, msgspec.Meta(ge=0, le=MAX_NUMBER)]


class _Struct(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Fields spelt in camelCase on the wire; optional ones are absent, not null."""


class _Event(_Struct, tag_field="type", kw_only=True):
    """The envelope every event carries."""

    call_id: CallId
    ts: EpochMs | None = None
    """Server time, stamped by the bus when the producer leaves it out."""
    id: EventId | None = None
    """Assigned by the bus (monotonic per call, used to resume); producers must not set it."""

    def check(self) -> None:
        """Rules across fields, beyond what the types say; raises `EventError`."""


class Caller(_Struct, kw_only=True):
    number: Text64 | None = None
    name: Text128 | None = None


class CallStarted(_Event, tag="call.started", kw_only=True):
    agent: Name64
    """The dial target's agent id, e.g. `200`."""
    caller: Caller
    started_at: EpochMs
    lang: Lang
    coached: bool | None = None
    """False for a call the dialplan connected without the app."""


class CallAnswered(_Event, tag="call.answered", kw_only=True):
    """The endpoint that actually answered: behind a queue or a Local dial string it is not the
    dial target of call.started. The relay's agent filter follows it once present."""

    agent: Name64
    answered_at: EpochMs


class CallRecording(_Event, tag="call.recording", kw_only=True):
    state: RecordingState
    at: Seconds
    """Seconds from call start."""
    path: Text1000 | None = None
    """The recording's path (on `stopped`)."""


class CallEnded(_Event, tag="call.ended", kw_only=True):
    ended_at: EpochMs
    reason: EndReason
    recording: Text1000 | None = None
    """Path of the closed recording, if any."""


class Redaction(_Struct, kw_only=True):
    """A masked span: `start`/`end` in seconds, `charStart`/`charEnd` offsets in `text`."""

    kind: RedactionKind
    start: Seconds
    end: Seconds
    char_start: Count
    char_end: Count


class PartialUtterance(_Event, tag="partial", kw_only=True):
    speaker: Speaker
    utterance_id: Name128
    """Partials of one utterance share it; the `final` with that id replaces them."""
    text: Text
    start: Seconds
    """Seconds from call start."""
    end: Seconds
    redactions: Annotated[list[Redaction], msgspec.Meta(max_length=200)] | None = None

    def check(self) -> None:
        if self.end < self.start:
            raise EventError("end", "must not be before start")
        for i, span in enumerate(self.redactions or ()):
            if not span.char_start <= span.char_end <= len(self.text):
                raise EventError(
                    f"redactions[{i}].charEnd", "must be between charStart and the text's length"
                )


class Word(_Struct, kw_only=True):
    w: Text200
    start: Seconds
    end: Seconds
    p: Probability | None = None


class FinalUtterance(PartialUtterance, tag="final", kw_only=True):
    confidence: Probability
    lang: Lang
    words: Annotated[list[Word], msgspec.Meta(max_length=2000)] | None = None


class Doc(_Struct, kw_only=True):
    """The knowledge-base passage a card comes from."""

    id: Name128
    title: Text500
    section: Text500 | None = None
    url: Text2000 | None = None


class Answer(_Struct, kw_only=True):
    """The answer that fills a knowledge card (a later `coach` event with the same `cardId`)."""

    text: Text
    done: bool
    cites: Annotated[list[Text128], msgspec.Meta(max_length=200)]
    """Passage ids the answer cites."""


class Coach(_Event, tag="coach", kw_only=True):
    kind: CoachKind
    severity: Severity
    text: Name2000
    source: CoachSource
    rule_id: Text128 | None = None
    """The playbook rule (`source: "rules"`)."""
    model: Text200 | None = None
    """The model that wrote it (`source: "llm"`)."""
    doc: Doc | None = None
    """The passage (`source: "kb"`)."""
    score: Probability | None = None
    """Retrieval score of a knowledge card (shown when >= KB_MIN_SCORE)."""
    card_id: Text128 | None = None
    """A later event with the same `cardId` replaces the card."""
    answer: Answer | None = None
    refs: Annotated[list[Text128], msgspec.Meta(max_length=200)]
    """utteranceIds that triggered it."""

    def check(self) -> None:
        if not (self.rule_id or self.model or self.doc):
            raise EventError(
                "ruleId", "a coach event needs ruleId (rules), model (llm) or doc (kb)"
            )


class Summary(_Event, tag="summary", kw_only=True):
    text: Text
    disposition: Disposition
    action_items: Annotated[list[Text1000], msgspec.Meta(max_length=100)]
    sentiment: Sentiment


class Overtalk(_Struct, kw_only=True):
    count: Count
    seconds: Seconds


class SpeakerMetrics(_Struct, kw_only=True):
    talk_time: Seconds
    """Seconds this speaker talked."""
    utterances: Count | None = None
    words: Count | None = None
    words_per_minute: Rate | None = None


class Metrics(_Event, tag="metrics", kw_only=True):
    """Live talk accounting of a call (orchestrator/callstate.py `CallState.metrics`).

    `talkRatio` and `speakers` are keyed by speaker and hold only the speakers heard so far.
    """

    call_time: Seconds
    talk_ratio: dict[Speaker, Probability]
    """Each speaker's share of the talking; the shares sum to 1 once anyone has talked."""
    longest_silence: Seconds
    silence_total: Seconds
    overtalk: Overtalk
    speakers: dict[Speaker, SpeakerMetrics]


Event: TypeAlias = (
    CallStarted
    | CallAnswered
    | CallRecording
    | CallEnded
    | PartialUtterance
    | FinalUtterance
    | Coach
    | Summary
    | Metrics
)
"""Any event, told apart by its `type`."""

EVENT_CLASSES: Final[dict[str, type[_Event]]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(Event)
}
EVENT_TYPES: Final = tuple(EVENT_CLASSES)


class EventError(ValueError):
    """A malformed event. `field` names the offending field (dotted path) for the caller."""

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.index = index  # position in a batch, when there is one


def validate(event: Any, *, require_id: bool = False) -> dict[str, Any]:
    """Check an event against the contract; return a shallow copy or raise `EventError`.

    `ts` is optional on input (the bus stamps it); `id` is assigned by the bus and refused from
    producers unless `require_id` (events read back from the bus).
    """
    if not isinstance(event, dict):
        raise EventError("event", "must be a JSON object")
    _check_id(event.get("id"), "id" in event, require_id)
    cls = EVENT_CLASSES.get(event.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise EventError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    try:
        # To the member class, not the union: msgspec converts a dict to a tagged union
        # several times slower than to the class the tag names.
        typed = msgspec.convert(event, cls)
    except msgspec.ValidationError as exc:
        raise _translate(exc, event) from None
    typed.check()
    return dict(event)


_DECODER: Final = msgspec.json.Decoder(Event)


def decode(raw: bytes | str, *, require_id: bool = False) -> Event:
    """A typed event from its JSON text (unknown fields ignored); raises `EventError`."""
    try:
        typed = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise _translate(exc, msgspec.json.decode(raw)) from None
    except msgspec.DecodeError as exc:
        raise EventError("event", f"is not valid JSON ({exc})") from None
    _check_id(typed.id, typed.id is not None, require_id)
    typed.check()
    return typed


def _check_id(value: object, present: bool, require_id: bool) -> None:
    if require_id:
        if not isinstance(value, str) or not EVENT_ID_RE.match(value):
            raise EventError("id", "must be a bus id like 1700000000000-0")
    elif present:
        raise EventError("id", "is assigned by the bus; producers must not set it")


def parse_id(event_id: str) -> tuple[int, int]:
    """Split a bus id into a comparable (milliseconds, sequence) pair; ValueError if malformed."""
    if not EVENT_ID_RE.match(event_id):
        raise ValueError(f"not an event id: {event_id!r}")
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def is_call_id(value: str) -> bool:
    """Whether `value` is an acceptable call id."""
    return bool(CALL_ID_RE.match(value))


# -- errors in our words ---------------------------------------------------------------------
# msgspec says e.g. "Expected `float`, got `str` - at `$.words[0].end`"; producers (and the
# relay's 400 answers) get "words[0].end: must be a number". Only failures pay for this.

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<type>\w+)(?: \| null)?`(?P<rest>.*)$")
_BOUND = re.compile(r"^ (?P<op>[<>]=?) (?P<n>-?[\d.e+]+)$")
_NOUNS: Final = {
    "str": "must be a string",
    "int": "must be a whole number",
    "float": "must be a number",
    "bool": "must be true or false",
    "object": "must be an object",
    "array": "must be a list",
}


def _translate(exc: msgspec.ValidationError, event: Any) -> EventError:
    etype = event.get("type") if isinstance(event, dict) else None
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any text
    what, path = m["what"], m["path"] or ""
    field = _name_keys(event, path.lstrip("."))
    missing = _MISSING.match(what)
    if missing:
        field = f"{field}.{missing['name']}" if field else missing["name"]
        return EventError(field, "is required")
    if m["key"]:
        return EventError(field, f"has a key that {_message(what, _key_type(etype, field))}")
    if not field:
        return EventError("event", "must be a JSON object")
    if field == "type":
        return EventError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    return EventError(field, _message(what, _field_type(etype, field)))


def _message(what: str, info: msgspec.inspect.Type | None) -> str:
    if isinstance(info, msgspec.inspect.EnumType) and "got `null`" not in what:
        return f"must be one of {', '.join(_values(info.cls))}"
    expected = _EXPECTED.match(what)
    if expected is None:
        return what
    kind, rest = expected["type"], expected["rest"]
    if rest.endswith("got `null`"):
        return "is required"
    if rest.startswith(","):
        return _NOUNS.get(kind, f"must be {kind}")
    if rest.startswith(" matching regex"):
        if CALL_ID_PATTERN in rest:
            return "must be 1-128 characters of letters, digits and ._:@-"
        if EVENT_ID_PATTERN in rest:
            return "must be a bus id like 1700000000000-0"
        return "must not be empty"
    length = re.match(r"^ of length <= (\d+)$", rest)
    if length:
        unit = "characters" if kind == "str" else "items"
        return (
            f"is longer than {length[1]} {unit}"
            if kind == "str"
            else f"has more than {length[1]} {unit}"
        )
    bound = _BOUND.match(rest)
    if bound:
        limit = float(bound["n"])
        if limit >= MAX_NUMBER:
            return "must be finite"
        if isinstance(info, msgspec.inspect.FloatType) and info.le == 1 and info.ge == 0:
            return "must be between 0 and 1"
        return f"must be {bound['op']} {limit:g}"
    return what


def _name_keys(event: Any, field: str) -> str:
    """msgspec says `speakers[...].talkTime` for a value in a dict: find which key it was."""
    while "[...]" in field:
        head, _, tail = field.partition("[...]")
        parts = _PARTS.findall(head)
        mapping = _walk(event, parts)
        bad = "?"
        if isinstance(mapping, dict):
            for key, value in mapping.items():
                try:
                    msgspec.convert(_replace(event, parts, {key: value}), Event)
                except msgspec.ValidationError:
                    bad = str(key)
                    break
        field = f"{head}.{bad}{tail}"
    return field


_PARTS: Final = re.compile(r"[^.\[\]]+|\[\d+\]")


def _walk(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if part.startswith("[") and isinstance(value, list):
            value = value[int(part[1:-1])]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _replace(value: Any, parts: list[str], new: Any) -> Any:
    """A copy of `value` with the item at `parts` replaced (shallow copies along the path)."""
    if not parts:
        return new
    part, rest = parts[0], parts[1:]
    if part.startswith("["):
        i = int(part[1:-1])
        return [*value[:i], _replace(value[i], rest, new), *value[i + 1 :]]
    return {**value, part: _replace(value[part], rest, new)}


def _field_type(etype: object, field: str) -> msgspec.inspect.Type | None:
    """The declared type of a dotted field path (`words[0].end`) of an event type."""
    cls = EVENT_CLASSES.get(etype) if isinstance(etype, str) else None
    info: msgspec.inspect.Type | None = msgspec.inspect.type_info(cls) if cls else None
    for part in _PARTS.findall(field):
        info = _unwrap(info)
        if part.startswith("["):
            info = info.item_type if isinstance(info, msgspec.inspect.ListType) else None
        elif isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == part), None)
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
    return _unwrap(info)


def _key_type(etype: object, field: str) -> msgspec.inspect.Type | None:
    info = _field_type(etype, field)
    return _unwrap(info.key_type) if isinstance(info, msgspec.inspect.DictType) else None


def _unwrap(info: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    """The type under `X | None` and `Annotated[X, Meta]`."""
    while True:
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        elif isinstance(info, msgspec.inspect.UnionType):
            rest = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(rest) != 1:
                return info
            info = rest[0]
        else:
            return info
