"""Per-call spoken language: given on the socket (`lang=`), or detected once per call (`auto`).

A call's two legs (agent, customer) are two streams; with `auto` the first decode of either leg
that has `DETECT_AFTER_S` of audio detects the language from that audio, and every later decode
of both legs uses it (so one call is transcribed in one language, and detection costs one
encoder pass per call instead of one per decode). Shorter decodes before that detect for
themselves without storing. State is keyed by callId and bounded (`MAX_CALLS`, oldest
forgotten first: a call that comes back after that simply detects again).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from faster_whisper.tokenizer import _LANGUAGE_CODES

LANGUAGES = frozenset(_LANGUAGE_CODES)
"""Language codes Whisper knows."""
DETECT_AFTER_S = 1.5
"""Audio a decode must have for its detection to become the call's language."""
MAX_CALLS = 4096
"""Calls whose detected language is remembered."""


def valid_lang(lang: str) -> bool:
    """Whether `lang` is a Whisper language code or `auto`."""
    return lang == "auto" or lang in LANGUAGES


class CallLanguages:
    """callId -> detected language (thread-safe: decode workers read and write it)."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._langs: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._max = max_calls
        self._lock = threading.Lock()

    def get(self, call_id: str) -> str | None:
        """The call's language, if detected."""
        with self._lock:
            return self._langs.get(call_id)

    def resolve(self, call_id: str, audio_s: float, detect: Callable[[], str]) -> str:
        """The call's language; detect it (once per call) from this audio if long enough."""
        known = self.get(call_id)
        if known is not None:
            return known
        found = detect()
        if audio_s < DETECT_AFTER_S:
            return found
        with self._lock:
            # The other leg may have stored one meanwhile: the first stored wins.
            lang = self._langs.setdefault(call_id, found)
            self._langs.move_to_end(call_id)
            while len(self._langs) > self._max:
                self._langs.popitem(last=False)
            return lang
