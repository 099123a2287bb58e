"""Synthesise the bundled demo call: a stereo WAV (left = customer, right = agent).

Each line of `demo/transcript.es.json` is spoken with espeak-ng (Debian `espeak-ng`), one voice
per speaker, and placed at its time on its speaker's channel; lines are pushed later when a
voice runs longer than the script allowed, so speakers never talk over each other by accident.
Writes the WAV and a JSON sidecar with the real start/end of every line (the reference for WER).

    python scripts/make_demo_call.py [demo/transcript.es.json] [--out var/demo/call.es.wav]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from coach.resample import resample

# (voice, words per minute, pitch), chosen by offline WER of faster-whisper-base on the demo
# lines at 16 kHz: customer 0.22, agent 0.25. At 8 kHz every espeak voice scored 0.3-0.6 and
# the female variants 0.47-0.58: too robotic for a fair test of the pipeline.
VOICES = {"customer": ("es-419+m3", 150, 35), "agent": ("es-419", 150, 50)}
GAP = 0.6  # seconds of silence at least between two lines


def speak(text: str, voice: str, speed: int, pitch: int, rate: int) -> np.ndarray:
    """espeak-ng's audio for `text`, as float32 mono at `rate` Hz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", tmp.name, text],
            check=True,
        )
        with wave.open(tmp.name) as w:
            src_rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    return resample(pcm, src_rate, rate).astype(np.float32)


def main() -> int:
    """Build the WAV and its sidecar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transcript", nargs="?", type=Path, default=Path("demo/transcript.es.json"))
    parser.add_argument("--out", type=Path, default=Path("var/demo/call.es.wav"))
    # 16 kHz: what ExternalMedia's slin16 carries from a wideband leg.
    parser.add_argument("--rate", type=int, default=16000, choices=(8000, 16000))
    args = parser.parse_args()
    script = json.loads(args.transcript.read_text(encoding="utf-8"))
    rate = args.rate
    clips, placed, t = [], [], 0.0
    for line in script["lines"]:
        voice, speed, pitch = VOICES[line["speaker"]]
        audio = speak(line["text"], voice, speed, pitch, rate)
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
        f"{args.out}: {total / rate:.1f} s stereo at {rate} Hz (left customer, right agent); reference {sidecar}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
