"""`python -m bench.stt.resample`: the cost and the effect of coach.resample on the dev prompts.

Prints the CPU time per second of audio of the streaming resampler on 20 ms chunks (8 -> 16
kHz, as the service runs it) and of whole-signal resampling, how much audio the stream holds
back, and (unless --no-wer) the offline WER of the service's decoder (beam 5, short window) on
each prompt's speech resampled that way. Figures before and after soxr: bench/stt/README.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.stt import corpus
from bench.stt.wer import WerCounts
from coach.resample import StreamResampler, pcm16_to_float, resample

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 160  # 20 ms at 8 kHz


def streamed(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """`x` (8 kHz float32) through a StreamResampler in 20 ms chunks, flushed."""
    r = StreamResampler(8000, 16000)
    parts = [r(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
    parts.append(r.flush())
    return np.concatenate(parts)


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt.resample")
    ap.add_argument("--prompts", type=int, default=0, help="first N dev prompts (0 = all)")
    ap.add_argument("--no-wer", action="store_true", help="CPU and delay only")
    args = ap.parse_args()
    prompts = corpus.load_all()
    if args.prompts:
        prompts = prompts[: args.prompts]
    xs = [(p.pcm / 32768).astype(np.float32) for p in prompts]
    seconds = sum(len(x) for x in xs) / 8000
    best = min(_cpu(lambda: [streamed(x) for x in xs]) for _ in range(3))
    whole = min(_cpu(lambda: [resample(x, 8000, 16000) for x in xs]) for _ in range(3))
    r = StreamResampler(8000, 16000)
    fed = out = 0
    held = []
    for _ in range(500):
        fed += CHUNK
        out += len(r(np.zeros(CHUNK, np.float32)))
        held.append(2 * fed - out)
    print(f"bench.stt.resample: {len(prompts)} prompts, {seconds:.0f} s of audio")
    print(f"  streaming 8->16 kHz, 20 ms chunks: {best / seconds * 1e6:.0f} us CPU per s of audio")
    print(f"  whole signal 8->16 kHz: {whole / seconds * 1e6:.0f} us CPU per s of audio")
    print(
        f"  audio held back while streaming: {np.mean(held) / 16:.1f} ms mean,"
        f" {max(held) / 16:.1f} ms max"
    )
    if not args.no_wer:
        from stt.engine import EngineConfig, WhisperEngine

        engine = WhisperEngine(EngineConfig(str(ROOT / "models" / "faster-whisper-base")))
        counts = WerCounts()
        for p in prompts:
            s0, s1 = p.speech_span
            pcm = p.pcm[int(max(0.0, s0 - 0.2) * p.rate) : int((s1 + 0.15) * p.rate)]
            counts.add(p.reference, engine.decode(pcm16_to_float(pcm, p.rate, 16_000)).text)
        print(
            f"  offline WER, service decoder on each prompt's speech (beam 5) {counts.wer:.4f}"
            f" ({counts.errors} errors / {counts.words} words)"
        )
    return 0


def _cpu(work: Callable[[], object]) -> float:
    t = time.process_time()
    work()
    return time.process_time() - t


if __name__ == "__main__":
    raise SystemExit(main())
