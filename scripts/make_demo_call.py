"""Synthesise the bundled demo call: a stereo WAV (left = customer, right = agent).

Each line of `demo/transcript.es.json` is spoken by the voice of its speaker and placed at its
time on its speaker's channel; lines are pushed later when a voice runs longer than the script
allowed, so speakers never talk over each other by accident. The voices: SVOX Pico (Debian
`libttspico-utils`) in its own female voice and a lower, slower reading of it for a man, as
the script's `voices` says; without Pico, espeak-ng (Debian `espeak-ng`). Voices and figures:
`bench/voices.py`, `python -m bench.demo_voice`.
Writes the WAV and a JSON sidecar with the real start/end of every line (the reference for WER).

    python scripts/make_demo_call.py [demo/transcript.es.json] [--out var/demo/call.es.wav]
    python scripts/make_demo_call.py --voice customer=mbrola-es3 --voice agent=espeak-es419
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.voices import BY_NAME, Voice, available, speak

# By the speaker's sex in the script ("voices": {"customer": "f", "agent": "m"}). WER of
# faster-whisper base on the demo's lines through an 8 kHz leg (bench/demo_voice.py, 2026-12):
# pico-es 0.02, pico-es-male 0.03, against the espeak-ng fallback's 0.30 / 0.44 (its female
# variants score worse still, so the fallback ignores the sex); streamed through the stack,
# customer / agent 0.07 / 0.11 against espeak-ng's 0.24 / 0.43.
PREFERRED = {"f": "pico-es", "m": "pico-es-male"}
FALLBACK = {"customer": "espeak-es419-m3", "agent": "espeak-es419"}
GAP = 0.6  # seconds of silence at least between two lines


def pick(speaker: str, sex: str | None, override: dict[str, str]) -> Voice:
    """The voice for `speaker`: the override, else the preferred one if installed, else espeak."""
    if speaker in override:
        voice = BY_NAME[override[speaker]]
        missing = available(voice)
        if missing:
            raise SystemExit(f"make_demo_call: voice {voice.name} needs {missing}")
        return voice
    preferred = BY_NAME[PREFERRED.get(sex or "", PREFERRED["f"])]
    missing = available(preferred)
    if missing is None:
        return preferred
    print(
        f"make_demo_call: {preferred.name} needs {missing} (scripts/setup installs it); "
        f"the {speaker} speaks with espeak-ng",
        file=sys.stderr,
    )
    return BY_NAME[FALLBACK[speaker]]


def main() -> int:
    """Build the WAV and its sidecar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transcript", nargs="?", type=Path, default=Path("demo/transcript.es.json"))
    parser.add_argument("--out", type=Path, default=Path("var/demo/call.es.wav"))
    # 16 kHz: what ExternalMedia's slin16 carries from a wideband leg.
    parser.add_argument("--rate", type=int, default=16000, choices=(8000, 16000))
    parser.add_argument(
        "--voice",
        action="append",
        default=[],
        metavar="SPEAKER=NAME",
        help=f"a speaker's voice, one of: {', '.join(BY_NAME)}",
    )
    args = parser.parse_args()
    override = dict(v.split("=", 1) for v in args.voice)
    unknown = [n for s, n in override.items() if n not in BY_NAME or s not in FALLBACK]
    if unknown:
        parser.error(f"unknown speaker or voice in --voice: {', '.join(unknown)}")
    script = json.loads(args.transcript.read_text(encoding="utf-8"))
    sexes = script.get("voices", {})
    voices = {s: pick(s, sexes.get(s), override) for s in FALLBACK}
    rate = args.rate
    clips, placed, t = [], [], 0.0
    for line in script["lines"]:
        audio = speak(voices[line["speaker"]], line["text"], rate)
        start = max(line["at"], t)
        end = start + len(audio) / rate
        clips.append((line["speaker"], int(start * rate), audio))
        placed.append({**line, "at": round(start, 3), "dur": round(end - start, 3)})
        t = end + GAP
    total = int((t + 1.0) * rate)
    stereo = np.zeros((total, 2), dtype=np.float32)
    for speaker, offset, audio in clips:
        channel = 0 if speaker == "customer" else 1
        stereo[offset : offset + len(audio), channel] += audio
    pcm = np.clip(stereo, -32768, 32767).astype("<i2")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(args.out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    sidecar = args.out.with_suffix(".json")
    sidecar.write_text(
        json.dumps({**script, "lines": placed}, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    print(
        f"{args.out}: {total / rate:.1f} s stereo at {rate} Hz (left customer: "
        f"{voices['customer'].name}, right agent: {voices['agent'].name}); reference {sidecar}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
