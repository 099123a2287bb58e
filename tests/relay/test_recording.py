"""`POST /calls/{callId}/recording` end to end in one process: the real relay (real Redis) asks
ari's real control route, whose `Recordings` mutes MixMonitor through the real AMI client on
the fake AMI; only the ARI side of the call (a known recording path) is stood in for. Who may
pause (the call's agent, a supervisor), what others get (404, 401, 403), bad input (400),
not recording or already so (409), parts down (503), and the `call.recording` events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from ari.ami import AmiClient
from ari.call import Call
from ari.control import control_routes
from ari.recording import Recordings
from coach.backoff import RECONNECT
from coach.bus import Bus
from coach.publisher import Publisher
from coach.redis_server import EmbeddedRedis, free_port
from coach.tasks import TaskSet
from coach.tokens import ServiceTokens
from coach.web import embedded_server
from fakes.fake_ami import FakeAmi
from fakes.poll import until, until_async
from tests.relay.conftest import SERVICE_TOKEN, RelayServer, start_relay, started

pytestmark = pytest.mark.integration

CALL = "1700000000.11"
PATH = "/var/spool/asterisk/monitor/coach/20261201-120000-1700000000.11.raw"
AMI_USER, AMI_SECRET = "coach-recording", "Ami-Test-Secret-0123"


class StubRest:
    """The two ARI requests Recordings makes: MIXMONITOR_FILENAME, and keeping its state."""

    def __init__(self) -> None:
        self.vars: dict[tuple[str, str], str] = {}

    def variable(self, channel: str, name: str) -> str:
        if name == "MIXMONITOR_FILENAME":
            return PATH if channel in (CALL, "1700000000.12") else ""
        return self.vars.get((channel, name), "")

    def request(self, method: str, path: str, params: dict[str, str]) -> None:
        self.vars[(path.split("/")[2], params["variable"])] = params["value"]


@dataclass
class Ari:
    """What the control route needs of ari's controller: its live calls and their recordings."""

    recordings: Recordings
    calls: dict[str, Call] = field(default_factory=dict)
    rest: StubRest = field(default_factory=StubRest)


async def _run(fn: Any, *args: Any, idempotent: bool = False) -> Any:
    return fn(*args)


def _call(call_id: str) -> Call:
    return Call(
        call_id=call_id,
        caller_channel=call_id,
        caller_number="+34600000000",
        caller_name="Ana",
        app="coach_app",
        started_wall=time.time() - 5,
    )


@dataclass
class Stack:
    relay: RelayServer
    ari: Ari
    ami: FakeAmi
    bus: Bus
    http: httpx.AsyncClient

    async def ask(self, token: str | None, body: object, call_id: str = CALL) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            f"{self.relay.http}/calls/{call_id}/recording", json=body, headers=headers
        )

    async def recording_events(self, call_id: str = CALL) -> list[dict[str, Any]]:
        return [e.data() for e in await self.bus.read_call(call_id) if e.type == "call.recording"]


@pytest.fixture
async def stack(redis_server: EmbeddedRedis, bus_config: Any) -> AsyncIterator[Stack]:
    tasks = TaskSet("test", registry=CollectorRegistry())
    fake = await FakeAmi(AMI_USER, AMI_SECRET, channels={CALL, "1700000000.12"}).start()
    ami = AmiClient(
        "127.0.0.1", fake.port, AMI_USER, AMI_SECRET, tasks=tasks, backoff=RECONNECT.scaled(0.05)
    )
    ami.start()
    await ami.wait_connected(5)
    ari_bus = Bus.connect(redis_server.url, bus_config)
    publisher = Publisher(ari_bus, tasks, capacity=100)
    publisher.start()
    rest = StubRest()
    ari = Ari(Recordings(rest, _run, publisher, ami), rest=rest)  # type: ignore[arg-type]
    port = free_port()
    app = Starlette(
        routes=control_routes(lambda: ari, ServiceTokens(None, fallback=SERVICE_TOKEN))  # type: ignore[arg-type, return-value]
    )
    server = embedded_server(app, "127.0.0.1", port)
    serving = tasks.spawn(server.serve(), "ari-http")
    await until(lambda: server.started, 5, what="ari's control port")
    relay = await start_relay(
        redis_server.url, bus_config, ari_control_url=f"http://127.0.0.1:{port}"
    )
    for call_id, agent in ((CALL, "200"), ("1700000000.12", "200"), ("1700000000.13", "200")):
        await relay.bus.publish(started(call_id, agent))
    for call_id in (CALL, "1700000000.12"):  # .13 is on the bus but no longer live at ari
        ari.calls[call_id] = _call(call_id)
    await ari.recordings.on_bridged(ari.calls[CALL])  # .12 is live but not recorded
    async with httpx.AsyncClient(timeout=15) as http:
        yield Stack(relay, ari, fake, relay.bus, http)
    await relay.stop()
    server.should_exit = True
    await serving
    await publisher.close()
    await ami.close()
    await fake.stop()
    await ari_bus.close()
    await tasks.close(wait=2)


async def test_the_calls_agent_pauses_and_resumes(stack: Stack) -> None:
    agent = stack.relay.token("agent", "200")
    resp = await stack.ask(agent, {"state": "paused"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "paused" and resp.json()["at"] >= 5
    assert stack.ami.muted[CALL] == {"read": True, "write": True}
    again = await stack.ask(agent, {"state": "paused"})
    assert again.status_code == 409 and again.json()["error"] == "the recording is already paused"
    resp = await stack.ask(agent, {"state": "resumed"})
    assert resp.status_code == 200, resp.text
    assert stack.ami.muted[CALL] == {"read": False, "write": False}
    events = await _wait_events(stack, 3)
    assert [e["state"] for e in events] == ["started", "paused", "resumed"]
    assert events[1]["at"] <= events[2]["at"]
    # The state is kept on the caller channel (adoption after a restart reads it).
    assert stack.ari.rest.vars[(CALL, "COACH_RECORDING")] == ""


async def _wait_events(stack: Stack, n: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        found[:] = await stack.recording_events()
        return len(found) >= n

    await until_async(enough, 5, what=f"{n} call.recording events")
    return found


async def test_a_supervisor_may_pause_any_call(stack: Stack) -> None:
    resp = await stack.ask(stack.relay.token("supervisor"), {"state": "paused"})
    assert resp.status_code == 200, resp.text


async def test_another_agent_gets_404_as_for_an_unknown_call(stack: Stack) -> None:
    other = await stack.ask(stack.relay.token("agent", "201"), {"state": "paused"})
    assert other.status_code == 404 and other.json()["error"] == "unknown call"
    unknown = await stack.ask(stack.relay.token("supervisor"), {"state": "paused"}, "1700000099.1")
    assert unknown.status_code == 404
    assert CALL not in stack.ami.muted  # nothing reached AMI


async def test_credentials(stack: Stack) -> None:
    assert (await stack.ask(None, {"state": "paused"})).status_code == 401
    assert (await stack.ask("v1.forged.token", {"state": "paused"})).status_code == 401
    service = await stack.ask(SERVICE_TOKEN, {"state": "paused"})
    assert service.status_code == 403 and "person" in service.json()["error"]
    # ari's own route takes only a service token with the control scope.
    port = stack.relay.settings.ari_control_url
    direct = await stack.http.post(f"{port}/calls/{CALL}/recording", json={"state": "paused"})
    assert direct.status_code == 401
    browser = stack.relay.token("supervisor")
    direct = await stack.http.post(
        f"{port}/calls/{CALL}/recording",
        json={"state": "paused"},
        headers={"Authorization": f"Bearer {browser}"},
    )
    assert direct.status_code == 401
    assert CALL not in stack.ami.muted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "body must be JSON"),
        ({"state": "stopped"}, "state must be 'paused' or 'resumed'"),
        ({}, "state must be 'paused' or 'resumed'"),
        (["paused"], "state must be 'paused' or 'resumed'"),
    ],
)
async def test_bad_input_is_400_with_a_message(stack: Stack, body: object, message: str) -> None:
    agent = stack.relay.token("agent", "200")
    if isinstance(body, str):
        resp = await stack.http.post(
            f"{stack.relay.http}/calls/{CALL}/recording",
            content=body,
            headers={"Authorization": f"Bearer {agent}"},
        )
    else:
        resp = await stack.ask(agent, body)
    assert resp.status_code == 400 and message in resp.json()["error"]
    bad_id = await stack.ask(agent, {"state": "paused"}, "not a call id!")
    assert bad_id.status_code == 400


async def test_409_when_the_call_is_not_recorded_or_has_ended(stack: Stack) -> None:
    agent = stack.relay.token("agent", "200")
    resp = await stack.ask(agent, {"state": "paused"}, "1700000000.12")
    assert resp.status_code == 409 and "not being recorded" in resp.json()["error"]
    resp = await stack.ask(agent, {"state": "paused"}, "1700000000.13")
    assert resp.status_code == 409 and "ended" in resp.json()["error"]
    resp = await stack.ask(agent, {"state": "resumed"})
    assert resp.status_code == 409 and "already resumed" in resp.json()["error"]


async def test_503_when_ami_or_ari_is_down(stack: Stack, redis_server: EmbeddedRedis) -> None:
    agent = stack.relay.token("agent", "200")
    stack.ami.refuse_logins = True
    stack.ami.kick()
    assert stack.ari.recordings.ami is not None
    ami = stack.ari.recordings.ami
    await until(lambda: ami.error is not None, 5, what="AMI seen down")
    resp = await stack.ask(agent, {"state": "paused"})
    assert resp.status_code == 503 and "unavailable" in resp.json()["error"]
    assert stack.ari.recordings.state(CALL) == "recording"  # nothing changed
    # A relay whose ari is not listening.
    lone = await start_relay(
        redis_server.url,
        stack.relay.settings.bus,
        ari_control_url=f"http://127.0.0.1:{free_port()}",
    )
    try:
        resp = await stack.http.post(
            f"{lone.http}/calls/{CALL}/recording",
            json={"state": "paused"},
            headers={"Authorization": f"Bearer {agent}"},
        )
        assert resp.status_code == 503 and "unreachable" in resp.json()["error"]
    finally:
        await lone.stop()
