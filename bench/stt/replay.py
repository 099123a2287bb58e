"""`python -m bench.stt.replay`: streaming WER at CPU speed, for tuning.

Finals are a function of the audio and the settings, not of decode timing (stt/stream.py), so
streaming each prompt through an in-process `SttStream` without real-time pacing gives the
finals the service gives at real time, in a fraction of the time. Prints the WER of a half of
the dev list for each `--set KEY=VALUE,...` (StreamConfig / SegmenterConfig fields), e.g.
`--set early_hangover_s=0.4 --set tail_s=0.1,early_hangover_s=0.45`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from bench.stt import corpus
from bench.stt.calibrate import finals
from bench.stt.wer import WerCounts

ROOT = Path(__file__).resolve().parents[2]


def config(spec: str) -> Any:
    """A StreamConfig with `key=value,...` overrides (segmenter fields go to its segmenter)."""
    from stt.segmenter import SegmenterConfig
    from stt.stream import StreamConfig

    stream: dict[str, Any] = {}
    seg: dict[str, Any] = {}
    seg_fields = {f.name: f.type for f in dataclasses.fields(SegmenterConfig)}
    for item in filter(None, spec.split(",")):
        key, value = item.split("=", 1)
        parsed: Any = (
            value.lower() == "true" if value.lower() in ("true", "false") else float(value)
        )
        (seg if key in seg_fields else stream)[key] = parsed
    return StreamConfig(segmenter=SegmenterConfig(**seg), **stream)


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt.replay")
    ap.add_argument("--lang", choices=corpus.LANGS, default="es")
    ap.add_argument("--half", choices=corpus.HALVES, default="tune")
    ap.add_argument("--set", action="append", default=[], help="overrides; repeat to compare")
    ap.add_argument("--show", action="store_true", help="print each prompt's finals")
    ap.add_argument("--min-window", type=float, default=0.0, help="STT_MIN_WINDOW_S")
    args = ap.parse_args()
    from stt.engine import EngineConfig, WhisperEngine

    engine = WhisperEngine(
        EngineConfig(
            str(ROOT / "models" / "faster-whisper-base"),
            lang=args.lang,
            min_window_s=args.min_window,
        )
    )
    prompts = corpus.load_all(lang=args.lang, half=args.half)
    print(
        f"replay: {args.lang}, half {args.half}, {len(prompts)} prompts,"
        f" min window {args.min_window} s"
    )
    for spec in args.set or [""]:
        cfg = config(spec)
        counts = WerCounts(lang=args.lang)
        splits = 0
        t = time.perf_counter()
        for p in prompts:
            out = asyncio.run(finals(engine, p, args.lang, cfg))
            text = " ".join(f["text"] for f in out)
            counts.add(p.reference, text)
            splits += max(0, len(out) - 1)
            if args.show:
                print(f"  {p.name}: {' | '.join(f['text'] for f in out)}")
        print(
            f"  {spec or 'defaults':40s} WER {counts.wer:.4f} ({counts.errors}/{counts.words})"
            f"  extra finals {splits}  {time.perf_counter() - t:.0f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
