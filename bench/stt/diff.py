"""`python -m bench.stt.diff`: per-prompt finals of the streaming paths next to offline, diffed.

Paths (each deterministic: no pacing, finals do not depend on decode timing):
- `offline`: faster-whisper's own transcribe, beam 5, of the service's 16 kHz audio (the
  bench's baseline);
- `prompt`: one in-process stream per prompt, 0.5 s of silence before and 1 s after it
  (`bench.stt.replay`);
- `timeline`: one in-process stream playing the real-time bench's timeline (0.5 s lead, every
  prompt of the half back to back with 2 s of silence between them), finals matched to prompts
  as `bench.stt` matches them.
`--rt FILE` adds the finals of a `bench.stt --show` run. Prints, per prompt whose paths
disagree, each path's text and its errors, then the totals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench.stt import corpus
from bench.stt.calibrate import finals
from bench.stt.replay import config, timeline_finals
from bench.stt.wer import WerCounts

ROOT = Path(__file__).resolve().parents[2]


def prompt_finals(engine: Any, prompts: list[corpus.Prompt], lang: str, cfg: Any) -> list[str]:
    """One stream per prompt (bench.stt.replay): text per prompt."""
    return [" ".join(f["text"] for f in asyncio.run(finals(engine, p, lang, cfg))) for p in prompts]


def offline_finals(
    prompts: list[corpus.Prompt], model_path: str, lang: str, beam: int
) -> list[str]:
    """faster-whisper's own transcribe of the service's 16 kHz audio."""
    from faster_whisper import WhisperModel

    from bench.stt.__main__ import service_audio

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=2)
    out = []
    for p in prompts:
        segments, _ = model.transcribe(service_audio(p.pcm, p.rate), language=lang, beam_size=beam)
        out.append(" ".join(s.text.strip() for s in segments))
    return out


def rt_finals(path: Path) -> dict[str, str]:
    """name -> hyp from a `bench.stt --show` output."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if (
            line.startswith("  ")
            and not line.startswith("   ")
            and i + 2 < len(lines)
            and lines[i + 1].startswith("    ref:")
            and lines[i + 2].startswith("    hyp:")
        ):
            out[line.strip()] = lines[i + 2][len("    hyp:") :].strip()
    return out


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt.diff")
    ap.add_argument("--lang", choices=corpus.LANGS, default="es")
    ap.add_argument("--half", choices=corpus.HALVES, default="tune")
    ap.add_argument(
        "--paths", default="offline,prompt,timeline", help="which of offline,prompt,timeline"
    )
    ap.add_argument("--set", default="", help="StreamConfig/SegmenterConfig overrides (replay)")
    ap.add_argument("--rt", type=Path, help="a `bench.stt --show` output to compare too")
    ap.add_argument("--cache", type=Path, help="JSON file: reuse and store each path's texts")
    ap.add_argument("--all", action="store_true", help="print every prompt, not only differing")
    args = ap.parse_args()
    lang = args.lang
    prompts = corpus.load_all(lang=lang, half=args.half)
    model_path = str(ROOT / "models" / "faster-whisper-base")
    cache: dict[str, list[str]] = {}
    if args.cache and args.cache.is_file():
        cache = json.loads(args.cache.read_text())
    texts: dict[str, list[str]] = {}
    engine = None
    for name in filter(None, args.paths.split(",")):
        key = f"{lang}/{args.half}/{name}/{args.set}"
        if key in cache:
            texts[name] = cache[key]
            continue
        if name == "offline":
            texts[name] = offline_finals(prompts, model_path, lang, 5)
        else:
            if engine is None:
                from stt.engine import EngineConfig, WhisperEngine

                engine = WhisperEngine(EngineConfig(model_path, lang=lang))
            cfg = config(args.set)
            texts[name] = (
                prompt_finals(engine, prompts, lang, cfg)
                if name == "prompt"
                else asyncio.run(timeline_finals(engine, prompts, lang, cfg))
            )
        cache[key] = texts[name]
        if args.cache:
            args.cache.write_text(json.dumps(cache, ensure_ascii=False, indent=1))
    if args.rt:
        got = rt_finals(args.rt)
        texts["rt"] = [got.get(p.name, "") for p in prompts]
    totals = {name: WerCounts(lang=lang) for name in texts}
    for i, p in enumerate(prompts):
        errs = {}
        for name, t in texts.items():
            one = WerCounts(lang=lang)
            one.add(p.reference, t[i])
            totals[name].add(p.reference, t[i])
            errs[name] = one.errors
        if args.all or len({texts[n][i] for n in texts}) > 1:
            print(f"{p.name} ({len(p.reference.split())} words)\n  ref       {p.reference}")
            for name, t in texts.items():
                print(f"  {name:9s} {errs[name]:2d} {t[i]}")
    print(f"== {lang} half {args.half}, {len(prompts)} prompts, set {args.set or 'defaults'}")
    for name, c in totals.items():
        print(f"  {name:9s} WER {c.wer:.4f} ({c.errors}/{c.words})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
