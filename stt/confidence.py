"""Calibrated word confidence: the chance that a word of a final is right.

Whisper's token probabilities (the aligner's, averaged over a word's tokens) are over-confident
and not linear in accuracy. `calibrated` maps a word's raw probability to the fraction of words
with that raw probability that were right on the tuning half of the Spanish dev prompts
(bench/stt/calibrate.py; a logistic fit on the logit of the raw probability); a final's
`confidence` is the mean over its words, i.e. the expected fraction of its words that are right.
"""

from __future__ import annotations

import math

SLOPE = 0.5052
INTERCEPT = 0.5248
"""The fit: calibrated = sigmoid(SLOPE * logit(raw) + INTERCEPT). Fitted 2026-12-01 on the
Spanish tuning half (581 words, faster-whisper base int8). On the reporting half (820 words,
not fitted) the fraction of words right per calibrated bin: 0.5-0.7 -> 0.65 (mean p 0.63),
0.7-0.8 -> 0.79 (0.75), 0.8-0.9 -> 0.92 (0.86), 0.9-0.95 -> 0.98 (0.93), 0.95-1 -> 0.97
(0.97); Brier score 0.111 raw -> 0.104 calibrated."""
_EPS = 1e-4


def calibrated(raw: float) -> float:
    """The calibrated chance that a word with raw probability `raw` is right."""
    p = min(1.0 - _EPS, max(_EPS, raw))
    z = SLOPE * math.log(p / (1.0 - p)) + INTERCEPT
    return 1.0 / (1.0 + math.exp(-z))
