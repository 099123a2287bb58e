"""Text repair: heuristics on what Whisper returns, without the model.

Whisper on short windows loops now and then, starts over when the audio runs out, copies its
prompt, and on non-speech writes the subtitles of its training data. These functions find
those patterns in text; the engine (stt/engine.py) and the stream (stt/stream.py) decide what to
do with them (the engine checks an echo candidate against the audio with the aligner).
"""

from __future__ import annotations

import zlib

# Texts Whisper invents on silence/noise (YouTube subtitles in its training data). A decode
# whose whole text is one of these is treated as no speech.
HALLUCINATIONS = frozenset(
    {
        "gracias por ver el video",
        "gracias por ver",
        "gracias por ver el vídeo",
        "subtítulos realizados por la comunidad de amara.org",
        "subtitulos realizados por la comunidad de amara.org",
        "suscríbete",
        "suscribete al canal",
        "¡suscríbete!",
        "thank you for watching",
        "thanks for watching",
        "you",
        "música",
        "musica",
        "[música]",
        "...",
    }
)


def is_hallucination(text: str) -> bool:
    """Whether `text` is one of Whisper's stock inventions on non-speech."""
    t = text.strip().lower().strip(" .!¡¿?")
    return not t or t in HALLUCINATIONS or t + "." in HALLUCINATIONS


def word_key(word: str) -> str:
    """A word compared without case or punctuation ("¿Número?" -> "número")."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


def trim_repeats(text: str, min_words: int = 2) -> str:
    """Collapse immediate repetitions of a phrase ("A B. A B." -> "A B."), a decoder loop.

    Short windows make Whisper loop now and then; a phrase of 2+ words said twice in a row is
    far more often a loop than speech. Echoes at the end are `tail_echo`'s business.
    """
    words = text.split()
    keys = [word_key(w) for w in words]
    i = 0
    while i < len(words):
        cut = False
        for n in range((len(words) - i) // 2, min_words - 1, -1):
            if keys[i : i + n] == keys[i + n : i + 2 * n] and any(keys[i : i + n]):
                del words[i + n : i + 2 * n], keys[i + n : i + 2 * n]
                cut = True
                break
        if not cut:
            i += 1
    return " ".join(words)


def tail_echo(text: str) -> int:
    """How many trailing words repeat an earlier run (the last one maybe cut off); 0 if none.

    Whisper on a short window sometimes starts over once the audio runs out ("Su mensaje ha
    sido guardado. Su mensaje ha sido"; "Modo de grabación Modo"). Speech repeats itself too
    ("... a los usuarios que no son administradores" after "que no son administradores, ..."),
    so this only finds candidates: an echo of 2+ words of any earlier run, or of the text's
    own first word(s). `WhisperEngine` checks where the candidate sits in the audio.
    """
    keys = [word_key(w) for w in text.split()]
    for k in range(len(keys) // 2, 0, -1):
        tail = keys[-k:]
        if not tail[-1]:
            continue
        starts = range(len(keys) - 2 * k + 1) if k >= 2 else range(1)
        for j in starts:
            run = keys[j : j + k]
            if run[:-1] == tail[:-1] and run[-1].startswith(tail[-1]):
                return k
    return 0


def drop_tail(text: str, k: int) -> str:
    """`text` without its last `k` words."""
    return " ".join(text.split()[:-k]) if k else text


def compression_ratio(text: str) -> float:
    """gzip-style ratio; above ~2.4 the decoder is looping."""
    raw = text.encode()
    return len(raw) / max(1, len(zlib.compress(raw)))


def copies(prompt: str, text: str, n: int = 3) -> bool:
    """Whether `text` repeats `n`+ consecutive words of `prompt` (a decoder copying its prompt)."""
    p = [w for w in (word_key(x) for x in prompt.split()) if w]
    t = [w for w in (word_key(x) for x in text.split()) if w]
    if len(t) < n:
        return bool(t) and " ".join(t) in " ".join(p)
    grams = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    return any(tuple(t[i : i + n]) in grams for i in range(len(t) - n + 1))
