"""`python -m bench.ari --real`: N concurrent SIP calls through the real Asterisk 22.

The same parts as the `asterisk` test tier: the chroot's Asterisk with the repo's
configuration, baresip phones on both sides (callers on the trunk, N registered agents reached
through a hunting Local dial string), `python -m ari` as its own process; STT is the fake one
(in this process), so what is measured is call control and media, not speech recognition.

Reports, per leg: answer (the phone's CALL_ESTABLISHED) -> first audio at STT, p50/p95; CPU
of ari and of Asterisk per call; leaks after teardown (channels, bridges, ari calls, taps,
ports, STT sockets: must be 0).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ari import health_after_teardown
from coach.redis_server import EmbeddedRedis, free_port
from fakes.fake_stt import FakeStt
from fakes.poll import until, until_async
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
from testbed.phone import Phone, phone_ports, speech_wav

TOKEN = "bench-real-token"
PROMPTS = ["agent-newlocation", "conf-getpin", "agent-user", "conf-extended"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _until(predicate: Any, wait: float) -> None:
    await until(predicate, wait, what="state of other processes", interval=0.05)


async def run_real(calls: int, seconds: float, transport: str) -> int:
    """One round of `calls` concurrent calls; returns 0 when nothing leaked."""
    try:
        chroot = ensure_chroot()
    except (Unavailable, SetupFailed) as exc:
        print(f"bench.ari --real: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-ari-real-"))
    agents = [str(300 + i) for i in range(calls)]
    pbx = Asterisk(
        chroot,
        sip_port=free_port(),
        http_port=free_port(),
        agents=agents,
        extra_dialplan=hunt_dialplan(300, calls),
    ).start()
    pbx.load_test_modules()
    redis = EmbeddedRedis().start()
    stt = await FakeStt(TOKEN).start()
    http_port = free_port()
    env = {
        **os.environ,
        "COACH_ENV_FILE": "/dev/null",
        "ARI_URL": pbx.url,
        "ARI_USER": ARI_USER,
        "ARI_PASS": ARI_PASS,
        "STT_URL": stt.url,
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis.url,
        "BUS_PREFIX": f"benchreal{random.getrandbits(20):x}",
        "MEDIA_HOST": "127.0.0.1",
        "MEDIA_BIND": "127.0.0.1",
        "BASE_PORT": "40000",
        "MEDIA_PORT_COUNT": str(max(100, calls * 3)),
        "AGENT_DIAL": HUNT_DIAL,
        "AGENT_TIMEOUT": "20",
        "ARI_HTTP_HOST": "127.0.0.1",
        "ARI_HTTP_PORT": str(http_port),
        "LOG_LEVEL": "warning",
        "MEDIA_TRANSPORT": transport,
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ari", env=env)
    phones: list[Phone] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await until_async(healthy, 30, what="ari healthy", interval=0.1)
            pad = seconds + 60
            for i, agent in enumerate(agents):
                wav = speech_wav(
                    work / f"agent-{agent}.wav", PROMPTS[i % 4 :] + PROMPTS[: i % 4], pad=pad
                )
                sip, ctrl = phone_ports()
                phone = Phone(
                    work,
                    f"agent-{agent}",
                    f"<sip:{agent}@127.0.0.1:{pbx.sip_port}>;auth_pass="
                    f"{sip_secret(agent)};answermode=auto;audio_codecs=PCMU;regint=3600",
                    wav,
                    sip_port=sip,
                    ctrl_port=ctrl,
                )
                phones.append(await phone.start())
                await phone.wait("REGISTER_OK")
            print(
                f"asterisk {pbx.get('/asterisk/info')['system']['version']}, {calls} agents "
                f"registered, media transport {transport}",
                flush=True,
            )
            ast_pid = pbx.proc.pid if pbx.proc else 0
            cpu0 = (_cpu_seconds(proc.pid), _cpu_seconds(ast_pid))
            wall0 = time.monotonic()
            callers: list[Phone] = []
            for i in range(calls):
                number = f"+3462{i:07d}"
                wav = speech_wav(
                    work / f"caller-{i}.wav",
                    PROMPTS[(i + 2) % 4 :] + PROMPTS[: (i + 2) % 4],
                    pad=pad,
                )
                sip, ctrl = phone_ports()
                caller = Phone(
                    work,
                    f"caller-{i}",
                    f"<sip:{number}@127.0.0.1:{pbx.sip_port}>;"
                    f"regint=0;auth_user={TRUNK};auth_pass={sip_secret(TRUNK)};"
                    "answermode=manual;audio_codecs=PCMU",
                    wav,
                    sip_port=sip,
                    ctrl_port=ctrl,
                )
                phones.append(await caller.start())
                await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
                await caller.wait("CALL_ESTABLISHED")
                # One call at a time reaches the hunt: wait for this one's agent to answer.
                await _until(
                    lambda n=i + 1: sum(p.seen("CALL_ESTABLISHED") for p in phones[:calls]) >= n, 30
                )
                callers.append(caller)
            setup_wall = time.monotonic() - wall0
            await _until(
                lambda: (
                    len({(s.call_id, s.speaker) for s in stt.streams if any(s.audio)}) >= 2 * calls
                ),
                60,
            )
            busy = (await http.get("/health")).json()
            # Hold the calls for `seconds` of speech (the phones' own clocks pace it).
            deadline = time.monotonic() + seconds
            await _until(lambda: time.monotonic() >= deadline, seconds + 5)

            # Calls were set up one at a time: the k-th call's streams are the k-th to start.
            def firsts(speaker: str) -> list[float]:
                return sorted(s.first_audio_at or 0 for s in stt.streams if s.speaker == speaker)

            caller_up = [
                next(e["_at"] for e in c.events if e["type"] == "CALL_ESTABLISHED") for c in callers
            ]
            agent_up = sorted(
                next(e["_at"] for e in p.events if e["type"] == "CALL_ESTABLISHED")
                for p in phones[:calls]
            )
            setups = {
                "customer": [a - b for a, b in zip(firsts("customer"), caller_up, strict=True)],
                "agent": [a - b for a, b in zip(firsts("agent"), agent_up, strict=True)],
            }
            await asyncio.gather(*(c.hangup() for c in callers))
            await _until(lambda: pbx.leftovers() == ([], []), 60)
            await _until(lambda: stt.open_streams == 0, 60)
            health = await health_after_teardown(http)
            cpu = (_cpu_seconds(proc.pid) - cpu0[0], _cpu_seconds(ast_pid) - cpu0[1])
            wall = time.monotonic() - wall0
            text = (await http.get("/metrics")).text
        buckets = {
            line.split('"')[1]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("ari_setup_seconds_bucket{")
        }
        total = buckets.get("+Inf", 0) or 1
        leaks = {
            "channels": len(pbx.leftovers()[0]),
            "bridges": len(pbx.leftovers()[1]),
            "calls": health["calls"],
            "taps": health["taps"],
            "ports": health["portsInUse"],
            "stt_sockets": stt.open_streams,
        }
        print(
            f"calls: {calls} concurrent SIP calls (G.711 ulaw both legs), set up one after "
            f"another in {setup_wall:.1f} s, held {seconds:.0f} s"
        )
        print(
            "ari setup (its StasisStart -> first audio forwarded, per tap), share <= "
            + ", ".join(f"{le} s: {n / total:.0%}" for le, n in buckets.items() if le != "+Inf")
        )
        for leg, values in setups.items():
            print(
                f"{leg} leg: answered -> first audio at STT p50 {_pct(values, 0.5) * 1000:.0f} ms,"
                f" p95 {_pct(values, 0.95) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
                + (
                    " (negative: the tap was ready before the phone saw the answer)"
                    if min(values) < 0
                    else ""
                )
            )
        print(
            f"CPU over {wall:.1f} s: ari {cpu[0]:.2f} s = {cpu[0] / calls * 1000:.0f} ms per "
            f"call ({cpu[0] / wall / calls * 100:.2f} % of a core per call); Asterisk "
            f"{cpu[1]:.2f} s = {cpu[1] / calls * 1000:.0f} ms per call; peak {busy['taps']} taps"
        )
        print(f"leaks after teardown: {leaks}")
        return 0 if not any(leaks.values()) else 1
    finally:
        await asyncio.gather(*(p.stop() for p in phones), return_exceptions=True)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        await stt.stop()
        redis.stop()
        if os.environ.get("BENCH_KEEP"):
            pbx.stop()
            print(f"kept {pbx.dir}")
        else:
            pbx.cleanup()
