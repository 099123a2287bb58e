"""A live call's speech recognition as background load: a child process that decodes a spoken
line with the STT's engine (faster-whisper base, one thread, as `STT_CPU_THREADS` defaults),
again and again, so the knowledge latency is measured with the STT competing for the cores.

    python -m bench.kb.load   # runs until killed
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.kb.corpus import ROOT


@contextmanager
def stt_load(processes: int) -> Iterator[None]:
    """`processes` decoding children while the block runs (none for 0)."""
    children = [
        subprocess.Popen([sys.executable, "-m", "bench.kb.load"], cwd=ROOT)
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=30)


def main() -> None:
    """Decode one Pico line through the phone path forever."""
    from bench.coach.redact_pico import voice_for
    from bench.demo_voice import line_audio
    from stt.engine import EngineConfig, WhisperEngine
    from stt.models import ensure_base

    model = ensure_base(ROOT / "models" / "faster-whisper-base")
    engine = WhisperEngine(EngineConfig(str(model.path), cpu_threads=1))
    audio = line_audio(
        voice_for(0, "es"),
        "Buenas tardes, le llamo porque la factura de este mes me ha llegado más alta.",
        8000,
    )
    while True:
        engine.decode(audio, final=True, lang="es")


if __name__ == "__main__":
    main()
