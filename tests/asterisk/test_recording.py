"""The recording policy on the real Asterisk: the disclosure plays before MixMonitor starts; an
agent pauses and resumes the recording from the relay (relay -> ari -> AMI MixMonitorMute), the
paused stretch of the stereo file is silence on both channels with speech before and after, and
the call's stream holds started/paused/resumed/stopped in order; AMI itself listens on loopback
only and lets its one user do nothing but `call` actions."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ari.audio import load_audio
from coach.redis_server import free_port
from fakes.poll import until
from relay.auth import make_token
from testbed.asterisk import AMI_SECRET, AMI_USER, Asterisk
from tests.asterisk.conftest import (
    bus_events,
    wait_call_event,
    wait_for_event,
    wait_no_leftovers,
)
from tests.asterisk.services import ServiceProcess

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AUTH_SECRET = "asterisk-tier-auth-secret-0123456789abcdef"
BYTES_PER_SECOND = 8000 * 2 * 2  # 8 kHz, 16-bit, stereo
SPEECH = ["agent-newlocation", "conf-getpin", "conf-extended", "agent-user"] * 3
"""Both phones talk the whole call (0.3 s gaps): any stretch of a few seconds holds speech."""
MARGIN = 0.4
"""Seconds either side of a pause edge left out of the checks (the AMI round trip)."""
LATE_START = 1.0
"""More after the pause: the file starts at the bridge, `started.at` a little later (ari asks
ARI who answered first), so an edge's place in the file is up to that much after its `at`."""


@pytest.fixture
def relay(stack_env: dict[str, str], logs: Path) -> Iterator[ServiceProcess]:
    """Factory of a real `python -m relay` that reaches the given ari's control port."""
    started: list[ServiceProcess] = []

    def make(ari: ServiceProcess) -> ServiceProcess:
        port = free_port()
        env = {
            **stack_env,
            "AUTH_SECRET": AUTH_SECRET,
            "RELAY_HOST": "127.0.0.1",
            "RELAY_PORT": str(port),
            "ARI_CONTROL_URL": ari.health_url.removesuffix("/health"),
        }
        svc = ServiceProcess(
            "relay", env, f"http://127.0.0.1:{port}/health", logs / f"relay-{len(started)}.log"
        )
        started.append(svc)
        svc.env["RELAY_BASE"] = f"http://127.0.0.1:{port}"
        return svc.start(timeout=30)

    yield make  # type: ignore[misc]
    for svc in started:
        svc.stop()


def _recording_file(pbx: Asterisk, path: str) -> Path:
    """The host path of a recording path as Asterisk (inside the chroot) names it."""
    return pbx.chroot / path.lstrip("/")


def _size(file: Path) -> int:
    return file.stat().st_size if file.exists() else 0


async def _grown(file: Path, seconds: float) -> None:
    """Wait until the recording holds `seconds` more audio than now."""
    target = _size(file) + seconds * BYTES_PER_SECOND
    await until(lambda: _size(file) >= target, seconds + 15, what=f"{seconds} s more recording")


async def test_pause_and_resume_leave_silence_in_the_stereo_recording(
    pbx, ari_factory, relay, phones, stack_bus
):
    agent_id = "203"
    ari = ari_factory(
        AGENT_DIAL=f"PJSIP/{agent_id}", AMI_PORT=str(pbx.ami_port), AMI_SECRET=AMI_SECRET
    )
    relay_proc = relay(ari)
    base = relay_proc.env["RELAY_BASE"]
    # The disclosure plays before MixMonitor: a dialplan global, as the entrypoint writes it.
    pbx.cli("dialplan set global RECORDING_DISCLOSURE beep")
    try:
        await phones("agent", agent_id, SPEECH, lead=0.0, gap=0.3)
        number = f"+34611{random.randrange(10**6):06d}"
        caller = await phones("caller", number, SPEECH, gap=0.3)
        await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
        started = await wait_for_event(
            stack_bus,
            lambda e: e["type"] == "call.started" and e.get("caller", {}).get("number") == number,
        )
    finally:
        pbx.cli("dialplan set global RECORDING_DISCLOSURE ''")
    call_id = started["callId"]
    rec_started = await wait_call_event(stack_bus, call_id, "call.recording", state="started")
    assert ari.health()["ami"] == "connected"
    file = _recording_file(pbx, await _mixmonitor_filename(pbx, call_id))
    await until(lambda: _size(file) > 0, 10, what="the recording file")

    agent = make_token(AUTH_SECRET, "agent", agent_id)
    other = make_token(AUTH_SECRET, "agent", "299")
    url = f"{base}/calls/{call_id}/recording"
    async with httpx.AsyncClient(timeout=15) as http:

        async def ask(token: str, state: str) -> httpx.Response:
            return await http.post(
                url, json={"state": state}, headers={"Authorization": f"Bearer {token}"}
            )

        await _grown(file, 3.0)
        assert (await ask(other, "paused")).status_code == 404  # not that agent's call
        resp = await ask(agent, "paused")
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "paused"
        again = await ask(agent, "paused")
        assert again.status_code == 409 and "already paused" in again.json()["error"]
        await _grown(file, 4.0)
        resp = await ask(agent, "resumed")
        assert resp.status_code == 200, resp.text
        await _grown(file, 3.0)
    await caller.hangup()
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    await wait_no_leftovers(pbx)

    events = await bus_events(stack_bus, call_id)
    recs = [e for e in events if e["type"] == "call.recording"]
    assert [e["state"] for e in recs] == ["started", "paused", "resumed", "stopped"]
    assert [e["at"] for e in recs] == sorted(e["at"] for e in recs)
    assert recs[0] == rec_started
    kinds = [e["type"] for e in events]
    assert kinds.index("call.answered") < kinds.index("call.recording")
    assert kinds.index("call.ended") > events.index(recs[-1])
    assert recs[-1]["path"] == ended["recording"]
    assert _recording_file(pbx, ended["recording"]) == file

    rate, channels = load_audio(file)
    stereo = [np.frombuffer(ch, "<i2").astype(np.int32) for ch in channels]
    origin = rec_started["at"]  # the file starts when the recording does

    def window(start: float, end: float) -> list[np.ndarray]:
        return [ch[int(start * rate) : int(end * rate)] for ch in stereo]

    paused_at, resumed_at = recs[1]["at"] - origin, recs[2]["at"] - origin
    assert resumed_at - paused_at > 3.5
    during = window(paused_at + LATE_START, resumed_at - MARGIN)
    before = window(0.5, paused_at - MARGIN)
    after = window(resumed_at + MARGIN, len(stereo[0]) / rate)
    for side in (0, 1):  # caller, agent
        assert len(during[side]) > 2 * rate and not np.any(during[side]), "paused: silence"
        assert np.abs(before[side]).max() > 1000, "speech before the pause"
        assert np.abs(after[side]).max() > 1000, "speech after the resume"

    # The disclosure was played to the caller before MixMonitor started.
    # (This was the only call in progress: the log's last MixMonitor is its own.)
    lines = [
        ln
        for ln in pbx.full_log.read_text(errors="replace").splitlines()
        if "@coach-call:" in ln and ("Playback(" in ln or "MixMonitor(" in ln)
    ]
    last = max(i for i, ln in enumerate(lines) if "MixMonitor(" in ln)
    assert "Playback(" in lines[last - 1] and '"beep"' in lines[last - 1], lines[-3:]


async def _mixmonitor_filename(pbx: Asterisk, call_id: str) -> str:
    """MIXMONITOR_FILENAME of the caller channel (ARI, as ari reads it)."""
    body = await asyncio.to_thread(
        pbx.get, f"/channels/{call_id}/variable?variable=MIXMONITOR_FILENAME"
    )
    return str(body["value"])


def _ami(port: int, host: str = "127.0.0.1") -> tuple[socket.socket, Any]:
    sock = socket.create_connection((host, port), timeout=5)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"Asterisk Call Manager/")
    return sock, reader


def _action(sock: socket.socket, reader: Any, **fields: str) -> dict[str, str]:
    sock.sendall("".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n")
    reply: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        reply[key.strip()] = value.strip()
    return reply


def test_ami_listens_on_loopback_for_one_user_that_may_only_mute(pbx: Asterisk) -> None:
    # A deliberate change: AMI used to be off; now it is on, for MixMonitorMute only.
    settings = pbx.cli("manager show settings")
    assert re.search(rf"TCP Bindaddress:\s+127\.0\.0\.1:{pbx.ami_port}\b", settings), settings
    assert re.search(r"Web Manager \(AMI/HTTP\):\s+No", settings)
    user = pbx.cli(f"manager show user {AMI_USER}")
    assert re.search(r"read perm:\s+<none>", user) and re.search(
        r"write perm:\s+call\s*$", user, re.M
    )
    # Bound to 127.0.0.1 only: another loopback address is not answered.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", pbx.ami_port), timeout=2)
    # A wrong secret or an unknown user is refused and the connection closed.
    for username, secret in ((AMI_USER, "Not-The-Secret-0123"), ("admin", AMI_SECRET)):
        sock, reader = _ami(pbx.ami_port)
        with sock:
            reply = _action(sock, reader, Action="Login", Username=username, Secret=secret)
            assert reply == {"Response": "Error", "Message": "Authentication failed"}
            assert reader.readline() == b""
    sock, reader = _ami(pbx.ami_port)
    with sock:
        login = _action(sock, reader, Action="Login", Username=AMI_USER, Secret=AMI_SECRET)
        assert login["Response"] == "Success"
        for action, fields in (
            ("Originate", {"Channel": "Local/s@coach-call", "Application": "Wait", "Data": "1"}),
            ("Command", {"Command": "core show channels"}),
            ("Reload", {}),
            ("ModuleLoad", {"Module": "app_exec.so", "LoadType": "load"}),
            ("MixMonitor", {"Channel": "none", "File": "/tmp/x.wav"}),
            ("GetConfig", {"Filename": "manager_users.conf"}),
        ):
            reply = _action(sock, reader, Action=action, **fields)
            assert reply == {"Response": "Error", "Message": "Permission denied"}, action
        # What it is for is allowed (the channel does not exist: the action itself ran).
        mute = _action(
            sock, reader, Action="MixMonitorMute", Channel="nope", Direction="both", State="1"
        )
        assert mute == {"Response": "Error", "Message": "No such channel"}
