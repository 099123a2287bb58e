"""Which voice should speak the demo call: WER per voice and per speaker.

Every line of the bundled demo scripts (`demo/transcript*.es.json`) is spoken by each voice of
`bench.voices` that is installed here, passed through the telephone path (resampled to 8 kHz
as a phone leg would be, then to the 16 kHz the service decodes) and transcribed by
faster-whisper base (the model the tests and the demo use, beam 5, Spanish). The script's text
is the reference; WER is counted on the customer's lines and on the agent's lines apart.
`--rates 16000` adds the wideband path (what the demo sends as slin16).

    python -m bench.demo_voice                      # every installed voice, 8 kHz path
    python -m bench.demo_voice --voices pico-es,mbrola-es4 --rates 8000,16000

Takes a few minutes (about 40 short decodes per voice and rate on two cores); progress goes to
stderr, the table to stdout. Figures: bench/README-demo-voice.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.stt.wer import WerCounts
from bench.voices import BY_NAME, SPANISH, Voice, available, speak
from coach.resample import resample

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("transcript.es.json", "transcript2.es.json")
PAD = 0.3  # seconds of silence either side of a line, as between turns of a call


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


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="", help="comma-separated names (default: all)")
    parser.add_argument("--rates", default="8000", help="comma-separated: 8000, 16000")
    parser.add_argument("--model", default=str(ROOT / "models" / "faster-whisper-base"))
    parser.add_argument("--show", action="store_true", help="print every hypothesis")
    args = parser.parse_args()
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
