"""One call's state machine and the ARI resources it owns (named so they can be found again)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ari.gateway import MediaTap

# Legs of a call and the speaker each one is.
LEG_SPEAKERS = {"caller": "customer", "agent": "agent"}


class CallPhase(enum.Enum):
    """Where a call is in ari's flow; transitions are checked by `Call.move`.

    (Not the coaching state of a call: that is orchestrator/callstate.py's.)"""

    NEW = "new"
    DIALING = "dialing"
    BRIDGED = "bridged"
    ENDING = "ending"
    ENDED = "ended"


_ALLOWED = {
    CallPhase.NEW: {CallPhase.DIALING, CallPhase.BRIDGED, CallPhase.ENDING},
    CallPhase.DIALING: {CallPhase.BRIDGED, CallPhase.ENDING},
    CallPhase.BRIDGED: {CallPhase.ENDING},
    CallPhase.ENDING: {CallPhase.ENDED},
    CallPhase.ENDED: set(),
}


class IllegalTransition(RuntimeError):
    """A call was asked to move to a state it cannot reach from where it is."""


class ChannelGone(RuntimeError):
    """A channel we waited for was destroyed (or the call ended) before StasisStart."""

    def __init__(self, cause: int | None = None) -> None:
        super().__init__(f"channel gone (cause {cause})")
        self.cause = cause


def resource_id(app: str, kind: str, call_id: str) -> str:
    """Id of a channel/bridge this app creates: `{app}-{kind}-{callId}` (kind has no dash)."""
    return f"{app}-{kind}-{call_id}"


def parse_resource_id(app: str, resource: str) -> tuple[str, str] | None:
    """(kind, callId) of an id made by `resource_id`, or None if it is not ours."""
    prefix = f"{app}-"
    if not resource.startswith(prefix):
        return None
    kind, sep, call_id = resource[len(prefix) :].partition("-")
    if not sep or not kind or not call_id:
        return None
    return kind, call_id


@dataclass(eq=False)
class Tap:
    """The ARI side of one speaker's tap: snoop + ExternalMedia in a bridge, and its socket."""

    speaker: str
    snoop_id: str | None
    external_id: str
    bridge_id: str
    media: MediaTap | None = None


NAME_MAX = 128
"""Longest caller name kept (the event contract's bound)."""
NUMBER_MAX = 64
"""Longest caller number kept."""


def caller_text(raw: object, limit: int) -> str:
    """A caller's name or number as a carrier sent it, made safe to publish: quotes, control
    characters and runs of spaces removed, cut to `limit`. A call is never dropped for its
    caller's name (the contract's bound would refuse `call.started`)."""
    text = "".join(" " if not ch.isprintable() else ch for ch in str(raw or ""))
    text = " ".join(text.replace('"', "").replace("\\", "").split())
    return text[:limit].rstrip()


@dataclass(eq=False)
class Call:
    """A call handed to the app by `Stasis()`: ids, phase, what it created."""

    call_id: str
    caller_channel: str
    caller_number: str
    caller_name: str
    app: str
    phase: CallPhase = CallPhase.NEW
    agent_channel: str | None = None
    agent_in_stasis: bool = False
    agent_ringing: bool = False
    """Adopted while the agent's originate (from before our restart) still rang: the flow
    waits for that attempt instead of dialling again."""
    end_reason: str | None = None
    closing_reason: str | None = None
    """Set when the flow itself ends the call (agent not reached): the caller's StasisEnd that
    follows is the flow's doing, and the call ends with this reason, not `caller-hangup`."""
    continued: bool = False
    """The caller went back to the dialplan (NO_AGENT_ACTION=continue): not ours to hang up."""
    stasis_start_at: float = 0.0
    lang: str = ""
    """Spoken language from the dialplan (`Stasis(app,role=caller,lang=en)`); "" = CALL_LANG."""
    started_wall: float = 0.0  # epoch seconds the call started (utterance times count from it)
    taps: dict[str, Tap] = field(default_factory=dict)
    started_published: bool = False
    failed_taps: set[str] = field(default_factory=set)
    """Speakers whose tap failed: the call goes on without their transcript (degraded)."""

    def move(self, new: CallPhase) -> None:
        """Change phase or raise IllegalTransition."""
        if new not in _ALLOWED[self.phase]:
            raise IllegalTransition(f"call {self.call_id}: {self.phase.value} -> {new.value}")
        self.phase = new

    def rid(self, kind: str) -> str:
        """Id of a resource of this call."""
        return resource_id(self.app, kind, self.call_id)

    @property
    def bridge_id(self) -> str:
        """Id of the main (caller+agent) bridge."""
        return self.rid("bridge")

    @property
    def ended(self) -> bool:
        """Ending or ended: no new resources may be created."""
        return self.phase in (CallPhase.ENDING, CallPhase.ENDED)


def creation_time(chan: Mapping[str, Any]) -> float | None:
    """A channel's ARI `creationtime` ("2026-11-21T23:58:43.123+0000") as epoch seconds."""
    text = chan.get("creationtime")
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None
