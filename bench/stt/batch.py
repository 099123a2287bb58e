"""Batching across streams: decode throughput and latency with batching off and on.

`python -m bench.stt.batch [--streams 1,2,4,8] [--batch 1,2,4,8] [--kinds final,partial]
[--shapes mixed,equal] [--decodes 16]`

In-process, as the service decodes: one WhisperEngine (faster-whisper base, int8, one thread
per decode, one CTranslate2 replica per worker) behind a DecodeScheduler with the service's
worker count. Each round, N streams each submit one window at the same moment (a final: beam 5
with word timings; or a partial: greedy), so up to N decodes wait together; rounds repeat until
`--decodes` windows ran. Windows are the dev prompts' speech, the service's 16 kHz audio:
`mixed` takes them in list order (lengths as they come: only those in the same 1 s window
bucket can share a call), `equal` takes N of one window length per round (the best case).

Prints, per (kind, shape, N streams, STT_BATCH_MAX): audio seconds decoded per wall second,
per-request latency (submit -> result) p50 / p95, and the sizes of the CTranslate2 calls made.
Run it under the CPU lock: `flock /work/notes/cpu.lock nice -n 5 .venv/bin/python -m
bench.stt.batch`.

Measured 2026-12-01 on the 2-core dev machine (2 workers, load 1.4-2.2, 8 windows per row,
`--streams 1,4,8 --batch 1,4,8`), audio s per wall s, off (1) -> 4 -> 8:
- equal lengths, finals: 4 streams 13.5 -> 16.5; 8 streams 8.6 -> 18.0 -> 20.4 (p95 latency
  1.91 -> 0.95 -> 0.84 s). Partials: 4 streams 14.7 -> 28.0; 8 streams 15.2 -> 23.8 -> 26.1.
- mixed lengths (list order; few windows share a bucket): finals 4 streams 16.7 -> 12.3, 8
  streams 12.0 -> 13.6 -> 12.7; partials 16.0 -> 18.6 and 16.1 -> 18.5 -> 19.4. The finals loss
  was a group's calls of other lengths running one after another on one core; they now run side
  by side (stt/batch.py), not re-measured.
So batching gains 1.2-2.4x when windows share a length and is about even when they do not.
In the service (`python -m bench.stt --skip-single --no-offline --calls 4`, reporting half,
4 calls x 2 streams, final code): STT_BATCH_MAX=1: WER 0.102, final p50 0.78 / p95 1.28 s,
first partial p50 1.75 s, partial cadence p50 1.05 s, 13 dropped partials; STT_BATCH_MAX=4:
WER 0.102 (same finals), final p50 0.98 / p95 1.80 s, first partial p50 1.09 s, cadence p50
0.67 s, 1 dropped. The partials it decodes more often cost the finals latency on 2 cores, so
STT_BATCH_MAX defaults to 1 (off) on CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.stt import corpus
from bench.stt.__main__ import service_audio
from bench.stt.score import pct
from stt.engine import SAMPLE_RATE, EngineConfig, WhisperEngine
from stt.scheduler import DecodeScheduler, JobKind

ROOT = Path(__file__).resolve().parents[2]
Window = npt.NDArray[np.float32]


def windows(engine: WhisperEngine) -> list[Window]:
    """Every dev prompt's speech (plus the stream's pre-roll and tail) at 16 kHz."""
    out = []
    for p in corpus.load_all():
        s0, s1 = p.speech_span
        pcm = p.pcm[int(max(0.0, s0 - 0.4) * p.rate) : int((s1 + 0.15) * p.rate)]
        out.append(service_audio(pcm, p.rate))
    return out


def rounds(
    engine: WhisperEngine, all_windows: list[Window], n: int, shape: str, decodes: int
) -> list[list[Window]]:
    """Lists of `n` windows submitted together, `decodes` windows in all."""
    if shape == "mixed":
        flat = [all_windows[i % len(all_windows)] for i in range(decodes)]
        return [flat[i : i + n] for i in range(0, decodes, n)]
    by_frames: dict[int, list[Window]] = collections.defaultdict(list)
    for w in all_windows:
        by_frames[engine.features(w).shape[1]].append(w)
    pools = [ws for ws in by_frames.values() if len(ws) >= n]
    pools.sort(key=len, reverse=True)
    out: list[list[Window]] = []
    k = 0
    while sum(len(r) for r in out) < decodes:
        pool = pools[k % len(pools)]
        start = (k // len(pools)) * n % max(1, len(pool) - n + 1)
        out.append(pool[start : start + n])
        k += 1
    return out


async def measure(
    engine: WhisperEngine,
    groups: list[list[Window]],
    kind: str,
    batch_max: int,
    workers: int,
) -> tuple[float, list[float], collections.Counter[int]]:
    """(audio s / wall s, per-request latencies, sizes of the calls made)."""
    sizes: list[int] = []
    sched = DecodeScheduler(workers, batch_max=batch_max, batch_observer=sizes.append)
    sched.start()
    final = kind == "final"

    def job(x: Window) -> Callable[[], object]:
        return lambda: engine.decode(x, final=final, lang="es", words=final)

    latencies: list[float] = []
    audio_s = 0.0
    t0 = time.perf_counter()
    try:
        for i, group in enumerate(groups):
            submitted = time.perf_counter()
            jobs = [
                await sched.submit(JobKind.FINAL if final else JobKind.PARTIAL, f"s{i}-{j}", job(x))
                for j, x in enumerate(group)
            ]

            async def timed(fut: asyncio.Future[object], since: float = submitted) -> float:
                await fut
                return time.perf_counter() - since

            latencies += await asyncio.gather(*(timed(j.future) for j in jobs))
            audio_s += sum(len(x) for x in group) / SAMPLE_RATE
    finally:
        await sched.close()
    wall = time.perf_counter() - t0
    return audio_s / wall, latencies, collections.Counter(sizes)


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.stt.batch", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("--batch", default="1,2,4,8", help="STT_BATCH_MAX values (1 = off)")
    ap.add_argument("--kinds", default="final,partial")
    ap.add_argument("--shapes", default="mixed,equal")
    ap.add_argument("--decodes", type=int, default=16, help="windows per measurement")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    engine = WhisperEngine(
        EngineConfig(
            str(ROOT / "models" / "faster-whisper-base"),
            num_workers=args.workers,
            cpu_threads=1,
        )
    )
    all_windows = windows(engine)
    # Warm up (first calls allocate).
    asyncio.run(measure(engine, [all_windows[:2]], "final", 2, args.workers))
    print(
        f"bench.stt.batch: {args.workers} workers, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.2f}, {args.decodes} windows per row"
    )
    print("kind     shape  streams batch  audio s/s  p50 s  p95 s  calls by size")
    for kind in args.kinds.split(","):
        for shape in args.shapes.split(","):
            for n in (int(x) for x in args.streams.split(",")):
                groups = rounds(engine, all_windows, n, shape, args.decodes)
                for b in (int(x) for x in args.batch.split(",")):
                    if b > 1 and (n == 1 or b > n):
                        continue  # nothing to batch / same as b = n
                    speed, lat, sizes = asyncio.run(measure(engine, groups, kind, b, args.workers))
                    calls = " ".join(f"{k}x{v}" for k, v in sorted(sizes.items()))
                    print(
                        f"{kind:8} {shape:6} {n:7} {b:5}  {speed:9.2f}  {pct(lat, 50):5.2f}"
                        f"  {pct(lat, 95):5.2f}  {calls}",
                        flush=True,
                    )
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
