"""Several SIP calls at once through one ari on the real Asterisk, as many as the STT sizing
supports on this machine (about 3 calls per core: 4 on CI's 2 cores); each reaches its own
agent through a hunting Local dial string, so call.answered must name who answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.asterisk.conftest import (
    HUNT_DIAL,
    wait_call_event,
    wait_final,
    wait_for_event,
    wait_no_leftovers,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLS = 4
CUSTOMER = ["agent-newlocation", "conf-getpin"]
AGENT = ["conf-extended", "agent-user"]


def _started_by(number: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "call.started" and e["caller"]["number"] == number


async def test_concurrent_calls_each_with_its_agent(pbx, ari_factory, phones, stack_bus):
    ari_factory(AGENT_DIAL=HUNT_DIAL, AGENT_TIMEOUT="15")
    agents = [await phones("agent", str(200 + i), AGENT, lead=1.0) for i in range(CALLS)]
    assert agents
    callers, call_ids, answered = [], [], []
    for i in range(CALLS):
        number = f"+3461100000{i}"
        caller = await phones("caller", number, CUSTOMER, lead=1.0)
        await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
        started = await wait_for_event(stack_bus, _started_by(number))
        call_ids.append(started["callId"])
        # One call at a time reaches the hunt, so each finds a different idle agent.
        answered.append(
            (await wait_call_event(stack_bus, started["callId"], "call.answered"))["agent"]
        )
        callers.append(caller)
    assert sorted(answered) == [str(200 + i) for i in range(CALLS)]

    async def transcribed(call_id: str) -> None:
        for speaker, word in (("customer", "clave"), ("agent", "agente")):
            await wait_final(stack_bus, call_id, speaker, 120, says=word)

    await asyncio.gather(*(transcribed(c) for c in call_ids))
    await asyncio.gather(*(c.hangup() for c in callers))
    for call_id in call_ids:
        ended = await wait_call_event(stack_bus, call_id, "call.ended")
        assert ended["reason"] == "caller-hangup"
    await wait_no_leftovers(pbx)
