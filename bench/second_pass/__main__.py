"""`python -m bench.second_pass wer|busy|latency`: the transcript of record against the live one.

- `wer [--half all|tune|report] [--limit N]`: the dev prompts assembled into one stereo call
  (bench/second_pass/call.py); the live transcript is each channel streamed through stt's own
  `SttStream` (the service's defaults, fed without pacing: finals do not depend on decode
  timing, bench/stt/replay.py), the record transcript is second_pass's `Transcriber` + `mask`
  on the same WAV. Prints WER per speaker and overall (bench/stt/wer.py), decode time and RTF.
- `busy --seconds S [--nice 19] [--no-idle] [--threads 1]`: decodes the assembled call again and
  again as the second pass does, at the service's priority (`lower_priority`): the load for
  `latency`.
- `latency [--calls 4] [--per-stream 5]`: `python -m bench.stt --calls N --skip-single` (live
  final latency of N concurrent calls at real time) alone, then with `busy` running beside it
  at the service's priority, then with `busy` at nice 0 and no SCHED_IDLE (what a second pass
  without its priority would do); prints each run's report.
Run under the CPU lock: `flock /work/notes/cpu.lock nice -n 5 .venv/bin/python -m bench.second_pass ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.second_pass.call import RATE, AssembledCall, assemble
from bench.stt.wer import WerCounts

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "faster-whisper-base"


async def live_finals(call: AssembledCall, lang: str = "es") -> list[dict[str, Any]]:
    """Both channels through stt's streams (service defaults), without pacing."""
    from stt.engine import EngineConfig, WhisperEngine
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    engine = WhisperEngine(EngineConfig(str(MODEL)))
    out: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        if event["type"] == "final" and event["text"]:
            out.append(event)

    scheduler = DecodeScheduler(1)
    scheduler.start()
    for speaker, pcm in (("customer", call.customer), ("agent", call.agent)):
        stream = SttStream(StreamParams("bench", speaker, RATE, lang), engine, scheduler, emit)
        step = RATE // 50
        for i in range(0, len(pcm), step):
            await stream.feed(pcm[i : i + step].astype("<i2").tobytes())
        await stream.finish()
    await scheduler.close()
    return out


def score(call: AssembledCall, said: list[tuple[str, float, str]]) -> dict[str, WerCounts]:
    """WER per speaker: each channel's text in time order against its prompts in order."""
    out = {}
    for speaker in ("customer", "agent"):
        counts = WerCounts()
        hyp = " ".join(text for who, _, text in sorted(said, key=lambda x: x[1]) if who == speaker)
        counts.add(call.reference(speaker), hyp)
        out[speaker] = counts
    return out


def show(title: str, counts: dict[str, WerCounts]) -> None:
    errors = sum(c.errors for c in counts.values())
    words = sum(c.words for c in counts.values())
    parts = "  ".join(f"{s} {c.wer:.3f} ({c.errors}/{c.words})" for s, c in counts.items())
    print(f"  {title}: WER {errors / max(1, words):.3f} ({errors}/{words})  {parts}", flush=True)


def cmd_wer(args: argparse.Namespace) -> int:
    from coach.redact import RedactConfig
    from second_pass.audio import load
    from second_pass.mask import mask
    from second_pass.transcribe import DecodeConfig, Transcriber

    call = assemble(args.half, limit=args.limit)
    print(
        f"== call: {len(call.turns)} dev prompts ({args.half}), {call.seconds:.0f} s,"
        f" {sum(len(t.reference.split()) for t in call.turns)} reference words",
        flush=True,
    )
    started = time.perf_counter()
    live = asyncio.run(live_finals(call))
    live_s = time.perf_counter() - started
    show(
        f"live (stt streams, {live_s:.0f} s at CPU speed)",
        score(call, [(e["speaker"], float(e["start"]), str(e["text"])) for e in live]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = call.write(Path(tmp) / "call.wav")
        channels = load(path)
    for threads in args.threads:
        transcriber = Transcriber(DecodeConfig(str(MODEL), cpu_threads=threads))
        decoded = transcriber.transcribe(channels, "es")
        record = mask(decoded.utterances, RedactConfig())
        show(
            f"record (second pass, {threads} thread(s): {decoded.decode_s:.0f} s,"
            f" RTF {decoded.decode_s / decoded.audio_s:.3f})",
            score(call, [(u.speaker, u.start, u.text) for u in record]),
        )
        if args.unmasked:
            show(
                "record before masking",
                score(call, [(u.speaker, u.start, u.text) for u in decoded.utterances]),
            )
    return 0


def cmd_busy(args: argparse.Namespace) -> int:
    from coach.resample import pcm16_to_float
    from second_pass.audio import RATE as WHISPER_RATE
    from second_pass.service import lower_priority
    from second_pass.transcribe import DecodeConfig, Transcriber

    priority = lower_priority(args.nice, not args.no_idle)
    call = assemble(limit=args.limit)
    channels = {
        "customer": pcm16_to_float(call.customer, RATE, WHISPER_RATE),
        "agent": pcm16_to_float(call.agent, RATE, WHISPER_RATE),
    }
    transcriber = Transcriber(DecodeConfig(str(MODEL), cpu_threads=args.threads))
    print(f"busy: {priority}, {call.seconds:.0f} s call per loop", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        decoded = transcriber.transcribe(channels, "es")
        print(f"busy: one call decoded, RTF {decoded.decode_s / decoded.audio_s:.3f}", flush=True)
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def cmd_latency(args: argparse.Namespace) -> int:
    bench = [
        sys.executable,
        "-m",
        "bench.stt",
        "--calls",
        str(args.calls),
        "--skip-single",
        "--no-offline",
        "--per-stream",
        str(args.per_stream),
    ]
    runs: list[tuple[str, list[str]]] = [
        ("no second pass", []),
        ("second pass at its priority (nice 19, SCHED_IDLE, 1 thread)", ["--nice", "19"]),
        ("second pass without it (nice 0, no SCHED_IDLE, 1 thread)", ["--nice", "0", "--no-idle"]),
    ]
    for title, busy_args in runs:
        print(f"== {title}", flush=True)
        busy = None
        if busy_args:
            busy = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.second_pass",
                    "busy",
                    "--seconds",
                    "600",
                    "--limit",
                    "40",
                    *busy_args,
                ],
                cwd=ROOT,
            )
            time.sleep(8)  # the model loaded and decoding before the live calls start
        try:
            before = cpu_seconds(busy.pid) if busy else 0.0
            started = time.monotonic()
            out = subprocess.run(bench, cwd=ROOT, capture_output=True, text=True, check=False)
            print(out.stdout[-1500:], flush=True)
            if out.returncode:
                print(out.stderr[-2000:], flush=True)
            if busy is not None:
                got = cpu_seconds(busy.pid) - before
                wall = time.monotonic() - started
                print(
                    f"  second pass got {got:.0f} CPU s in the {wall:.0f} s of live calls",
                    flush=True,
                )
        finally:
            if busy is not None:
                busy.terminate()
                busy.wait(30)
    return 0


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.second_pass", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wer")
    w.add_argument("--half", choices=("all", "tune", "report"), default="all")
    w.add_argument("--limit", type=int, default=0, help="first N prompts only")
    w.add_argument("--threads", type=int, nargs="+", default=[1], help="RECORD_CPU_THREADS")
    w.add_argument("--unmasked", action="store_true", help="also score the record unmasked")
    b = sub.add_parser("busy")
    b.add_argument("--seconds", type=float, default=300)
    b.add_argument("--nice", type=int, default=19)
    b.add_argument("--no-idle", action="store_true")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--limit", type=int, default=40)
    lat = sub.add_parser("latency")
    lat.add_argument("--calls", type=int, default=4)
    lat.add_argument("--per-stream", type=int, default=5)
    args = ap.parse_args()
    return {"wer": cmd_wer, "busy": cmd_busy, "latency": cmd_latency}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
