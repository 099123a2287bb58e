"""`python -m bench.stt.replay`: streaming WER at CPU speed, for tuning.

Finals are a function of the audio and the settings, not of decode timing (stt/stream.py), so
streaming each prompt through an in-process `SttStream` without real-time pacing gives the
finals the service gives at real time, in a fraction of the time. Prints the WER of a half of
the dev list for each `--set KEY=VALUE,...` (StreamConfig / SegmenterConfig fields), e.g.
`--set early_hangover_s=0.4 --set tail_s=0.1,early_hangover_s=0.45`.

By default each prompt gets its own stream; `--timeline` plays the half as the real-time bench
does (one stream, 2 s of silence between prompts), which gives exactly the bench's finals.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from bench.stt import client, corpus
from bench.stt.calibrate import finals
from bench.stt.score import score
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


async def timeline_finals(
    engine: Any, prompts: list[corpus.Prompt], lang: str, cfg: Any = None, lead_s: float = 0.5
) -> list[str]:
    """The bench's timeline (`lead_s` of silence first) through one in-process stream, without
    pacing: text per prompt."""
    from stt.scheduler import DecodeScheduler
    from stt.stream import StreamParams, SttStream

    pcm, segs = client.timeline(
        [(p.name, p.pcm, p.speech_span) for p in prompts], 8000, lead_s=lead_s
    )
    session = client.Session(segments=segs)

    async def emit(event: dict[str, Any]) -> None:
        session.events.append(client.Received(0.0, event))

    scheduler = DecodeScheduler(1)
    scheduler.start()
    stream = SttStream(StreamParams("tl", "agent", 8000, lang), engine, scheduler, emit, cfg)
    step = 8000 // 50
    for i in range(0, len(pcm), step):
        await stream.feed(pcm[i : i + step].astype("<i2").tobytes())
    await stream.finish()
    await scheduler.close()
    return [hyp for _, _, hyp in score(session, prompts, lang).texts]


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt.replay")
    ap.add_argument("--lang", choices=corpus.LANGS, default="es")
    ap.add_argument("--half", choices=corpus.HALVES, default="tune")
    ap.add_argument("--set", action="append", default=[], help="overrides; repeat to compare")
    ap.add_argument("--show", action="store_true", help="print each prompt's finals")
    ap.add_argument("--min-window", type=float, default=0.0, help="STT_MIN_WINDOW_S")
    ap.add_argument("--beam-final", type=int, default=5, help="STT_BEAM_SIZE")
    ap.add_argument(
        "--timeline", action="store_true", help="one stream for the half, as bench.stt plays it"
    )
    args = ap.parse_args()
    from stt.engine import EngineConfig, WhisperEngine

    engine = WhisperEngine(
        EngineConfig(
            str(ROOT / "models" / "faster-whisper-base"),
            lang=args.lang,
            min_window_s=args.min_window,
            beam_size_final=args.beam_final,
        )
    )
    prompts = corpus.load_all(lang=args.lang, half=args.half)
    print(
        f"replay: {args.lang}, half {args.half}, {len(prompts)} prompts,"
        f" min window {args.min_window} s, final beam {args.beam_final}"
    )
    for spec in args.set or [""]:
        cfg = config(spec)
        counts = WerCounts(lang=args.lang)
        splits = 0
        t = time.perf_counter()
        if args.timeline:
            for p, text in zip(
                prompts,
                asyncio.run(timeline_finals(engine, prompts, args.lang, cfg)),
                strict=True,
            ):
                counts.add(p.reference, text)
                if args.show:
                    print(f"  {p.name}: {text}")
        for p in [] if args.timeline else prompts:
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
