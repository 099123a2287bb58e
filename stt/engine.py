"""The Whisper decoder: one CTranslate2 model per process, fed windows cut to the audio's length.

The text heuristics it applies to what Whisper returns (loops, echoes, stock inventions) are in
stt/repair.py; here only the one that needs the model (the aligner: does the text overrun the
audio?).

Whisper is trained on 30 s windows, and faster-whisper pads every input to 30 s; the encoder
cost grows with the window, so a 2 s utterance pays for 30 s. CTranslate2's encoder accepts
shorter mel inputs, so we feed the utterance plus a short silence margin, rounded up to a
bucket (fewer distinct shapes), which is 2-4x faster for short utterances with the same text.
The price is loops on the shortest: a word alone in a 2-3 s window comes back said two or
three times ("Entiendo." -> "entiendo entiendo", "Adiós." -> "Adiós Adiós Adiós"; in the 30 s
window once), and the aligner does not put those echoes past the speech. So a final whose text
still ends in an echo of its own words is decoded again in the 30 s window, and that reading is
kept (it costs a 30 s encoder pass, only for those finals).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens, merge_punctuations

from stt import batch
from stt.confidence import calibrated
from stt.repair import drop_tail, tail_echo, trim_repeats

SAMPLE_RATE = 16_000
MAX_WINDOW_S = 30.0
# Silence appended after the audio: Whisper needs a little trailing context to emit the last word.
TAIL_PAD_S = 0.5
# Window lengths are rounded up to this step so CTranslate2 sees few distinct shapes.
WINDOW_STEP_S = 1.0
# Real speech ends before the silence padded after it (TAIL_PAD_S or more). A text that the
# aligner has to stretch to within this much of the window's end ran out of audio: a loop.
OVERRUN_MARGIN_S = 0.1
# How many echoes one final may shed ("Felicidades Felicidades Felicidades Fel" sheds two).
MAX_ECHO_TRIMS = 3
# faster-whisper's defaults: punctuation that joins the word after / before it.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class EngineConfig:
    """How the model is loaded and decoded."""

    model_path: str
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 1
    num_workers: int = 1
    lang: str | None = "es"
    beam_size_final: int = 5
    beam_size_partial: int = 1
    min_window_s: float = 0.0
    """Shortest encoder window: longer trades speed for accuracy (30 = faster-whisper's padding)."""


@dataclass(frozen=True)
class Hypothesis:
    """One decode: text, its token ids (for prompting later decodes) and quality scores."""

    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    lang: str
    audio_s: float
    decode_s: float
    window_s: float
    words: tuple[dict[str, Any], ...] = field(default=())
    """With word timings: {w, start, end, p}, seconds from the audio's start; `p` calibrated
    (stt/confidence.py: the chance the word is right)."""

    @property
    def confidence(self) -> float:
        """Expected fraction of words right: the mean calibrated word `p` when the decode has
        words, else exp(mean token log-probability); in [0, 1]."""
        if self.words:
            return float(np.mean([w["p"] for w in self.words]))
        return float(min(1.0, max(0.0, np.exp(self.avg_logprob))))


@dataclass(frozen=True, eq=False)
class DecodeRequest:
    """One decode, prepared (`WhisperEngine.prepare`): what `generate` needs, and what
    `finish` needs to repair and time its result."""

    audio: npt.NDArray[np.float32]
    feats: npt.NDArray[np.float32]
    lang: str
    prompt: tuple[int, ...]
    sot_index: int
    beam: int
    max_length: int
    final: bool
    words: bool
    prompt_tokens: tuple[int, ...]
    prefix: str
    beam_size: int | None
    started: float

    @property
    def batch_key(self) -> tuple[int, int, int, int]:
        """Requests with equal keys give the same results alone or batched (stt/batch.py):
        window frames, beam, length cap, position of <|startoftranscript|>."""
        return (self.feats.shape[1], self.beam, self.max_length, self.sot_index)


def window_seconds(audio_s: float) -> float:
    """Encoder window used for `audio_s` seconds of audio (audio + tail pad, rounded up)."""
    need = audio_s + TAIL_PAD_S
    return float(min(MAX_WINDOW_S, np.ceil(need / WINDOW_STEP_S) * WINDOW_STEP_S))


class WhisperEngine:
    """Thread-safe decoder over one faster-whisper/CTranslate2 model."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._model = WhisperModel(
            config.model_path,
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=True,
        )
        self.device = str(self._model.model.device)
        self.compute_type = str(self._model.model.compute_type)
        multilingual = self._model.model.is_multilingual
        self._default_lang = config.lang or "es"
        self._tokenizers: dict[str, Any] = {}
        self._tok_lock = threading.Lock()
        self._multilingual = multilingual
        tok = self.tokenizer(self._default_lang)
        self._suppress = list(get_suppressed_tokens(tok, [-1]) or ())
        self._extractor = self._model.feature_extractor
        self._extractor_lock = threading.Lock()

    def tokenizer(self, lang: str) -> Any:
        """Tokenizer for `lang` (cached)."""
        with self._tok_lock:
            if lang not in self._tokenizers:
                self._tokenizers[lang] = Tokenizer(
                    self._model.hf_tokenizer, self._multilingual, task="transcribe", language=lang
                )
            return self._tokenizers[lang]

    def features(
        self, audio: npt.NDArray[np.float32], min_window_s: float = 0.0
    ) -> npt.NDArray[np.float32]:
        """Log-mel features of `audio` padded with silence to its window length (at least
        `min_window_s` and the configured minimum)."""
        floor = max(min_window_s, self.config.min_window_s)
        window = max(window_seconds(len(audio) / SAMPLE_RATE), min(MAX_WINDOW_S, floor))
        n = int(window * SAMPLE_RATE)
        padded = np.zeros(n, dtype=np.float32)
        padded[: min(n, len(audio))] = audio[-n:] if len(audio) > n else audio
        # The extractor keeps state in attributes; serialise (it is cheap next to the decode).
        with self._extractor_lock:
            mel = self._extractor(padded, padding=0)
        frames = int(window * 100)
        return np.ascontiguousarray(mel[:, :frames], dtype=np.float32)

    def detect_language(self, features: npt.NDArray[np.float32]) -> str:
        """Most likely language of the features (used when LANG=auto)."""
        enc = self._model.encode(features)
        results = self._model.model.detect_language(enc)[0]
        return str(results[0][0]).strip("<|>")

    def detect(self, audio: npt.NDArray[np.float32]) -> str:
        """Most likely language of 16 kHz `audio` (one encoder pass)."""
        return self.detect_language(self.features(audio))

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        *,
        prompt_tokens: tuple[int, ...] = (),
        final: bool = True,
        lang: str | None = None,
        prefix: str = "",
        beam_size: int | None = None,
        words: bool = False,
        min_window_s: float = 0.0,
    ) -> Hypothesis:
        """Transcribe one utterance (16 kHz float32); with `words`, time and score each word
        (one more decoder pass: Whisper's cross-attention alignment, as faster-whisper's
        word_timestamps does it). Called from a batched group's job (stt/batch.py), the encode
        and generate run in one call with the other jobs' decodes; the result is the same."""
        req = self.prepare(
            audio,
            prompt_tokens=prompt_tokens,
            final=final,
            lang=lang,
            prefix=prefix,
            beam_size=beam_size,
            words=words,
            min_window_s=min_window_s,
        )
        rendezvous = batch.current()
        if rendezvous is None:
            out = self.generate([req])[0]
        else:
            out = rendezvous.generate(req, self.generate)
        return self.finish(req, *out)

    def prepare(
        self,
        audio: npt.NDArray[np.float32],
        *,
        prompt_tokens: tuple[int, ...] = (),
        final: bool = True,
        lang: str | None = None,
        prefix: str = "",
        beam_size: int | None = None,
        words: bool = False,
        min_window_s: float = 0.0,
    ) -> DecodeRequest:
        """Features, language and prompt of one decode (`decode`'s arguments), ready to batch."""
        t0 = time.perf_counter()
        feats = self.features(audio, min_window_s)
        if lang is None and self.config.lang is None:
            lang = self.detect_language(feats)
        lang = lang or self._default_lang
        tok = self.tokenizer(lang)
        prompt: list[int] = []
        if prompt_tokens:
            prompt.append(tok.sot_prev)
            prompt.extend(prompt_tokens[-(223 - 1) :])
        sot_index = len(prompt)
        prompt.extend(tok.sot_sequence)
        prompt.append(tok.no_timestamps)
        prefix_tokens: list[int] = tok.encode(" " + prefix.strip()) if prefix.strip() else []
        # A forced prefix (words already shown) is read in one pass instead of decoded token by
        # token: partials of long utterances get much cheaper.
        prompt.extend(prefix_tokens)
        audio_s = len(audio) / SAMPLE_RATE
        # Spanish speech runs ~3 tokens/s; the cap stops a looping decoder early. It grows with
        # the audio's window bucket, not the exact length, so that windows of equal length get
        # equal caps and can share a batched call (stt/batch.py).
        max_new = int(10 + 6 * (window_seconds(audio_s) - TAIL_PAD_S))
        beam = beam_size or (
            self.config.beam_size_final if final else self.config.beam_size_partial
        )
        return DecodeRequest(
            audio=audio,
            feats=feats,
            lang=lang,
            prompt=tuple(prompt),
            sot_index=sot_index,
            beam=beam,
            max_length=min(448, len(prompt) + max(4, max_new - len(prefix_tokens))),
            final=final,
            words=words,
            prompt_tokens=prompt_tokens,
            prefix=prefix,
            beam_size=beam_size,
            started=t0,
        )

    def generate(
        self, requests: Sequence[DecodeRequest]
    ) -> list[tuple[Any, ctranslate2.StorageView]]:
        """Encode and decode requests of equal `batch_key` in one CTranslate2 call: each one's
        generation result and encoder output (a batch of one)."""
        first = requests[0]
        if any(r.batch_key != first.batch_key for r in requests):
            raise ValueError("a batched generate needs requests of equal batch_key")
        feats = np.stack([r.feats for r in requests])
        # Encoded once: the same output feeds the decoder and, for a suspect echo, the aligner.
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(feats), to_cpu=len(requests) > 1
        )
        results = self._model.model.generate(
            encoded,
            [list(r.prompt) for r in requests],
            beam_size=first.beam,
            max_length=first.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
        )
        if len(requests) == 1:
            return [(results[0], encoded)]
        # Each request's own encoder output for its alignment (the batch is on the CPU).
        batch = np.asarray(encoded)
        return [
            (result, ctranslate2.StorageView.from_array(np.ascontiguousarray(batch[i : i + 1])))
            for i, result in enumerate(results)
        ]

    def finish(
        self, req: DecodeRequest, result: Any, encoded: ctranslate2.StorageView
    ) -> Hypothesis:
        """Text, loop repair and word timings of one generated request."""
        tok = self.tokenizer(req.lang)
        feats = req.feats
        audio_s = len(req.audio) / SAMPLE_RATE
        # CTranslate2 returns the forced prefix as part of the sequence.
        tokens = tuple(int(t) for t in result.sequences_ids[0])
        cum = float(result.scores[0]) if result.scores else 0.0
        avg_logprob = cum * len(tokens) / (len(tokens) + 1) if tokens else -10.0
        raw = tok.decode(list(tokens)).strip()
        text = trim_repeats(raw)
        if req.final:
            text = self._trim_loops(tok, encoded, feats.shape[1], text)
            if tail_echo(text) and feats.shape[1] < MAX_WINDOW_S * 100:
                # A short window's echo the aligner could not place past the speech (module
                # docstring): the full window reads it.
                hyp = self.decode(
                    req.audio,
                    prompt_tokens=req.prompt_tokens,
                    final=True,
                    lang=req.lang,
                    prefix=req.prefix,
                    beam_size=req.beam_size,
                    words=req.words,
                    min_window_s=MAX_WINDOW_S,
                )
                return replace(hyp, decode_s=time.perf_counter() - req.started)
        else:
            # A partial's audio ends mid-speech: its echo goes unchecked (the final checks).
            text = drop_tail(text, tail_echo(text))
        if text != raw:
            # Later decodes are prompted with these tokens: they must not carry the loop.
            tokens = tuple(tok.encode(" " + text)) if text else ()
        timed = self._words(tok, encoded, feats.shape[1], tokens, audio_s) if req.words else ()
        return Hypothesis(
            text=text,
            tokens=tokens,
            avg_logprob=avg_logprob,
            no_speech_prob=float(result.no_speech_prob),
            lang=req.lang,
            audio_s=audio_s,
            decode_s=time.perf_counter() - req.started,
            window_s=feats.shape[1] / 100,
            words=timed,
        )

    def _words(
        self,
        tok: Any,
        encoded: ctranslate2.StorageView,
        frames: int,
        tokens: tuple[int, ...],
        audio_s: float,
    ) -> tuple[dict[str, Any], ...]:
        """{w, start, end, p} per word of `tokens` (faster-whisper's find_alignment)."""
        text_tokens = [t for t in tokens if t < tok.eot]
        if not text_tokens:
            return ()
        alignment = self._model.find_alignment(tok, [text_tokens], encoded, frames)[0]
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        alignment = [a for a in alignment if str(a["word"]).strip()]
        if not alignment:
            return ()
        # As faster-whisper does: the aligner stretches the first word over the silence before
        # it (and the last over the silence after); cut them to twice the median word length.
        durations = [a["end"] - a["start"] for a in alignment if a["end"] > a["start"]]
        longest = 2 * min(0.7, float(np.median(durations))) if durations else 0.0
        first, last = alignment[0], alignment[-1]
        if longest and first["end"] - first["start"] > longest:
            first["start"] = first["end"] - longest
        if longest and last["end"] - last["start"] > longest:
            last["end"] = last["start"] + longest
        out = []
        for a in alignment:
            word = str(a["word"]).strip()
            start = min(float(a["start"]), audio_s)
            out.append(
                {
                    "w": word,
                    "start": round(start, 3),
                    "end": round(max(start, min(float(a["end"]), audio_s)), 3),
                    "p": round(calibrated(float(a["probability"])), 3),
                }
            )
        return tuple(out)

    def _trim_loops(
        self, tok: Any, encoded: ctranslate2.StorageView, frames: int, text: str
    ) -> str:
        """Drop trailing echoes of earlier words while the text overruns the audio."""
        window_s = frames / 100
        for _ in range(MAX_ECHO_TRIMS):
            echo = tail_echo(text)
            if not echo or self._text_end(tok, encoded, frames, text) < window_s - OVERRUN_MARGIN_S:
                break
            text = drop_tail(text, echo)
        return text

    def _text_end(
        self, tok: Any, encoded: ctranslate2.StorageView, frames: int, text: str
    ) -> float:
        """Second (in the window of `frames` mel frames) where the aligner ends `text`."""
        res = self._model.model.align(
            encoded, tok.sot_sequence, [tok.encode(" " + text)], frames, median_filter_width=7
        )[0]
        text_idx = np.array([a[0] for a in res.alignments])
        time_idx = np.array([a[1] for a in res.alignments])
        # One time per token where the path first reaches it; the last is end-of-text's.
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        return float(time_idx[jumps][-1] / 50)
