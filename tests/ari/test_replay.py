"""`python -m ari.replay`: a recording played as a live call through real RTP and the gateway."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from array import array

import pytest

from ari.audio import resample
from ari.replay import ReplaySettings, load_legs, replay
from coach.settings import Env
from tests.ari.conftest import TOKEN, prompt_pcm

pytestmark = pytest.mark.integration


def interleave(left: bytes, right: bytes) -> bytes:
    """Stereo PCM16 frames (left, right), the shorter side padded with silence."""
    a, b = array("h", left), array("h", right)
    n = max(len(a), len(b))
    a.extend([0] * (n - len(a)))
    b.extend([0] * (n - len(b)))
    inter = array("h", bytes(4 * n))
    inter[0::2], inter[1::2] = a, b
    return inter.tobytes()


def write_stereo(path, left: bytes, right: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(interleave(left, right))


def test_asterisk_raw_recording_loads_as_it_is(tmp_path):
    # MixMonitor(...,bD) writes headerless interleaved stereo s16le: left caller, right agent.
    customer, agent = prompt_pcm("agent-newlocation"), prompt_pcm("conf-extended")
    path = tmp_path / "20261201-101500-1796114849.12.raw"
    path.write_bytes(interleave(customer, agent) + b"\x01")  # a torn last frame is dropped
    rate, left, right = load_legs([path])
    assert rate == 8000 and left[: len(customer)] == customer and right[: len(agent)] == agent
    assert load_legs([path], raw_rate=16000)[0] == 16000


async def test_replay_stereo_file(tmp_path, stt, bus, redis_server, bus_config):
    customer, agent = prompt_pcm("agent-newlocation"), prompt_pcm("conf-extended")
    path = tmp_path / "call.wav"
    write_stereo(path, customer, agent)
    rate, left, right = load_legs([path])
    assert rate == 8000 and left[: len(customer)] == customer and right[: len(agent)] == agent
    settings = ReplaySettings.from_env(
        Env(
            {
                "STT_URL": stt.url,
                "RELAY_TOKEN": TOKEN,
                "REDIS_URL": redis_server.url,
                "BUS_PREFIX": bus_config.prefix,
                "REPLAY_BASE_PORT": "31000",
            }
        )
    )
    call_id = await replay([path], settings, speed=20.0, bus=bus)

    for speaker, pcm in (("customer", left), ("agent", right)):
        want = resample(pcm, 8000, 16000)
        got = stt.audio(call_id, speaker)
        assert got[: len(want)] == want and len(got) - len(want) < 640
    events = [e.data() for e in await bus.read_call(call_id)]
    types = [e["type"] for e in events]
    assert types[0] == "call.started" and types[-1] == "call.ended"
    # The replayed file is the call's recording (the second pass transcribes it).
    assert events[-1]["recording"] == str(path.resolve())
    assert {e["speaker"] for e in events if e["type"] == "final"} == {"customer", "agent"}
    assert all(s.ended for s in stt.streams)


async def test_replay_cli_two_mono_files(tmp_path, stt, bus, redis_server, bus_config):
    files = []
    for name in ("agent-user", "conf-getpin"):
        path = tmp_path / f"{name}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(prompt_pcm(name))
        files.append(str(path))
    env = {
        **os.environ,
        "STT_URL": stt.url,
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis_server.url,
        "BUS_PREFIX": bus_config.prefix,
        "REPLAY_BASE_PORT": "32000",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari.replay",
        *files,
        "--speed",
        "20",
        "--call-id",
        "rp-cli-1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "rp-cli-1"
    assert (
        stt.audio("rp-cli-1", "agent")[:1000]
        == resample(prompt_pcm("conf-getpin"), 8000, 16000)[:1000]
    )
    events = await bus.read_call("rp-cli-1")
    assert events[0].type == "call.started" and events[-1].type == "call.ended"
    assert "recording" not in events[-1].data()  # two mono files are no recording


async def test_replay_cli_needs_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RELAY_TOKEN", "REDIS_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ari.replay",
        "x.wav",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"RELAY_TOKEN" in err
