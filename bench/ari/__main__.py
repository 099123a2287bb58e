"""`python -m bench.ari`: N concurrent calls set up and torn down through the ARI double
(`--real`: N SIP calls through the real Asterisk, see bench/ari/real.py; 8 by default).

Runs `python -m ari` as its own process (so its CPU can be measured alone) against the ARI
double, the fake STT and an embedded Redis in this process. Reports setup time (StasisStart
-> first audio at STT) p50/p95, CPU of the ari process per call and per call-second, and
leaks after teardown (channels, bridges, ports, taps, threads, STT sockets: must be zero).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ari.audio import load_wav
from bench.ari import health_after_teardown
from coach.redis_server import EmbeddedRedis
from fakes.ari_double import AriDouble
from fakes.fake_stt import FakeStt
from fakes.poll import until, until_async

SOUNDS = Path("/usr/share/asterisk/sounds/es")
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "es-dev-prompts.txt"
TOKEN = "bench-token"


def _prompts(seconds: float) -> list[bytes]:
    names = CORPUS.read_text().split() if CORPUS.exists() else []
    names = names or [p.stem for p in sorted(SOUNDS.glob("*.wav"))]
    out = []
    for name in names:
        path = SOUNDS / f"{name}.wav"
        if path.exists():
            _, (pcm, *_) = load_wav(path)
            out.append(pcm)
    if not out:
        sys.exit("no prompts: install asterisk-core-sounds-es-wav (scripts/setup)")
    # Build each call's audio to `seconds` by chaining prompts.
    calls = []
    want = int(seconds * 8000) * 2
    for i in range(len(out)):
        pcm = b""
        j = i
        while len(pcm) < want:
            pcm += out[j % len(out)]
            j += 1
        calls.append(pcm[:want])
    return calls


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _wait(predicate, wait: float, what: str) -> None:
    await until(predicate, wait, what=what, interval=0.05)


async def _round(double, stt, http, pid, audio, *, calls, seconds, ramp) -> dict[str, Any]:
    cpu0 = _cpu_seconds(pid)
    own0 = time.process_time()
    wall0 = time.monotonic()
    cids = []
    for i in range(calls):
        cids.append(
            await double.incoming_call(
                f"555{i:04d}", f"Bench {i}", audio[i % len(audio)], audio[(i + 7) % len(audio)]
            )
        )
        await asyncio.sleep(ramp / calls)
    want = int(seconds * 16000) * 2 - 640
    try:
        await _wait(
            lambda: all(
                len(stt.audio(c, sp)) >= want for c in cids for sp in ("customer", "agent")
            ),
            seconds * 1.5 + 20,
            "audio did not reach STT",
        )
    except TimeoutError:
        short = [
            (c, sp, len(stt.audio(c, sp)))
            for c in cids
            for sp in ("customer", "agent")
            if len(stt.audio(c, sp)) < want
        ]
        print(
            f"incomplete after {seconds * 1.5 + 20:.0f} s: {len(short)} of {2 * calls} streams, "
            f"e.g. {short[:3]} (want {want} bytes)",
            flush=True,
        )
    busy = (await http.get("/health")).json()
    threads_busy = _threads(pid)
    for cid in cids:
        await double.hangup(cid)
    await _wait(lambda: not double.channels and not double.bridges, 60, "teardown")
    await _wait(lambda: stt.open_streams == 0, 60, "STT sockets")
    health = await health_after_teardown(http)
    return {
        "setups": [stt.first_audio_at(c) - double.stasis_started_at[c] for c in cids],
        "cpu": _cpu_seconds(pid) - cpu0,
        "wall": time.monotonic() - wall0,
        "own_cpu": time.process_time() - own0,
        "taps": busy["taps"],
        "threads_busy": threads_busy,
        "threads": _threads(pid),
        "fds": _fds(pid),
        "incomplete": sum(
            1 for c in cids for sp in ("customer", "agent") if len(stt.audio(c, sp)) < want
        ),
        "leaks": {
            "channels": len(double.channels),
            "bridges": len(double.bridges),
            "calls": health["calls"],
            "taps": health["taps"],
            "ports": health["portsInUse"],
            "stt_sockets": stt.open_streams,
        },
    }


async def run(calls: int, seconds: float, ramp: float, rounds: int) -> int:
    redis = EmbeddedRedis().start()
    stt = await FakeStt(TOKEN).start()
    double = await AriDouble(password="bench-pass").start()
    http_port = _free_port()
    env = {
        **os.environ,
        "ARI_URL": double.url,
        "ARI_USER": "coach",
        "ARI_PASS": "bench-pass",
        "STT_URL": stt.url,
        "RELAY_TOKEN": TOKEN,
        "REDIS_URL": redis.url,
        "BUS_PREFIX": f"bench{random.getrandbits(24):x}",
        "MEDIA_BIND": "127.0.0.1",
        "BASE_PORT": "40000",
        "MEDIA_PORT_COUNT": str(max(100, calls * 3)),
        "ARI_HTTP_HOST": "127.0.0.1",
        "ARI_HTTP_PORT": str(http_port),
        "LOG_LEVEL": "warning",
    }
    profile = os.environ.get("BENCH_PROFILE")  # path: run the ari process under cProfile
    extra = ["-m", "cProfile", "-o", profile] if profile else []
    proc = await asyncio.create_subprocess_exec(sys.executable, *extra, "-m", "ari", env=env)
    audio = _prompts(seconds)
    try:
        await double.wait_connected(30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            with contextlib.suppress(TimeoutError):  # the rounds report an unhealthy ari
                await until_async(healthy, 20, what="ari healthy", interval=0.1)
            # The double resamples each prompt once (pure Python, slow): do it before timing.
            for pcm in audio:
                double._payloads(pcm, "slin16")
            threads_idle, fds_idle = _threads(proc.pid), _fds(proc.pid)
            results = []
            for round_no in range(1, rounds + 1):
                results.append(
                    await _round(
                        double, stt, http, proc.pid, audio, calls=calls, seconds=seconds, ramp=ramp
                    )
                )
                print(f"round {round_no}: done", flush=True)
        first, last = results[0], results[-1]
        print(
            f"calls: {calls} concurrent x {rounds} rounds, {seconds:.0f} s of speech per "
            f"party, ramp {ramp:.1f} s, format slin16 (RTP 20 ms, 2 taps per call)"
        )
        for n, r in enumerate(results, 1):
            setups = r["setups"]
            print(
                f"round {n}: setup StasisStart->first audio at STT: "
                f"p50 {_pct(setups, 0.5) * 1000:.0f} ms, p95 {_pct(setups, 0.95) * 1000:.0f} ms,"
                f" max {max(setups) * 1000:.0f} ms; ari CPU {r['cpu']:.2f} s over "
                f"{r['wall']:.1f} s = {r['cpu'] / calls * 1000:.0f} ms per call, "
                f"{r['cpu'] / (calls * seconds) * 100:.2f} % of a core per call-second of speech "
                f"(peak {r['taps']} taps, {r['threads_busy']} threads); bench process "
                f"(double + fake STT) CPU {r['own_cpu']:.1f} s"
            )
        leaks = dict(last["leaks"])
        # Pools (REST threads, HTTP/Redis connections) grow to their bound in round 1:
        # a leak is growth from the end of round 1 to the end of the last round.
        leaks["threads"] = last["threads"] - first["threads"]
        leaks["fds"] = last["fds"] - first["fds"]
        lost_audio = sum(r["incomplete"] for r in results)
        print(
            f"leaks after teardown: {leaks} (threads {last['threads']}, fds {last['fds']} "
            f"at rest; idle before any call: threads {threads_idle}, fds {fds_idle})"
        )
        print(f"streams with incomplete audio: {lost_audio}")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            text = (await http.get("/metrics")).text
        rtp = {
            line.split('"')[1]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("ari_rtp_packets_total{")
        }
        print(f"RTP packets at the gateway (all rounds): {rtp}")
        buckets = {
            line.split('"')[1]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("ari_setup_seconds_bucket{")
        }
        total = buckets.get("+Inf", 0) or 1
        print(
            "ari-internal setup (its StasisStart receipt -> first audio forwarded), share <= "
            + ", ".join(f"{le} s: {n / total:.0%}" for le, n in buckets.items() if le != "+Inf")
        )
        print(f"load average at the end: {os.getloadavg()}")
        return 0 if not any(leaks.values()) and not lost_audio else 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        await double.stop()
        await stt.stop()
        redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ari")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per party")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds to start all calls")
    parser.add_argument("--rounds", type=int, default=2, help="leaks = growth after round 1")
    parser.add_argument(
        "--real",
        action="store_true",
        help="real Asterisk 22 and SIP phones instead of the double (root)",
    )
    parser.add_argument(
        "--transport",
        default="rtp",
        choices=["rtp", "websocket"],
        help="ExternalMedia transport (--real)",
    )
    args = parser.parse_args()
    if args.real:
        from bench.ari.real import run_real

        # 8: what 2 cores carry with both sides' phones on the same machine (see the README).
        calls = 8 if args.calls == 100 else args.calls
        return asyncio.run(run_real(calls, args.seconds, args.transport))
    return asyncio.run(run(args.calls, args.seconds, args.ramp, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
