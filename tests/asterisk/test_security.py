"""SIP doors on the real Asterisk: every endpoint has its own secret, the trunk answers only
its carrier's address with the trunk's own credentials, and each refusal is written to the
security log in the form fail2ban reads. (AMI: tests/asterisk/test_recording.py.)"""

from __future__ import annotations

import random

import pytest

from coach.bus import Bus
from testbed.asterisk import Asterisk, sip_secret
from tests.asterisk.conftest import PhoneFactory, wait_no_leftovers

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def _number() -> str:
    return f"+34600{random.randrange(10**6):06d}"


async def _no_call_from(bus: Bus, number: str) -> None:
    calls = await bus.active_calls()
    assert not [c for c in calls.values() if c.get("caller", {}).get("number") == number]
    recent = await bus.read_all("0-0", 10_000)
    assert not [e for e in recent if e.type == "call.started" and number in e.body], (
        f"a call from {number} reached the bus"
    )


async def test_an_agent_cannot_register_with_another_agents_secret(
    pbx: Asterisk, phones: PhoneFactory
) -> None:
    impostor = await phones(
        "agent", "205", ["conf-getpin"], secret=sip_secret("206"), await_register=False
    )
    await impostor.wait("REGISTER_FAIL")
    assert pbx.get("/endpoints/PJSIP/205")["state"] != "online"
    log = pbx.security_log.read_text(errors="replace")
    assert (
        'SecurityEvent="ChallengeResponseFailed"' in log or 'SecurityEvent="InvalidPassword"' in log
    )
    assert 'AccountID="205"' in log and "127.0.0.1" in log
    # With its own secret the same phone registers.
    await phones("agent", "205", ["conf-getpin"])
    assert pbx.get("/endpoints/PJSIP/205")["state"] == "online"


async def test_a_carrier_without_the_trunk_secret_is_refused(
    pbx: Asterisk, ari_factory, phones: PhoneFactory, stack_bus: Bus
) -> None:
    ari_factory()
    number = _number()
    caller = await phones("caller", number, ["conf-getpin"], secret="Not-the-Trunk-0123")
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    await caller.wait("CALL_CLOSED")
    await _no_call_from(stack_bus, number)
    assert 'AccountID="trunk"' in pbx.security_log.read_text(errors="replace")
    await wait_no_leftovers(pbx)


async def test_an_invite_from_an_unlisted_address_is_refused(
    pbx: Asterisk, ari_factory, phones: PhoneFactory, stack_bus: Bus
) -> None:
    ari_factory()
    number = _number()
    # The right trunk secret, but from 127.0.0.2: not TRUNK_MATCH, so it is not the trunk.
    stranger = await phones("caller", number, ["conf-getpin"], address="127.0.0.2")
    await stranger.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    await stranger.wait("CALL_CLOSED")
    await _no_call_from(stack_bus, number)
    assert "127.0.0.2" in pbx.security_log.read_text(errors="replace")
    await wait_no_leftovers(pbx)
