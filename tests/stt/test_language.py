"""Per-call language: `lang=` per stream, `auto` detected once per call for both legs."""

import numpy as np
import pytest

from stt.language import DETECT_AFTER_S, CallLanguages, valid_lang

pytestmark = pytest.mark.unit


def test_valid_lang_accepts_whisper_codes_and_auto_only():
    assert valid_lang("es") and valid_lang("en") and valid_lang("auto")
    assert not valid_lang("xx") and not valid_lang("EN") and not valid_lang("")


def test_a_call_keeps_the_first_language_detected_from_enough_audio():
    langs = CallLanguages(max_calls=2)
    calls: list[str] = []

    def detect(lang: str):
        def run() -> str:
            calls.append(lang)
            return lang

        return run

    # Too little audio: used for that decode, not remembered.
    assert langs.resolve("c1", DETECT_AFTER_S / 2, detect("fr")) == "fr"
    assert langs.get("c1") is None
    assert langs.resolve("c1", DETECT_AFTER_S, detect("en")) == "en"
    # From then on the call's language, without detecting again (the other leg too).
    assert langs.resolve("c1", 10.0, detect("es")) == "en"
    assert calls == ["fr", "en"]
    # Bounded: the oldest call is forgotten.
    langs.resolve("c2", 5.0, detect("es"))
    langs.resolve("c3", 5.0, detect("es"))
    assert langs.get("c1") is None and langs.get("c3") == "es"


def speech(name: str, lang: str) -> np.ndarray:
    from bench.stt import corpus

    p = corpus.load(name, lang=lang)
    return np.concatenate([np.zeros(4000, np.int16), p.pcm, np.zeros(12000, np.int16)])


async def leg(engine, scheduler, languages, speaker: str, pcm: np.ndarray, *, lang: str | None):
    from stt.stream import StreamParams, SttStream

    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    stream = SttStream(
        StreamParams("c-lang", speaker, 8000, lang),
        engine,
        scheduler,
        emit,
        languages=languages,
    )
    for i in range(0, len(pcm), 1600):
        await stream.feed(pcm[i : i + 1600].astype("<i2").tobytes())
    await stream.finish()
    return [e for e in events if e["type"] == "final" and e["text"]]


@pytest.mark.slow
async def test_auto_detects_the_call_language_once_and_both_legs_use_it(engine):
    from bench.stt.wer import wer
    from stt.scheduler import DecodeScheduler

    scheduler = DecodeScheduler(1)
    scheduler.start()
    languages = CallLanguages()
    try:
        english = speech("agent-newlocation", "en")
        first = await leg(engine, scheduler, languages, "customer", english, lang=None)
        assert first and {f["lang"] for f in first} == {"en"}
        text = " ".join(f["text"] for f in first)
        assert wer("Please enter a new extension followed by pound.", text) <= 0.2, text
        # The other leg of the call speaks Spanish, but the call was detected as English.
        spanish = speech("conf-getpin", "es")
        second = await leg(engine, scheduler, languages, "agent", spanish, lang=None)
        assert second and {f["lang"] for f in second} == {"en"}
        # A stream that names its language is transcribed in it, whatever the call's.
        named = await leg(engine, scheduler, languages, "agent", spanish, lang="es")
        assert {f["lang"] for f in named} == {"es"}
        assert "conferencia" in " ".join(f["text"] for f in named).lower()
    finally:
        await scheduler.close()
