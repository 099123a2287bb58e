"""The call flow end to end against the ARI double, real RTP, the fake STT and real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from ari.audio import resample
from fakes.poll import until, until_async
from tests.ari.conftest import assert_customer_audio, prompt_pcm

pytestmark = pytest.mark.integration


async def _events(bus, call_id: str) -> list[dict[str, Any]]:
    return [e.data() for e in await bus.read_call(call_id)]


async def _wait_bus(bus, call_id: str, kind: str, wait: float = 10.0) -> list[dict[str, Any]]:
    last = "0"

    async def probe() -> list[dict[str, Any]] | None:
        nonlocal last
        # Blocking read on the global stream: returns as soon as anything is published.
        await bus.read_all(last, 100, 200)
        last = await bus.last_id() or last
        events = await _events(bus, call_id)
        return events if any(e["type"] == kind for e in events) else None

    # No pause between probes: each one blocks on the bus until something new is published.
    events = await until_async(probe, wait, what=f"{kind} of {call_id} on the bus", interval=0)
    assert events is not None
    return events


async def _wait_empty(double, svc, wait: float = 10.0) -> None:
    await until(
        lambda: not (double.channels or double.bridges or svc.controller.calls),
        wait,
        what="channels, bridges and calls all gone",
    )


async def test_call_taps_both_speakers_and_cleans_up(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 4.0
    customer, agent = prompt_pcm("agent-newlocation"), prompt_pcm("conf-extended")
    cid = await double.incoming_call("5551234", "Ana", customer, agent)

    want_c, want_a = resample(customer, 8000, 16000), resample(agent, 8000, 16000)
    await stt.wait_for(
        lambda: (
            len(stt.audio(cid, "customer")) >= len(want_c)
            and len(stt.audio(cid, "agent")) >= len(want_a)
        )
    )
    # Exactly the samples each party said, tagged with the right speaker; the caller's tap
    # opens while the agent rings and is held (silence, same length) until it answers.
    assert_customer_audio(stt.audio(cid, "customer"), want_c)
    assert stt.audio(cid, "agent")[: len(want_a)] == want_a

    await double.hangup(cid)
    events = await _wait_bus(bus, cid, "call.ended")
    await _wait_empty(double, svc)
    types = [e["type"] for e in events]
    assert types[0] == "call.started" and types[-1] == "call.ended"
    started = events[0]
    assert started["agent"] == "200" and started["caller"] == {"number": "5551234", "name": "Ana"}
    assert events[-1]["reason"] == "caller-hangup"
    finals = {e["speaker"] for e in events if e["type"] == "final"}
    assert finals == {"customer", "agent"}
    assert double.leftovers() == ([], [])
    assert svc.gateway.ports.in_use == 0 and not svc.gateway.taps
    await stt.wait_for(lambda: stt.open_streams == 0)
    # Bridging happened only after each channel's StasisStart: never a 422.
    assert not [r for r in double.requests if r[2] == 422]


async def test_a_long_quoted_caller_name_never_drops_the_call(double, stt, bus, service_factory):
    await service_factory()
    name = 'Ana "la del banco" ' + "María José " * 30  # 350 characters, quotes inside
    cid = await double.incoming_call(
        "5559999", name, prompt_pcm("agent-user"), prompt_pcm("conf-getpin")
    )
    started = (await _wait_bus(bus, cid, "call.started"))[0]
    shown = started["caller"]["name"]
    assert len(shown) <= 128 and '"' not in shown and shown.startswith("Ana la del banco María")
    await double.hangup(cid)
    await _wait_bus(bus, cid, "call.ended")


async def test_agent_hangup_ends_call(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 10.0
    cid = await double.incoming_call(
        "100", "Bob", prompt_pcm("agent-user"), prompt_pcm("conf-getpin")
    )
    await stt.wait_for(lambda: stt.audio(cid, "agent") and stt.audio(cid, "customer"))
    # Both taps open while the agent rings: hang up only once the agent is on the call.
    await _wait_bus(bus, cid, "call.answered")
    await double.hangup(f"coach_app-agent-{cid}")
    events = await _wait_bus(bus, cid, "call.ended")
    assert events[-1]["reason"] == "agent-hangup"
    await _wait_empty(double, svc)
    assert double.leftovers() == ([], [])


@pytest.mark.parametrize(
    "case",
    [
        ("no-answer", "agent-no-answer"),
        ("busy", "agent-busy"),
        ("unreachable", "agent-unreachable"),
        ("refuse", "agent-unreachable"),
    ],
    ids=lambda c: c[0],
)
async def test_agent_not_reached_plays_message_and_hangs_up(
    double, stt, bus, service_factory, case
):
    behaviour, reason = case
    svc = await service_factory(NO_AGENT_SOUND="sound:vm-nobodyavail", AGENT_TIMEOUT="1")
    double.agent_behaviour = behaviour
    cid = await double.incoming_call("100", "Bob", prompt_pcm("agent-user"), b"")
    events = await _wait_bus(bus, cid, "call.ended")
    assert [e["type"] for e in events] == ["call.started", "call.ended"]
    assert events[-1]["reason"] == reason
    await _wait_empty(double, svc)
    played = [e for e in double.events_log if e["type"] == "PlaybackFinished"]
    assert played and played[0]["playback"]["media_uri"] == "sound:vm-nobodyavail"
    # Taps open while the agent rings, held: nothing the caller said reached STT.
    assert all(not any(log.audio) for log in stt.streams)


async def test_agent_not_reached_returns_to_dialplan(double, stt, bus, service_factory):
    svc = await service_factory(NO_AGENT_ACTION="continue", AGENT_TIMEOUT="1")
    double.agent_behaviour = "no-answer"
    cid = await double.incoming_call("100", "Bob", prompt_pcm("agent-user"), b"")
    events = await _wait_bus(bus, cid, "call.ended")
    assert events[-1]["reason"] == "agent-no-answer"
    await until(lambda: not (svc.controller.calls or double.bridges))
    # The caller left Stasis alive (back in the dialplan), not hung up by us.
    assert list(double.channels) == [cid] and double.channels[cid].app is None
    await double.hangup(cid)


async def test_mix_tap_streams_both_parties(double, stt, bus, service_factory):
    from ari.audio import mix

    svc = await service_factory(MIX_TAP="true")
    double.rtp_speed = 5.0
    customer, agent = prompt_pcm("agent-user"), prompt_pcm("conf-getpin")
    cid = await double.incoming_call("100", "Bob", customer, agent)
    want = resample(mix(customer, agent), 8000, 16000)
    await stt.wait_for(lambda: len(stt.audio(cid, "mix")) >= len(want))
    assert stt.audio(cid, "mix")[: len(want)] == want
    assert {s.speaker for s in stt.streams} == {"customer", "agent", "mix"}
    await double.hangup(cid)
    await _wait_empty(double, svc)
    assert svc.gateway.ports.in_use == 0


async def test_health_reports_state(double, stt, bus, service_factory):
    svc = await service_factory()
    await until(lambda: svc.health()["status"] == "ok")  # the reader thread marks it
    body = svc.health()
    assert body["status"] == "ok" and body["ari"] == "connected" and body["calls"] == 0
    await double.drop_events()
    double.accept_events = False
    await until(lambda: svc.health()["status"] == "degraded")
    double.accept_events = True
    await double.wait_connected()
    await until(lambda: svc.health()["status"] == "ok")
