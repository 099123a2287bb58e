"""`python -m bench.stt.calibrate`: fit and check the word-confidence calibration (stt/confidence.py).

Streams each prompt of the tuning half in-process (as fast as the CPU allows: finals do not
depend on timing), scores every final word against the reference (minimum-edit alignment),
fits calibrated = sigmoid(a * logit(raw) + b) by logistic regression on the tuning half, and
prints, for the tuning and the reporting half, the fraction of words right in bins of raw and of
calibrated confidence. Paste the printed a, b into stt/confidence.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

import stt.confidence
from bench.stt import corpus
from bench.stt.wer import hits, normalise

ROOT = Path(__file__).resolve().parents[2]
BINS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)


async def finals(
    engine: Any, prompt: corpus.Prompt, lang: str, config: Any = None
) -> list[dict[str, Any]]:
    """One stream per prompt (0.5 s of silence before, 1 s after), fed without pacing."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    out: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        if event["type"] == "final" and event["text"]:
            out.append(event)

    scheduler = DecodeScheduler(1)
    scheduler.start()
    stream = SttStream(
        StreamParams("cal", "agent", prompt.rate, lang), engine, scheduler, emit, config
    )
    pcm = np.concatenate(
        [np.zeros(prompt.rate // 2, np.int16), prompt.pcm, np.zeros(prompt.rate, np.int16)]
    )
    step = prompt.rate // 50
    for i in range(0, len(pcm), step):
        await stream.feed(pcm[i : i + step].astype("<i2").tobytes())
    await stream.finish()
    await scheduler.close()
    return out


def scored(engine: Any, prompts: list[corpus.Prompt], lang: str) -> list[tuple[float, bool]]:
    """(word p as the engine gives it, right?) for every final word of every prompt."""
    pairs: list[tuple[float, bool]] = []
    for p in prompts:
        words = [w for f in asyncio.run(finals(engine, p, lang)) for w in f.get("words", [])]
        tokens: list[str] = []
        owner: list[int] = []
        for k, w in enumerate(words):
            for t in normalise(w["w"], lang):
                tokens.append(t)
                owner.append(k)
        ok = hits(normalise(p.reference, lang), tokens)
        right = [True] * len(words)
        seen = [False] * len(words)
        for k, good in zip(owner, ok, strict=True):
            right[k] = right[k] and good
            seen[k] = True
        pairs += [(w["p"], right[k]) for k, w in enumerate(words) if seen[k]]
    return pairs


def cost(engine: Any, prompts: list[corpus.Prompt], lang: str) -> None:
    """Final decode time with and without word timings, interleaved (load drifts cancel)."""
    import time

    from coach.resample import pcm16_to_float

    plain: list[float] = []
    timed: list[float] = []
    for p in prompts:
        s0, s1 = p.speech_span
        x = pcm16_to_float(
            p.pcm[int(max(0.0, s0 - 0.2) * p.rate) : int((s1 + 0.15) * p.rate)], p.rate, 16_000
        )
        for words, into in ((False, plain), (True, timed), (True, timed), (False, plain)):
            t = time.perf_counter()
            engine.decode(x, lang=lang, words=words)
            into.append(time.perf_counter() - t)
    extra = [b - a for a, b in zip(plain, timed, strict=True)]
    print(
        f"final decode time, {len(prompts)} prompts x 2: without words median"
        f" {np.median(plain):.3f}s p95 {np.percentile(plain, 95):.3f}s; with words median"
        f" {np.median(timed):.3f}s p95 {np.percentile(timed, 95):.3f}s; added per final median"
        f" {np.median(extra):+.3f}s ({np.median(timed) / np.median(plain) - 1:+.0%})"
    )


def logit(p: float) -> float:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    p = min(1 - 1e-4, max(1e-4, p))
    return math.log(p / (1 - p))


def fit(pairs: list[tuple[float, bool]]) -> tuple[float, float]:
    """Logistic regression of right on logit(p) (Newton's method, a little L2)."""
    x = np.array([logit(p) for p, _ in pairs])
    y = np.array([1.0 if r else 0.0 for _, r in pairs])
    w = np.array([1.0, 0.0])
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(50):
        q = 1 / (1 + np.exp(-(design @ w)))
        grad = design.T @ (q - y) + 1e-3 * w
        hess = (design.T * (q * (1 - q))) @ design + 1e-3 * np.eye(2)
        w = w - np.linalg.solve(hess, grad)
    return float(w[0]), float(w[1])


def table(title: str, pairs: list[tuple[float, bool]], a: float, b: float) -> None:
    """Fraction of words right per bin of raw and of calibrated confidence."""
    print(f"== {title}: {len(pairs)} words, {np.mean([r for _, r in pairs]):.3f} right")
    for name, value in (
        ("raw", lambda p: p),
        ("calibrated", lambda p: 1 / (1 + math.exp(-(a * logit(p) + b)))),
    ):
        print(f"  {name:10s} bin        words  mean p  right")
        for lo, hi in itertools.pairwise(BINS):
            inside = [(value(p), r) for p, r in pairs if lo <= value(p) < hi]
            if inside:
                mean_p = np.mean([v for v, _ in inside])
                right = np.mean([r for _, r in inside])
                print(
                    f"  {name:10s} {lo:.2f}-{min(hi, 1):.2f}  {len(inside):5d}  {mean_p:.3f}  {right:.3f}"
                )
        errors = [abs(value(p) - r) for p, r in pairs]
        brier = np.mean([(value(p) - r) ** 2 for p, r in pairs])
        print(f"  {name:10s} Brier score {brier:.4f}  mean |p - right| {np.mean(errors):.3f}")


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt.calibrate")
    ap.add_argument("--lang", choices=corpus.LANGS, default="es")
    ap.add_argument("--prompts", type=int, default=0, help="first N of each half (0 = all)")
    ap.add_argument("--cost", action="store_true", help="only time decodes with/without words")
    args = ap.parse_args()
    from stt.engine import EngineConfig, WhisperEngine

    # Raw probabilities: the identity map while measuring.
    stt.confidence.SLOPE, stt.confidence.INTERCEPT = 1.0, 0.0
    engine = WhisperEngine(EngineConfig(str(ROOT / "models" / "faster-whisper-base")))
    if args.cost:
        prompts = corpus.load_all(lang=args.lang, half="tune")
        cost(engine, prompts[: args.prompts] if args.prompts else prompts, args.lang)
        return 0
    halves = {}
    for half in ("tune", "report"):
        prompts = corpus.load_all(lang=args.lang, half=half)
        if args.prompts:
            prompts = prompts[: args.prompts]
        halves[half] = scored(engine, prompts, args.lang)
    a, b = fit(halves["tune"])
    print(f"fit on the tuning half ({args.lang}): SLOPE = {a:.4f}  INTERCEPT = {b:.4f}")
    table("tuning half (fitted here)", halves["tune"], a, b)
    table("reporting half (not fitted)", halves["report"], a, b)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
