"""Fixtures for the ari tests: the ARI double, the fake STT, a running ari Service."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ari.audio import load_wav
from ari.service import Service
from ari.settings import Settings
from coach.bus import Bus
from coach.settings import Env
from fakes.ari_double import AriDouble
from fakes.fake_stt import FakeStt

SOUNDS = Path("/usr/share/asterisk/sounds/es")
TOKEN = "test-relay-token"


def prompt_pcm(name: str) -> bytes:
    """8 kHz PCM16 LE of one Spanish prompt (Debian asterisk-core-sounds-es-wav)."""
    path = SOUNDS / f"{name}.wav"
    if not path.exists():
        # A failure, not a skip: scripts/setup installs the package, and skipping would let
        # the whole media path go untested without anyone noticing.
        pytest.fail(f"{path} missing: install asterisk-core-sounds-es-wav (scripts/setup)")
    rate, channels = load_wav(path)
    assert rate == 8000
    return channels[0]


@pytest.fixture
async def double() -> AsyncIterator[AriDouble]:
    d = await AriDouble(password="ari-test-pass").start()
    yield d
    await d.stop()


@pytest.fixture
async def stt(bus: Bus) -> AsyncIterator[FakeStt]:
    s = await FakeStt(TOKEN, bus).start()
    yield s
    await s.stop()


def make_settings(
    double: AriDouble, stt: FakeStt, redis_url: str, prefix: str, **extra: str
) -> Settings:
    env = {
        "ARI_URL": double.url,
        "ARI_USER": "coach",
        "ARI_PASS": "ari-test-pass",
        "STT_URL": stt.url,
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis_url,
        "BUS_PREFIX": prefix,
        "MEDIA_HOST": "127.0.0.1",
        "MEDIA_BIND": "127.0.0.1",
        "BASE_PORT": str(random.randrange(30000, 60000, 100)),
        "MEDIA_PORT_COUNT": "100",
        "AGENT_DIAL": "PJSIP/200",
        "AGENT_TIMEOUT": "5",
        **extra,
    }
    return Settings.from_env(Env(env))


@pytest.fixture
async def service_factory(double, stt, redis_server, bus_config, bus):
    started: list[Service] = []
    threads_before = {t.ident for t in threading.enumerate()}

    async def make(**extra: str) -> Service:
        settings = make_settings(double, stt, redis_server.url, bus_config.prefix, **extra)
        svc = Service(settings, bus, serve_http=False)
        await svc.start()
        started.append(svc)
        await double.wait_connected()
        return svc

    yield make
    for svc in started:
        if svc.events is not None and svc.events.state.value != "closed":
            await svc.stop()
    leaked = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    if leaked:
        import sys
        import traceback

        frames = sys._current_frames()
        stacks = {
            t.name: "".join(traceback.format_stack(frames[t.ident]))
            for t in leaked
            if t.ident in frames
        }
        raise AssertionError(f"threads left after stop: {stacks}")


Maker = Callable[..., Any]


def assert_customer_audio(got: bytes, want: bytes, max_held: float = 0.5) -> None:
    """The caller's stream is `want` exactly, except that it starts while the agent rings and
    is held (silence of the same length) until the agent answers: at most `max_held` of it."""
    got = got[: len(want)]
    held = next(i for i in range(0, len(got) + 1, 640) if got[i:] == want[i:])
    assert got[:held] == bytes(held), "held audio is not silence"
    assert held <= len(want) * max_held, f"{held} of {len(want)} bytes held"


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Collect after each test so an unclosed socket is reported on the test that leaked it."""
    yield
    import gc

    gc.collect()
