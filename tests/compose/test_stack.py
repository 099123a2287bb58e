"""`docker compose up` for real: the images built from this repo, a real SIP call into the
containerised Asterisk (the same baresip phones as the asterisk tier), checked through the
relay's public API; then restarts, down/up, down -v."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import websockets
from redis.backoff import NoBackoff
from redis.retry import Retry

from fakes.poll import until_async
from relay.auth import make_token
from testbed.phone import Phone, phone_ports, speech_wav
from tests.compose.conftest import ROOT, Stack, image_labels

# Building the images and the first `up` (the model is assembled onto its volume) take minutes.
pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(2400)]

CUSTOMER = ["agent-newlocation", "conf-getpin"]
AGENT = ["conf-extended", "agent-user"]


async def _phone(stack: Stack, tmp: Path, kind: str, who: str, prompts: list[str]) -> Phone:
    sip, ctrl = phone_ports()
    wav = speech_wav(tmp / f"{kind}-{who}.wav", prompts)
    port = stack.env["ASTERISK_SIP_PORT"]
    if kind == "agent":
        account = (
            f"<sip:{who}@127.0.0.1:{port}>;auth_pass={stack.sip_secrets[who]};"
            "answermode=auto;audio_codecs=PCMA;regint=3600"
        )
    else:
        account = (
            f'"Ana" <sip:{who}@127.0.0.1:{port}>;regint=0;auth_user=trunk;'
            f"auth_pass={stack.sip_secrets['trunk']};answermode=manual;audio_codecs=PCMU"
        )
    phone = await Phone(tmp, f"{kind}-{who}", account, wav, sip_port=sip, ctrl_port=ctrl).start()
    if kind == "agent":
        await phone.wait("REGISTER_OK")
    return phone


class Feed:
    """The relay's all-calls WebSocket feed (the public API a supervisor's browser uses)."""

    def __init__(self, stack: Stack) -> None:
        self.url = f"ws://127.0.0.1:{stack.env['RELAY_PORT']}/ws?callId=*"
        self.headers = {"Authorization": f"Bearer {stack.env['RELAY_TOKEN']}"}
        self.events: list[dict[str, Any]] = []
        self.ws: Any = None

    async def __aenter__(self) -> Feed:
        self.ws = await websockets.connect(
            self.url, max_size=2**20, additional_headers=self.headers
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def wait(self, match: Any, timeout: float = 120, what: str = "") -> dict[str, Any]:
        """The first event (already seen or next) that `match`es."""
        for event in self.events:
            if match(event):
                return event
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in str(await self.ws.recv()).split("\n"):
                        event = json.loads(line)
                        self.events.append(event)
                        if match(event):
                            return event
        except TimeoutError:
            seen = [
                (e.get("type"), e.get("speaker"), e.get("start"), e.get("end"))
                for e in self.events[-8:]
            ]
            raise AssertionError(
                f"no {what or 'matching event'} in {timeout:.0f} s; last events: {seen}"
            ) from None


def _history(stack: Stack, call_id: str) -> dict[str, Any]:
    resp = requests.get(
        f"{stack.relay}/calls/{call_id}/events",
        headers={"Authorization": f"Bearer {stack.env['RELAY_TOKEN']}"},
        timeout=10,
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def _browser_token(stack: Stack) -> str:
    """A supervisor's browser token, signed with the stack's AUTH_SECRET."""
    return make_token(stack.env["AUTH_SECRET"], "supervisor", None, 600)


def _audio_head(stack: Stack, call_id: str) -> requests.Response:
    """The first 44 bytes of the call's audio, through a signed media URL, as a browser asks."""
    sup = {"Authorization": f"Bearer {_browser_token(stack)}"}
    signed = requests.post(f"{stack.relay}/history/{call_id}/media-url", headers=sup, timeout=10)
    signed.raise_for_status()
    url = signed.json()["url"]
    return requests.get(
        f"{stack.relay}{url}" if url.startswith("/") else url,
        headers={"Range": "bytes=0-43"},
        timeout=10,
    )


def _record_done(stack: Stack, call_id: str) -> dict[str, Any] | None:
    """The call's record once its transcript of record is done, else None."""
    resp = requests.get(
        f"{stack.relay}/history/{call_id}",
        headers={"Authorization": f"Bearer {_browser_token(stack)}"},
        timeout=10,
    )
    if resp.status_code == 404:
        return None  # not archived yet
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    record = body.get("recordTranscript") or {}
    assert record.get("status") != "failed", record
    return body if record.get("status") == "done" else None


def _of(call_id: str, kind: str, **fields: Any) -> Any:
    return lambda e: (
        e.get("callId") == call_id
        and e.get("type") == kind
        and all(e.get(k) == v for k, v in fields.items())
    )


async def test_call_through_the_containers(stack: Stack, tmp_path: Path) -> None:
    agent = await _phone(stack, tmp_path, "agent", "200", AGENT)
    caller = await _phone(stack, tmp_path, "caller", "+34600123123", CUSTOMER)
    try:
        async with Feed(stack) as feed:
            await caller.dial(f"sip:900@127.0.0.1:{stack.env['ASTERISK_SIP_PORT']}")
            started = await feed.wait(
                lambda e: (
                    e.get("type") == "call.started" and e["caller"]["number"] == "+34600123123"
                )
            )
            call_id = started["callId"]
            for speaker in ("customer", "agent"):
                await feed.wait(_of(call_id, "final", speaker=speaker))
            # The playbook's silence tip once both have finished talking (rules, no LLM).
            coach = await feed.wait(_of(call_id, "coach"))
            assert coach["source"] == "rules"
            await caller.hangup()
            ended = await feed.wait(_of(call_id, "call.ended"))
            assert ended["reason"] == "caller-hangup"
            await feed.wait(_of(call_id, "summary"))
    finally:
        await agent.stop()
        await caller.stop()
    assert stack.ari("/channels") == [] and stack.ari("/bridges") == []
    # The call's stereo recording, as Asterisk named it, is readable where the relay's audio
    # route (and the second pass) look for it: in Asterisk's group, under RECORDINGS_DIR.
    read = await asyncio.to_thread(
        stack.compose,
        "exec",
        "-T",
        "relay",
        "python",
        "-c",
        "import sys; from pathlib import Path; from coach.recordings import locate;"
        " found = locate(sys.argv[1], Path('/recordings')); assert found, sys.argv[1];"
        " print(len(found.read_bytes()))",
        ended["recording"],
    )
    assert int(read.stdout.strip().splitlines()[-1]) > 8000 * 2 * 2  # over a second of stereo
    # The call record: the archive stored the call, the second pass its transcript of record
    # (from that recording), and the relay serves both and the audio with Range.
    record = await until_async(
        lambda: asyncio.to_thread(_record_done, stack, call_id),
        300,
        what="the call and its transcript of record in the history",
        interval=1.0,
    )
    assert record is not None
    assert record["transcript"] and record["hasRecording"]
    assert record["recordTranscript"]["utterances"], record["recordTranscript"]
    part = await asyncio.to_thread(_audio_head, stack, call_id)
    assert part.status_code == 206 and part.content[:4] == b"RIFF", part.status_code
    # The stored history, through the relay's HTTP API.
    stored = await asyncio.to_thread(_history, stack, call_id)
    assert {"call.started", "final", "call.ended", "summary"} <= {
        e["type"] for e in stored["events"]
    }

    # Redis's data survives down/up (append-only file on its volume).
    await asyncio.to_thread(stack.compose, "down", "--timeout", "30")
    await asyncio.to_thread(stack.up)
    again = await asyncio.to_thread(_history, stack, call_id)
    assert [e["id"] for e in again["events"]] == [e["id"] for e in stored["events"]]


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


async def _until_healthy(url: str, wait: float = 120) -> None:
    try:
        await until_async(lambda: asyncio.to_thread(_healthy, url), wait, interval=0.5)
    except TimeoutError:
        raise AssertionError(f"{url} not healthy after {wait:.0f} s") from None


async def test_restarts_mid_call(stack: Stack, tmp_path: Path) -> None:
    agent = await _phone(stack, tmp_path, "agent", "200", AGENT)
    caller = await _phone(stack, tmp_path, "caller", "+34600456456", ["demo-congrats"] * 2)
    ari_health = f"http://127.0.0.1:{stack.env['ARI_HTTP_PORT']}/health"
    try:
        async with Feed(stack) as feed:
            await caller.dial(f"sip:900@127.0.0.1:{stack.env['ASTERISK_SIP_PORT']}")
            started = await feed.wait(
                lambda e: (
                    e.get("type") == "call.started" and e["caller"]["number"] == "+34600456456"
                )
            )
            call_id = started["callId"]
            first = await feed.wait(
                _of(call_id, "final", speaker="customer"), what="a first customer final"
            )
            before = stack.logs("ari").count("STT stream interrupted")
            # STT restarts mid-call: the transcript resumes, and the ari side retries with
            # backoff (one warning per attempt, not one per RTP packet).
            await asyncio.to_thread(stack.compose, "restart", "stt")
            await feed.wait(
                lambda e: (
                    _of(call_id, "final", speaker="customer")(e) and e["start"] > first["end"]
                ),
                180,
                "a customer final after stt's restart",
            )
            retries = stack.logs("ari").count("STT stream interrupted") - before
            assert 1 <= retries <= 30, retries
            # Redis restarts: the relay and the services reconnect; the call goes on.
            await asyncio.to_thread(stack.compose, "restart", "redis")
            await _until_healthy(f"{stack.relay}/health")
            last = max(e["end"] for e in feed.events if _of(call_id, "final")(e))
            await feed.wait(
                lambda e: _of(call_id, "final")(e) and e["start"] >= last,
                180,
                "a final after redis's restart",
            )
            await caller.hangup()
            await feed.wait(_of(call_id, "call.ended"))
    finally:
        await agent.stop()
        await caller.stop()
    # Asterisk restarts: ari's events socket reconnects (healthy again = connected).
    await asyncio.to_thread(stack.compose, "restart", "asterisk")
    await _until_healthy(ari_health)
    assert stack.ari("/channels") == []


def test_asterisk_image_runs_the_tested_asterisk(stack: Stack) -> None:
    labels = image_labels(f"call-coach-asterisk:{stack.env['COACH_VERSION']}")
    want = stack.env.get("ASTERISK_VERSION", "")
    assert labels["org.call-coach.asterisk-major"] == "22"
    assert want and labels["org.call-coach.asterisk-version"] == want
    running = stack.ari("/asterisk/info")["system"]["version"]
    assert running == want.removeprefix("1:")


def test_gpu_profile_is_a_valid_configuration(stack: Stack) -> None:
    # No CUDA base image can be made offline here: the GPU service is validated, not built.
    out = stack.compose("--profile", "gpu", "config", "--format", "json").stdout
    gpu = json.loads(out)["services"]["stt-gpu"]
    assert gpu["build"]["target"] == "stt-gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_no_env_file_in_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and "!.env.example" in ignored


def test_redis_in_the_stack_refuses_what_a_user_may_not_do(stack: Stack) -> None:
    port = int(stack.env["REDIS_PORT"])
    anonymous = redis.Redis(port=port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(
        (redis.AuthenticationError, redis.ResponseError), match=r"NOAUTH|authenticated"
    ):
        anonymous.ping()
    relay = redis.Redis(port=port, username="relay", password=stack.env["REDIS_RELAY_PASSWORD"])
    relay.xrevrange("coach:events", count=1)  # reading is what the relay's user is for
    with pytest.raises(redis.exceptions.NoPermissionError):
        relay.delete("coach:events")
    with pytest.raises(redis.exceptions.NoPermissionError):
        relay.flushall()
    anonymous.close()
    relay.close()


def test_internal_ports_listen_on_loopback_only(stack: Stack) -> None:
    # Host networking: the containers' sockets are this machine's, as `ss` shows them.
    listening = subprocess.run(
        ["ss", "-lntuH"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    internal = {
        int(stack.env[name])
        for name in (
            "STT_PORT",
            "ORCH_PORT",
            "ARI_HTTP_PORT",
            "REDIS_PORT",
            "ASTERISK_HTTP_PORT",
            "ASTERISK_AMI_PORT",  # AMI, for the recording pause only
        )
    }
    seen: dict[int, set[str]] = {}
    for line in listening:
        local = line.split()[4]
        host, _, port = local.rpartition(":")
        if port.isdigit() and int(port) in internal:
            seen.setdefault(int(port), set()).add(host)
    assert set(seen) == internal, f"not listening: {internal - set(seen)}"
    assert all(hosts <= {"127.0.0.1", "[::1]"} for hosts in seen.values()), seen
