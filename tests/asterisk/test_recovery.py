"""Parts failing around a live SIP call on the real Asterisk: ari not running (the dialplan
still connects the call), ari killed mid-call and started again (the call is adopted and
re-tapped), STT restarted mid-call (the transcript resumes where the call is), a wrong ARI
password (one clear error, no retry storm)."""

from __future__ import annotations

import random
import time

import pytest

from tests.asterisk.conftest import (
    bus_events,
    wait_call_event,
    wait_final,
    wait_for_event,
    wait_no_leftovers,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def _number() -> str:
    return f"+34688{random.randrange(10**6):06d}"


async def _started(bus, number: str) -> dict:
    return await wait_for_event(
        bus, lambda e: e["type"] == "call.started" and e.get("caller", {}).get("number") == number
    )


async def test_ari_down_dialplan_still_connects(pbx, ari_factory, phones, stack_bus):
    # No ari: Stasis() fails (STASISSTATUS=FAILED) and the fallback dials AGENT_DIAL.
    agent = await phones("agent", "204", ["conf-extended"])
    pbx.cli("dialplan set global AGENT_DIAL PJSIP/204")
    try:
        number = _number()
        caller = await phones("caller", number, ["conf-getpin"])
        await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
        await caller.wait("CALL_ESTABLISHED")
        await agent.wait("CALL_ESTABLISHED")  # a real conversation, without coaching
        # When ari comes back, supervisors learn of the call: not coached, then its end.
        ari_factory(AGENT_DIAL="PJSIP/204")
        started = await _started(stack_bus, number)
        assert started["coached"] is False and started["agent"] == "204"
        await caller.hangup()
        await agent.wait("CALL_CLOSED")
        ended = await wait_call_event(stack_bus, started["callId"], "call.ended")
        assert ended["reason"] == "fallback"
    finally:
        pbx.cli("dialplan set global AGENT_DIAL PJSIP/200")
    await wait_no_leftovers(pbx)
    kinds = [e["type"] for e in await bus_events(stack_bus, started["callId"])]
    assert kinds[:2] == ["call.started", "call.ended"]  # then maybe the orchestrator's summary
    assert not {"partial", "final"} & set(kinds)  # no transcript: nobody tapped it


async def test_ari_killed_mid_call_is_adopted(pbx, ari_factory, phones, stack_bus):
    ari = ari_factory(AGENT_DIAL="PJSIP/205")
    await phones("agent", "205", ["conf-extended"])
    number = _number()
    # First prompt, then a pause long enough for ari to die and come back, then a second.
    caller = await phones("caller", number, ["conf-getpin", "agent-newlocation"], gap=12.0)
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    call_id = (await _started(stack_bus, number))["callId"]
    await wait_final(stack_bus, call_id, "customer", 60)
    ari.kill()  # SIGKILL: no detach, the old taps stay in Asterisk
    ari.start(timeout=30)
    # The adopting instance re-taps the call: the second prompt is transcribed.
    await wait_final(stack_bus, call_id, "customer", 60, says="extens")
    await caller.hangup()
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "caller-hangup"
    await wait_no_leftovers(pbx)
    kinds = [
        e["type"] for e in await bus_events(stack_bus, call_id) if e["type"].startswith("call.")
    ]
    assert kinds.count("call.started") == 1 and kinds.count("call.ended") == 1


async def test_stt_restarted_mid_call_resumes(pbx, ari_factory, phones, stack_bus, stt_service):
    ari_factory(AGENT_DIAL="PJSIP/206")
    await phones("agent", "206", ["conf-extended"])
    number = _number()
    caller = await phones("caller", number, ["demo-congrats"])  # 39 s of speech
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    started = await _started(stack_bus, number)
    call_id = started["callId"]
    first = await wait_final(stack_bus, call_id, "customer", 60)
    # Where the call is when STT goes away, on the call's own timeline (seconds from start).
    restart_at = time.time() - started["startedAt"] / 1000
    stt_service.kill()
    stt_service.start(timeout=180)
    after = await wait_final(stack_bus, call_id, "customer", 90, after=first["end"])
    # Audio held by ari while STT was away is transcribed: no hole in the transcript.
    assert after["start"] <= restart_at + 3.0, (after["start"], restart_at)
    await caller.hangup()
    await wait_call_event(stack_bus, call_id, "call.ended")
    await wait_no_leftovers(pbx)


async def test_wrong_ari_password_is_one_clear_error(ari_factory):
    ari = ari_factory(ARI_PASS="not-the-password", want="failed")
    health = ari.health()
    assert health["ari"] == "failed" and "ARI_PASS" in health["error"]
    errors = [line for line in ari.log().splitlines() if "ARI events" in line]
    assert len(errors) == 1, errors


async def test_wrong_ari_url_is_one_clear_error(ari_factory, pbx):
    ari = ari_factory(ARI_URL=f"http://127.0.0.1:{pbx.http_port}/nothing", want="failed")
    health = ari.health()
    assert health["ari"] == "failed" and "ARI_URL" in health["error"]
    errors = [line for line in ari.log().splitlines() if "ARI events" in line]
    assert len(errors) == 1, errors
