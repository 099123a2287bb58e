"""ari/recording.py in-process: which calls have a recording, the refusals (400/404/409/503),
adoption of a paused recording after a restart, and the `stopped` event with the path."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ari.call import Call
from ari.recording import STATE_VAR, RecordingRefused, Recordings

pytestmark = pytest.mark.unit

PATH = "/var/spool/asterisk/monitor/coach/x-1700000000.5.raw"


class Channel:
    """The caller channel's variables as ARI returns them."""

    def __init__(self, **variables: str) -> None:
        self.vars = variables

    def variable(self, channel: str, name: str) -> str:
        return self.vars.get(name, "")


class Offers:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def offer(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def _run(fn: Any, *args: Any, idempotent: bool = False) -> Any:
    return fn(*args)


def _call() -> Call:
    return Call(
        call_id="1700000000.5",
        caller_channel="1700000000.5",
        caller_number="",
        caller_name="",
        app="coach_app",
        started_wall=time.time() - 2,
    )


def _recordings(channel: Channel, offers: Offers) -> Recordings:
    return Recordings(channel, _run, offers, None)  # type: ignore[arg-type]


async def test_a_bridged_call_with_mixmonitor_is_recorded_until_it_ends() -> None:
    offers = Offers()
    recs = _recordings(Channel(MIXMONITOR_FILENAME=PATH), offers)
    call = _call()
    await recs.on_bridged(call)
    await recs.on_bridged(call)  # once only
    assert recs.state(call.call_id) == "recording"
    assert recs.on_ended(call) == PATH
    assert recs.on_ended(call) is None
    assert [(e["state"], e.get("path")) for e in offers.events] == [
        ("started", None),
        ("stopped", PATH),
    ]
    assert all(e["type"] == "call.recording" and e["at"] >= 2 for e in offers.events)


async def test_no_mixmonitor_no_recording_no_events() -> None:
    offers = Offers()
    recs = _recordings(Channel(), offers)
    call = _call()
    await recs.on_bridged(call)
    assert recs.state(call.call_id) is None and offers.events == []
    with pytest.raises(RecordingRefused) as refused:
        await recs.request(call, "paused")
    assert refused.value.status == 409


async def test_refusals() -> None:
    recs = _recordings(Channel(MIXMONITOR_FILENAME=PATH), Offers())
    call = _call()
    await recs.on_bridged(call)
    for target, want, status in (
        (call, "stopped", 400),
        (None, "paused", 404),
        (call, "paused", 503),
    ):
        with pytest.raises(RecordingRefused) as refused:
            await recs.request(target, want)
        assert refused.value.status == status, (want, refused.value.message)
    assert "AMI_SECRET" in refused.value.message  # pause is off without AMI


async def test_adoption_keeps_a_paused_recording_paused() -> None:
    recs = _recordings(Channel(MIXMONITOR_FILENAME=PATH, **{STATE_VAR: "paused"}), Offers())
    call = _call()
    await recs.adopt(call)
    assert recs.state(call.call_id) == "paused"
