"""Which voice should speak the demo call: WER per voice and per speaker.

Every line of the bundled demo scripts (`demo/transcript*.es.json`) is spoken by each voice of
`bench.voices` that is installed here, passed through the telephone path (resampled to 8 kHz
as a phone leg would be, then to the 16 kHz the service decodes) and transcribed by
faster-whisper base (the model the tests and the demo use, beam 5, Spanish). The script's text
is the reference; WER is counted on the customer's lines and on the agent's lines apart.
`--rates 16000` adds the wideband path (what the demo sends as slin16).

    python -m bench.demo_voice                      # every installed voice, 8 kHz path
    python -m bench.demo_voice --voices pico-es,mbrola-es4 --rates 8000,16000
    python -m bench.demo_voice --stack    # the demo call streamed through the native stack

`--stack` is the figure a newcomer sees: it starts `scripts/stack.py` (embedded Redis, stt,
relay, orchestrator, archive), makes the demo call with each `--pairs` customer:agent voices,
replays it in real time as RTP (`ari.replay`, slin16 as the demo does) and scores the finals
the relay broadcasts, per speaker (about two minutes per pair).

Takes a few minutes (about 40 short decodes per voice and rate on two cores); progress goes to
stderr, the table to stdout.

Figures (2026-12-01, 2-core machine shared with other jobs; 21 lines, 89 customer and 129
agent words; WER customer / agent at 8 kHz, at 16 kHz in brackets; rtf = synthesis time per
second of speech):

    espeak-ng es-419+m3 (the old customer)   0.300 / 0.461          rtf 0.01
    espeak-ng es-419 (the old agent)         0.289 / 0.438          rtf 0.01
    espeak-ng es+f3                          0.389 / 0.531
    MBROLA es1 / es2 / es3 / es4             0.52-0.94 / 0.56-1.38  (espeak-ng's mapping
    MBROLA mx2 / vz1                         0.53-0.74 / 0.58-0.70   loses stressed vowels)
    Festival el_diphone                      0.100 / 0.242          rtf 0.19
    Kokoro-82M int8, jf_alpha (Japanese)     0.100 / 0.148          rtf 1.92, 92 MB
    Pico es-ES (female)                      0.022 / 0.023 (0.022 / 0.031)   rtf 0.01
    Pico es-ES lowered (pico-es-low)         0.033 / 0.016 (0.044 / 0.016)
    Pico es-ES male reading (pico-es-male)   0.022 / 0.031 (0.033 / 0.023)

Through the stack (`--stack`: the demo call streamed at real time, slin16, finals scored per
speaker; same machine, same day):

    espeak-ng es-419+m3 / es-419 (before)    customer 0.237  agent 0.426
    Pico es-ES / pico-es-male (after)        customer 0.066  agent 0.111

Most errors left after the change are the streaming service's (a word repeated where an
utterance starts, "Vaya, siento" -> "Baya Baya Siento"), not the voice's: offline the same audio
scores 0.02-0.03.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from bench.stt.wer import WerCounts, wer
from bench.voices import BY_NAME, SPANISH, Voice, available, speak
from coach.redis_server import EmbeddedRedis, free_port
from coach.resample import resample
from coach.tasks import TaskSet

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("transcript.es.json", "transcript2.es.json")
PAD = 0.3  # seconds of silence either side of a line, as between turns of a call
TOKEN = "demo-voice-bench-token-0123456789"
PAIRS = "espeak-es419-m3:espeak-es419,pico-es:pico-es-male"  # before and after the change


def lines() -> list[tuple[str, str]]:
    """(speaker, text) of every line of the demo scripts."""
    out: list[tuple[str, str]] = []
    for name in SCRIPTS:
        script = json.loads((ROOT / "demo" / name).read_text(encoding="utf-8"))
        out += [(line["speaker"], line["text"]) for line in script["lines"]]
    return out


def line_audio(voice: Voice, text: str, rate: int) -> np.ndarray:
    """The 16 kHz float audio STT would decode for one line sent at `rate` Hz."""
    x = speak(voice, text, rate)
    pad = np.zeros(int(PAD * rate), dtype=np.float32)
    x = np.concatenate([pad, x, pad])
    return (resample(x, rate, 16_000) / 32768.0).astype(np.float32)


async def collect(port: str, call_id: str, live: asyncio.Event) -> list[dict[str, Any]]:
    """The events of one call from the relay's all-calls feed, until its summary."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws?callId=*",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    ) as ws:
        async with asyncio.timeout(600):
            while True:
                for line in str(await ws.recv()).split("\n"):
                    event = json.loads(line)
                    if event.get("type") == "relay.live":
                        live.set()
                    elif event.get("callId") == call_id:
                        events.append(event)
                        if event["type"] == "summary":
                            return events


def make_call(customer: str, agent: str, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The demo call spoken by these voices: its WAV and its reference."""
    wav = tmp / f"{customer}-{agent}.wav"
    make = ROOT / "scripts" / "make_demo_call.py"
    voices = ["--voice", f"customer={customer}", "--voice", f"agent={agent}"]
    cmd = [sys.executable, str(make), "--out", str(wav), *voices]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return wav, json.loads(wav.with_suffix(".json").read_text(encoding="utf-8"))


async def through_stack(
    env: dict[str, str], wav: Path, reference: dict[str, Any], customer: str, agent: str
) -> str:
    """One demo call replayed through the stack: a table row."""
    call_id = f"voice-{uuid.uuid4().hex[:6]}"
    async with TaskSet("demo_voice") as tasks:
        live = asyncio.Event()
        collector = tasks.spawn(collect(env["RELAY_PORT"], call_id, live), "collector")
        await asyncio.wait_for(live.wait(), 60)
        replay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ari.replay",
            str(wav),
            "--call-id",
            call_id,
            "--agent",
            reference["agent"],
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,  # the call id; the table goes to stdout
        )
        if await replay.wait() != 0:
            raise SystemExit("ari.replay failed; see its output above")
        events = await collector
    scores = []
    for speaker in ("customer", "agent"):
        said = " ".join(x["text"] for x in reference["lines"] if x["speaker"] == speaker)
        finals = sorted(
            (e for e in events if e["type"] == "final" and e["speaker"] == speaker),
            key=lambda e: e["start"],
        )
        heard = " ".join(e["text"] for e in finals)
        scores.append(wer(said, heard))
        print(
            f"  {speaker} ({customer if speaker == 'customer' else agent}): {heard}",
            file=sys.stderr,
        )
    return f"{customer:<20} {agent:<20} {scores[0]:>8.3f} {scores[1]:>6.3f}"


def stack_main(pairs: list[tuple[str, str]]) -> int:
    """Start the native stack, stream the demo call once per voice pair, print the table."""
    with tempfile.TemporaryDirectory(prefix="demo-voice-") as d:
        tmp = Path(d)
        redis = EmbeddedRedis(data_dir=tmp / "redis").start()
        env = {
            **os.environ,
            "RELAY_TOKEN": TOKEN,
            "AUTH_SECRET": "v" * 48,
            "REDIS_URL": redis.url,
            "BUS_PREFIX": f"voice{uuid.uuid4().hex[:6]}",
            "RELAY_PORT": str(free_port()),
            "STT_PORT": str(free_port()),
            "ORCH_PORT": str(free_port()),
            "ARCHIVE_PORT": str(free_port()),
            "PG_PORT": str(free_port()),
            "PG_DATA_DIR": str(tmp / "postgres"),
            "REPLAY_BASE_PORT": str(20000 + os.getpid() % 10000),
        }
        env["STT_URL"] = f"ws://127.0.0.1:{env['STT_PORT']}"
        env["RELAY_URL"] = f"http://127.0.0.1:{env['RELAY_PORT']}"
        env.pop("OPENROUTER_API_KEY", None)  # rules only: no network
        stack = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack.py")],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert stack.stdout is not None
            if not any(line.startswith("READY ") for line in stack.stdout):
                raise SystemExit(f"stack exited with {stack.wait()} before READY; see var/log/")
            rows = []
            for i, (customer, agent) in enumerate(pairs, 1):
                print(f"[{i}/{len(pairs)}] {customer} + {agent}: streaming", file=sys.stderr)
                wav, reference = make_call(customer, agent, tmp)
                rows.append(asyncio.run(through_stack(env, wav, reference, customer, agent)))
        finally:
            stack.terminate()
            stack.wait(timeout=60)
            if stack.stdout:
                stack.stdout.close()
            redis.cleanup()
    print(f"{'customer voice':<20} {'agent voice':<20} {'customer':>8} {'agent':>6}")
    print("\n".join(rows))
    print("WER per speaker of the demo call's finals, streamed through the native stack")
    return 0


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="", help="comma-separated names (default: all)")
    parser.add_argument("--rates", default="8000", help="comma-separated: 8000, 16000")
    parser.add_argument("--model", default=str(ROOT / "models" / "faster-whisper-base"))
    parser.add_argument("--show", action="store_true", help="print every hypothesis")
    parser.add_argument("--stack", action="store_true", help="stream the call through the stack")
    parser.add_argument("--pairs", default=PAIRS, help="customer:agent voices for --stack")
    args = parser.parse_args()
    if args.stack:
        pairs = [tuple(p.split(":", 1)) for p in args.pairs.split(",")]
        unknown = [n for p in pairs for n in p if n not in BY_NAME]
        if unknown or any(len(p) != 2 for p in pairs):
            parser.error(f"--pairs: customer:agent voice names; unknown: {unknown}")
        return stack_main([(c, a) for c, a in pairs])
    from faster_whisper import WhisperModel

    voices = [BY_NAME[n] for n in args.voices.split(",") if n] or list(SPANISH)
    rates = [int(r) for r in args.rates.split(",")]
    model = WhisperModel(args.model, device="cpu", compute_type="int8", cpu_threads=2)
    script = lines()
    rows: list[tuple[str, str, int, float, float, float, float]] = []
    for i, voice in enumerate(voices, 1):
        missing = available(voice)
        if missing:
            print(f"[{i}/{len(voices)}] {voice.name}: skipped, needs {missing}", file=sys.stderr)
            continue
        for rate in rates:
            t0 = time.monotonic()
            counts = {"customer": WerCounts(), "agent": WerCounts()}
            synth_s = audio_s = 0.0
            for speaker, text in script:
                s0 = time.monotonic()
                x = line_audio(voice, text, rate)
                synth_s += time.monotonic() - s0
                audio_s += len(x) / 16_000
                segments, _ = model.transcribe(x, language="es", beam_size=5)
                hyp = " ".join(s.text.strip() for s in segments)
                counts[speaker].add(text, hyp)
                if args.show:
                    print(f"  {voice.name} {rate} {speaker}: {hyp}", file=sys.stderr)
            c, a = counts["customer"], counts["agent"]
            both = (c.errors + a.errors) / max(1, c.words + a.words)
            rows.append((voice.name, voice.gender, rate, c.wer, a.wer, both, synth_s / audio_s))
            print(
                f"[{i}/{len(voices)}] {voice.name} @ {rate} Hz: customer {c.wer:.3f} "
                f"agent {a.wer:.3f} ({time.monotonic() - t0:.0f} s)",
                file=sys.stderr,
            )
    print(
        f"{'voice':<20} {'sex':<3} {'rate':>5} {'customer':>8} {'agent':>6} {'all':>6} {'rtf':>5}"
    )
    for name, sex, rate, cw, aw, bw, rtf in rows:
        print(f"{name:<20} {sex:<3} {rate:>5} {cw:>8.3f} {aw:>6.3f} {bw:>6.3f} {rtf:>5.2f}")
    print("WER per speaker's lines; rtf = synthesis seconds per second of speech")
    return 0


if __name__ == "__main__":
    sys.exit(main())
