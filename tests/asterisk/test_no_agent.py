"""Calls that do not reach the agent, on the real Asterisk: not registered, rejects, does not
answer, the caller hangs up while it rings; NO_AGENT_ACTION both ways."""

from __future__ import annotations

import random

import pytest

from fakes.poll import until
from tests.asterisk.conftest import wait_call_event, wait_for_event, wait_no_leftovers

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def _no_recording(pbx, call_id: str) -> None:
    """No recording is left for a call that never reached an agent. MixMonitor opens the file
    at once and its post-command deletes it, empty, after the channel is gone: wait for that
    (bounded), do not look the moment the channels disappear."""
    try:
        await until(
            lambda: not list(pbx.recordings.glob(f"*{call_id}*")),
            20,
            what="the empty recording removed",
        )
    except TimeoutError:
        raise AssertionError("no recording without an agent") from None


def _number() -> str:
    # Every call of the session shares the bus: a fresh caller number finds this test's call.
    return f"+34699{random.randrange(10**6):06d}"


async def _started(bus, number: str) -> str:
    event = await wait_for_event(
        bus, lambda e: e["type"] == "call.started" and e.get("caller", {}).get("number") == number
    )
    return str(event["callId"])


async def test_agent_not_registered_is_unreachable(pbx, ari_factory, phones, stack_bus):
    # 209 never registers: Asterisk refuses the originate (500 "Allocation failed").
    ari_factory(AGENT_DIAL="PJSIP/209", NO_AGENT_SOUND="sound:vm-nobodyavail")
    number = _number()
    caller = await phones("caller", number, ["conf-getpin"])
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    call_id = await _started(stack_bus, number)
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "agent-unreachable"
    # The configured sound was played (in Spanish) before the hangup, not dropped after 50 ms.
    await caller.wait("CALL_CLOSED")
    assert "vm-nobodyavail" in pbx.full_log.read_text(errors="replace")
    await wait_no_leftovers(pbx)
    await _no_recording(pbx, call_id)


async def test_agent_not_registered_continue_plays_spanish_prompt(
    pbx, ari_factory, phones, stack_bus
):
    ari_factory(AGENT_DIAL="PJSIP/208", NO_AGENT_ACTION="continue")
    number = _number()
    caller = await phones("caller", number, ["conf-getpin"])
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    call_id = await _started(stack_bus, number)
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "agent-unreachable"
    await caller.wait("CALL_CLOSED")
    # The dialplan's message after the app sent the caller back, in the caller's language.
    plays = [
        line
        for line in pbx.full_log.read_text(errors="replace").splitlines()
        if "Playing 'vm-nobodyavail" in line
    ]
    assert plays and all("language 'es'" in line for line in plays), plays
    await wait_no_leftovers(pbx)


async def _ringing(pbx, ari_factory, phones, stack_bus, agent_id: str, **env: str):
    """A call whose agent phone (manual answer) is ringing: (agent, caller, callId)."""
    ari_factory(AGENT_DIAL=f"PJSIP/{agent_id}", **env)
    agent = await phones("agent", agent_id, ["conf-extended"], answer="manual")
    number = _number()
    caller = await phones("caller", number, ["conf-getpin"])
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    call_id = await _started(stack_bus, number)
    await agent.wait("CALL_INCOMING")
    return agent, caller, call_id


async def test_agent_rejects(pbx, ari_factory, phones, stack_bus):
    agent, caller, call_id = await _ringing(pbx, ari_factory, phones, stack_bus, "201")
    await agent.hangup()  # baresip rejects a ringing call with 486 Busy Here
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] in ("agent-busy", "agent-rejected")
    await caller.wait("CALL_CLOSED")
    await wait_no_leftovers(pbx)


async def test_agent_does_not_answer(pbx, ari_factory, phones, stack_bus):
    _, caller, call_id = await _ringing(
        pbx, ari_factory, phones, stack_bus, "202", AGENT_TIMEOUT="2"
    )
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "agent-no-answer"
    await caller.wait("CALL_CLOSED")
    await wait_no_leftovers(pbx)


async def test_caller_hangs_up_while_agent_rings(pbx, ari_factory, phones, stack_bus):
    agent, caller, call_id = await _ringing(pbx, ari_factory, phones, stack_bus, "203")
    await caller.hangup()
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "caller-hangup"
    await agent.wait("CALL_CLOSED")  # the agent's phone stops ringing
    await wait_no_leftovers(pbx)
    await _no_recording(pbx, call_id)
