import pytest

from bench.stt.wer import wer
from stt.engine import window_seconds
from stt.repair import is_hallucination
from tests.stt import audio

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def test_window_is_audio_plus_tail_rounded_up():
    assert window_seconds(2.2) == 3.0
    assert window_seconds(0.1) == 1.0
    assert window_seconds(45) == 30.0


@pytest.mark.parametrize("text", ["Gracias por ver el video.", "¡Suscríbete!", "  ", "..."])
def test_stock_hallucinations_are_recognised(text):
    assert is_hallucination(text)


def test_real_text_is_not_a_hallucination():
    assert not is_hallucination("Gracias por llamar, ¿en qué le puedo ayudar?")


def test_short_window_decode_of_real_speech(engine):
    prompt = audio.tone_file("conf-getpin")
    hyp = engine.decode(audio.to_float16k(prompt))
    assert hyp.window_s < 30
    assert wer("Por favor ingrese la clave de entrada para la conferencia.", hyp.text) <= 0.2
    assert 0 < hyp.confidence <= 1
    assert hyp.lang == "es"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "La conferencia está ahora siendo grabada. La conferencia está ahora siendo grabada.",
            "La conferencia está ahora siendo grabada.",
        ),
        (
            "para salir de la conferencia, para salir de la conferencia,",
            "para salir de la conferencia,",
        ),
        (
            "está a horas siendo grabada siendo grabada siendo grabada siendo grab",
            "está a horas siendo grabada siendo grab",
        ),
        ("uno dos tres cuatro", "uno dos tres cuatro"),
        ("sí sí, claro", "sí sí, claro"),
    ],
)
def test_trim_repeats(text, expected):
    from stt.repair import trim_repeats

    assert trim_repeats(text) == expected


@pytest.mark.parametrize(
    ("text", "echo"),
    [
        ("Su mensaje ha sido guardado. Su mensaje ha sido", 4),
        ("algo esta terriblemente mal algo esta terriblemente", 3),
        ("Modo de grabación Modo", 1),
        ("Nadie corresponde a su búsqueda. Nad", 1),
        ("no está libre no está", 2),
        ("está a horas siendo grabada siendo grab", 2),
        ("marque uno para salir", 0),
        ("uno dos tres", 0),
    ],
)
def test_tail_echo_candidates(text, echo):
    from stt.repair import drop_tail, tail_echo

    assert tail_echo(text) == echo
    assert len(drop_tail(text, echo).split()) == len(text.split()) - echo


def test_speech_that_repeats_itself_at_the_end_is_kept(engine):
    # 11.5 s of a real prompt whose last four words repeat its first four: the aligner puts
    # the repeat inside the speech, so it is not a decoder loop.
    pcm = audio.tone_file("conf-adminmenu-menu8")[int(8.76 * 8000) : int(20.57 * 8000)]
    hyp = engine.decode(audio.to_float16k(pcm))
    words = [w.strip(",.").lower() for w in hyp.text.split()]
    assert words[:4] == ["que", "no", "son", "administradores"]
    assert words[-4:] == ["que", "no", "son", "administradores"]


@pytest.mark.parametrize(
    ("name", "looped", "kept"),
    [
        ("vm-msgsaved", "Su mensaje ha sido guardado. Su mensaje ha sido", "guardado."),
        ("tt-somethingwrong", "algo esta terriblemente mal algo esta terriblemente", "mal"),
        ("spy-usbradio", "Radio U-S-B Radio U", "U-S-B"),
    ],
)
def test_a_loop_that_overruns_the_audio_is_trimmed(engine, name, looped, kept):
    # Texts the decoder really produced on these prompts (short windows, streaming cuts).
    import ctranslate2
    import numpy as np

    x = audio.to_float16k(audio.tone_file(name))
    feats = engine.features(x)
    encoded = engine._model.model.encode(ctranslate2.StorageView.from_array(feats[np.newaxis]))
    trimmed = engine._trim_loops(engine.tokenizer("es"), encoded, feats.shape[1], looped)
    assert trimmed.split()[-1] == kept
