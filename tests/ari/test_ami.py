"""The AMI client against the fake AMI (real TCP on 127.0.0.1): login, actions matched to
responses, errors, and the faults the real Asterisk will not make on demand (a connection
dropped mid-action, an answer that never comes, a restart); the real Asterisk answers the
same client in tests/asterisk/test_recording.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from ari.ami import AmiClient, AmiError, AmiState, AmiUnavailable, encode
from coach.backoff import RECONNECT
from coach.tasks import TaskSet
from fakes.fake_ami import FakeAmi
from fakes.poll import until

pytestmark = pytest.mark.integration

USER, SECRET = "coach-recording", "Ami-Test-Secret-0123"
FAST = RECONNECT.scaled(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = await FakeAmi(USER, SECRET, channels={"1700000000.1"}).start()
    yield server
    await server.stop()


@pytest.fixture
async def tasks() -> AsyncIterator[TaskSet]:
    ts = TaskSet("test", registry=CollectorRegistry())
    yield ts
    await ts.close(wait=2)


def _client(fake: FakeAmi, tasks: TaskSet, secret: str = SECRET, **kw: float) -> AmiClient:
    return AmiClient("127.0.0.1", fake.port, USER, secret, tasks=tasks, backoff=FAST, **kw)


async def test_logs_in_without_events_and_mutes(fake: FakeAmi, tasks: TaskSet) -> None:
    client = _client(fake, tasks)
    assert client.state.value == "idle"
    client.start()
    await client.wait_connected(5)
    assert client.state is AmiState.CONNECTED and fake.logins == 1
    login = fake.actions[0]
    assert login["Action"] == "Login" and login["Events"] == "off"
    reply = await client.action(
        "MixMonitorMute", Channel="1700000000.1", Direction="both", State="1"
    )
    assert reply["Response"] == "Success"
    assert fake.muted["1700000000.1"] == {"read": True, "write": True}
    await client.action("MixMonitorMute", Channel="1700000000.1", Direction="both", State="0")
    assert fake.muted["1700000000.1"] == {"read": False, "write": False}
    sent = [a for a in fake.actions if a["Action"] == "MixMonitorMute"]
    assert len({a["ActionID"] for a in sent}) == 2  # each action its own id
    await client.close()
    assert client.closed
    assert fake.actions[-1]["Action"] == "Logoff"


async def test_an_error_response_is_an_ami_error_not_retryable(
    fake: FakeAmi, tasks: TaskSet
) -> None:
    client = _client(fake, tasks)
    client.start()
    await client.wait_connected(5)
    with pytest.raises(AmiError, match="No such channel") as err:
        await client.action("MixMonitorMute", Channel="gone", Direction="both", State="1")
    assert not err.value.retryable
    with pytest.raises(AmiError, match="Permission denied"):
        await client.action("Originate", Channel="Local/s@x", Application="Wait")
    assert client.state is AmiState.CONNECTED  # an error answer is not a broken connection
    await client.close()


async def test_a_refused_login_is_reported_and_retried_on_the_backoff(
    fake: FakeAmi, tasks: TaskSet
) -> None:
    client = _client(fake, tasks, secret="Wrong-Secret-0123456")
    client.start()
    await until(lambda: client.error and "refused" in client.error, 5, what="login refused")
    assert client.state is AmiState.CONNECTING
    with pytest.raises(AmiUnavailable, match="not connected") as err:
        await client.action("Ping")
    assert err.value.retryable
    await until(lambda: len([a for a in fake.actions if a["Action"] == "Login"]) >= 2, 5)
    assert fake.logins == 0
    await client.close()


async def test_reconnects_after_the_server_drops_every_connection(
    fake: FakeAmi, tasks: TaskSet
) -> None:
    client = _client(fake, tasks)
    client.start()
    await client.wait_connected(5)
    fake.kick()
    await until(lambda: client.connects == 2 and client.state is AmiState.CONNECTED, 5)
    await client.action("Ping")
    await client.close()


async def test_an_action_in_flight_fails_when_the_connection_drops(
    fake: FakeAmi, tasks: TaskSet
) -> None:
    client = _client(fake, tasks)
    client.start()
    await client.wait_connected(5)
    fake.drop_on_action = "MixMonitorMute"
    with pytest.raises(AmiUnavailable, match="lost"):
        await client.action("MixMonitorMute", Channel="1700000000.1", Direction="both", State="1")
    fake.drop_on_action = None
    await until(lambda: client.connects == 2 and client.state is AmiState.CONNECTED, 5)
    await client.close()


async def test_an_answer_that_never_comes_times_out(fake: FakeAmi, tasks: TaskSet) -> None:
    client = _client(fake, tasks, timeout=0.3)
    client.start()
    await client.wait_connected(5)
    fake.stall_action = "MixMonitorMute"
    with pytest.raises(AmiUnavailable, match="no response"):
        await client.action("MixMonitorMute", Channel="1700000000.1", Direction="both", State="1")
    fake.stall_action = None
    assert (await client.action("Ping"))["Ping"] == "Pong"  # the connection is still good
    await client.close()


async def test_nothing_is_sent_while_asterisk_is_down(tasks: TaskSet) -> None:
    client = AmiClient("127.0.0.1", 1, USER, SECRET, tasks=tasks, backoff=FAST)
    client.start()
    await until(lambda: client.error is not None, 5, what="a connect error")
    with pytest.raises(AmiUnavailable):
        await client.action("Ping")
    await client.close()
    assert client.closed


def test_a_line_break_in_a_field_is_refused() -> None:
    # Else a channel name could carry an action of its own.
    with pytest.raises(ValueError, match="line break"):
        encode({"Action": "MixMonitorMute", "Channel": "x\r\nAction: Originate"})
