import pytest

from stt.endpoint import looks_finished

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "La conferencia ha terminado.",
        "¿Me puede dar su número de cliente?",
        "Entrando a la conferencia número",  # Whisper often drops the final period
        "quiero cancelar mi contrato",
        "thanks for calling",
    ],
)
def test_finished(text):
    assert looks_finished(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "para salir de la conferencia,",  # a comma: more is coming
        "quiero cancelar el",  # an article cannot end a sentence
        "Por favor presione uno para",
        "I would like to speak to the",
        "cuatro o seis para decrementar o",
        "Por favor ingrese la clave de entrar a par...",  # a word cut off
        "y entonces…",
    ],
)
def test_not_finished(text):
    assert not looks_finished(text)
