"""Per-call state: a pure function of the call's event stream, so any replica can rebuild it.

`apply` folds one event in and returns the playbook hits it causes; replaying a call's stream
(`live=False`) rebuilds the same state without hits, and the orchestrator's own `coach` events
in the stream restore which rules already fired. Memory is bounded: the transcript keeps the
last `max_utterances`, interval windows are small deques, per-rule state is one entry per rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from orchestrator.pii import event_kinds, for_prompt
from orchestrator.playbook import Playbook, Rule
from orchestrator.playbook_store import PlaybookStore
from orchestrator.text import word_count

OVERLAP_WINDOW: Final = 12
"""Recent utterances per speaker compared for overtalk."""
DEADLINE_GRACE_MS: Final = 3000
"""Wait after a `required` deadline for the final that may still be on its way from STT."""


@dataclass(frozen=True)
class Utterance:
    """One final, masked by STT and again for prompts (orchestrator/pii.py)."""

    uid: str
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Hit:
    """A playbook rule that fired, with its rendered text and the utterances behind it."""

    rule: Rule
    text: str
    refs: tuple[str, ...]

    def event(self, call_id: str) -> dict[str, Any]:
        """The `coach` event for this hit."""
        return {
            "type": "coach",
            "callId": call_id,
            "kind": self.rule.kind,
            "severity": self.rule.severity,
            "text": self.text,
            "source": "rules",
            "ruleId": self.rule.id,
            "refs": list(self.refs),
        }


@dataclass
class SpeakerStats:
    """Talk accounting of one speaker."""

    talk_s: float = 0.0
    words: int = 0
    utterances: int = 0
    intervals: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=OVERLAP_WINDOW)
    )


@dataclass
class CallState:
    """What the orchestrator knows about one call."""

    call_id: str
    store: PlaybookStore
    max_utterances: int = 200
    lang: str | None = None
    agent: str | None = None
    started_ms: int | None = None
    ended: bool = False
    ended_reason: str = ""
    cursor: str | None = None
    transcript: deque[Utterance] = field(init=False)
    speakers: dict[str, SpeakerStats] = field(default_factory=dict)
    fired_ms: dict[str, int] = field(default_factory=dict)
    disclosed: set[str] = field(default_factory=set)
    pii_kinds: set[str] = field(default_factory=set)
    covered_until: float = 0.0
    longest_silence: float = 0.0
    silence_total: float = 0.0
    overtalk_s: float = 0.0
    overtalk_count: int = 0
    last_activity_ms: int | None = None
    media_end: float = 0.0
    hits: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    finals_since_metrics: int = 0

    def __post_init__(self) -> None:
        self.transcript = deque(maxlen=self.max_utterances)

    @property
    def playbook(self) -> Playbook:
        """The playbook of this call's language (reloaded files apply to running calls)."""
        return self.store.get(self.lang)

    def apply(self, event: dict[str, Any], live: bool = True) -> list[Hit]:
        """Fold one event in; return the hits to publish (none when replaying)."""
        etype = event.get("type")
        ts = int(event.get("ts") or 0)
        hits: list[Hit] = []
        if etype == "call.started":
            self.lang = str(event.get("lang") or "") or self.lang
            self.agent = str(event.get("agent") or "") or None
            self.started_ms = ts or self.started_ms
            self.last_activity_ms = ts
        elif etype == "final":
            hits = self._final(event, ts)
        elif etype == "partial":
            self.last_activity_ms = max(self.last_activity_ms or 0, ts)
        elif etype == "coach" and event.get("source") == "rules" and event.get("ruleId"):
            # Our own earlier output: restores cooldowns after a restart or a hand-over.
            self.fired_ms[str(event["ruleId"])] = ts
        elif etype == "call.ended":
            self.ended = True
            self.ended_reason = str(event.get("reason") or "")
        if self.started_ms is None and ts:
            self.started_ms = ts  # joined mid-call without call.started: best effort
        if event.get("id"):
            self.cursor = str(event["id"])
        return hits if live else []

    def _fire(self, rule: Rule, now_ms: int, refs: tuple[str, ...], **values: Any) -> Hit | None:
        last = self.fired_ms.get(rule.id)
        if rule.type == "required":
            if last is not None:
                return None  # a missed deadline is reported once per call
        elif last is not None and now_ms - last < rule.cooldown_s * 1000:
            return None
        self.fired_ms[rule.id] = now_ms
        self.hits.append(rule.id)
        return Hit(rule, rule.render(**values), refs)

    def _final(self, event: dict[str, Any], ts: int) -> list[Hit]:
        speaker = str(event.get("speaker"))
        uid = str(event.get("utteranceId"))
        start = float(event.get("start") or 0.0)
        end = max(start, float(event.get("end") or 0.0))
        raw_text = str(event.get("text") or "")  # masked by STT already (coach/redact.py)
        kinds = event_kinds(event)
        red = for_prompt(raw_text)
        self.pii_kinds |= kinds | red.kinds
        book = self.playbook
        hits: list[Hit] = []
        refs = (uid,)

        # Silence before this utterance (media time), then talk accounting.
        gap = start - self.covered_until
        silence_rule = next(iter(book.of_type("silence")), None)
        if gap > 0:
            self.silence_total += gap
            self.longest_silence = max(self.longest_silence, gap)
            if silence_rule and gap >= silence_rule.min_s:
                fired = self.fired_ms.get(silence_rule.id)
                # Skip if the live timer already reported this stretch.
                if fired is None or fired < (self.last_activity_ms or 0):
                    hit = self._fire(silence_rule, ts, refs, seconds=round(gap))
                    hits += [hit] if hit else []
        self.covered_until = max(self.covered_until, end)
        self.media_end = max(self.media_end, end)

        stats = self.speakers.setdefault(speaker, SpeakerStats())
        overlap = 0.0
        for other, ostats in self.speakers.items():
            if other == speaker:
                continue
            for a, b in ostats.intervals:
                overlap += max(0.0, min(b, end) - max(a, start))
        if overlap > 0:
            self.overtalk_s += overlap
            self.overtalk_count += 1
            for rule in book.of_type("overtalk"):
                if overlap >= rule.min_s:
                    hit = self._fire(rule, ts, refs, seconds=round(overlap, 1))
                    hits += [hit] if hit else []
        stats.intervals.append(self._speech_span(event, start, end))
        stats.talk_s += end - start
        stats.words += word_count(raw_text)
        stats.utterances += 1
        self.last_activity_ms = max(self.last_activity_ms or 0, ts)
        self.finals_since_metrics += 1
        if red.text.strip():
            self.transcript.append(Utterance(uid, speaker, red.text, start, end))

        for rule in book.match(speaker, raw_text):
            hit = self._fire(rule, ts, refs)
            hits += [hit] if hit else []
        for rule in book.of_type("pii"):
            if (rule.speaker in (None, speaker)) and kinds & rule.kinds:
                hit = self._fire(rule, ts, refs, kinds=", ".join(sorted(kinds)))
                hits += [hit] if hit else []
        for rule in book.of_type("required"):
            if rule.id in self.disclosed:
                continue
            if (
                rule.speaker in (None, speaker)
                and start <= rule.within_s
                and book.says(rule, raw_text)
            ):
                self.disclosed.add(rule.id)
            elif end > rule.within_s:
                hit = self._fire(rule, ts, refs)
                hits += [hit] if hit else []
        return hits

    @staticmethod
    def _speech_span(event: dict[str, Any], start: float, end: float) -> tuple[float, float]:
        # With word timings, trim the leading/trailing non-speech VAD kept in the utterance.
        words = event.get("words")
        if isinstance(words, list) and words:
            try:
                return float(words[0]["start"]), float(words[-1]["end"])
            except (KeyError, TypeError, ValueError):
                pass
        return start, end

    def tick(self, now_ms: int) -> list[Hit]:
        """Timer rules at wall time `now_ms`: live silence and missed `required` deadlines."""
        if self.ended or self.started_ms is None:
            return []
        book = self.playbook
        hits: list[Hit] = []
        last_uid = (self.transcript[-1].uid,) if self.transcript else ()
        for rule in book.of_type("required"):
            if rule.id in self.disclosed or rule.id in self.fired_ms:
                continue
            if now_ms - self.started_ms > rule.within_s * 1000 + DEADLINE_GRACE_MS:
                hit = self._fire(rule, now_ms, last_uid)
                hits += [hit] if hit else []
        if self.transcript:  # silence is only a problem once the conversation has begun
            idle_ms = now_ms - (self.last_activity_ms or now_ms)
            for rule in book.of_type("silence"):
                fired = self.fired_ms.get(rule.id)
                already = fired is not None and fired > (self.last_activity_ms or 0)
                if idle_ms >= rule.min_s * 1000 and not already:
                    hit = self._fire(rule, now_ms, last_uid, seconds=round(idle_ms / 1000))
                    hits += [hit] if hit else []
        return hits

    def metrics(self, now_ms: int) -> dict[str, Any]:
        """The live `metrics` event."""
        total_talk = sum(s.talk_s for s in self.speakers.values())
        call_time = max(self.media_end, (now_ms - (self.started_ms or now_ms)) / 1000)
        speakers = {}
        for name, s in self.speakers.items():
            speakers[name] = {
                "talkTime": round(s.talk_s, 2),
                "utterances": s.utterances,
                "words": s.words,
                "wordsPerMinute": round(s.words / s.talk_s * 60, 1) if s.talk_s > 0 else 0.0,
            }
        self.finals_since_metrics = 0
        return {
            "type": "metrics",
            "callId": self.call_id,
            "callTime": round(call_time, 1),
            "talkRatio": {
                name: round(s.talk_s / total_talk, 3) if total_talk else 0.0
                for name, s in self.speakers.items()
            },
            "longestSilence": round(self.longest_silence, 2),
            "silenceTotal": round(self.silence_total, 2),
            "overtalk": {"count": self.overtalk_count, "seconds": round(self.overtalk_s, 2)},
            "speakers": speakers,
        }
