import pytest

from stt.engine import is_hallucination, window_seconds
from stt.wer import wer
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
            "está a horas siendo grabada",
        ),
        ("uno dos tres cuatro", "uno dos tres cuatro"),
        ("sí sí, claro", "sí sí, claro"),
    ],
)
def test_trim_repeats(text, expected):
    from stt.engine import trim_repeats

    assert trim_repeats(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Su mensaje ha sido guardado. Su mensaje ha sido", "Su mensaje ha sido guardado."),
        ("algo esta terriblemente mal algo esta terriblemente", "algo esta terriblemente mal"),
        ("marque uno para salir", "marque uno para salir"),
    ],
)
def test_trim_cut_off_loop_at_the_end(text, expected):
    from stt.engine import trim_repeats

    assert trim_repeats(text) == expected
