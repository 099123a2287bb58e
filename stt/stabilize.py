"""Partial-transcript stabilisation: words already shown do not flicker.

Local agreement: a word becomes *committed* once two consecutive hypotheses agree on it (and on
every word before it), except the last word of the newer hypothesis, which may still be cut.
A shown partial is the committed words followed by the newest hypothesis' words after them,
so committed words never change or disappear within an utterance. The final is free to differ
(it replaces the partials).
"""

from __future__ import annotations

from stt.repair import word_key as _key


class Stabilizer:
    """Keeps the committed prefix of one utterance's partials."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, hypothesis: str) -> str:
        """Fold in a new hypothesis; return the text to show."""
        words = hypothesis.split()
        # Agreement between the previous and this hypothesis, beyond what is already committed.
        agreed = 0
        limit = min(len(words) - 1, len(self._previous))
        while agreed < limit and _key(words[agreed]) == _key(self._previous[agreed]):
            agreed += 1
        if agreed > len(self.committed) and all(
            _key(a) == _key(b) for a, b in zip(self.committed, words, strict=False)
        ):
            self.committed = words[:agreed]
        self._previous = words
        n = len(self.committed)
        # Align the new words after the committed prefix: skip as many as are committed if the
        # hypothesis starts with them, otherwise just append its tail past that many words.
        tail = words[n:] if len(words) > n else []
        return " ".join(self.committed + tail)
