"""The question detector on finals as the STT writes them: question marks often missing."""

from __future__ import annotations

import pytest

from orchestrator.questions import is_question

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        # accented interrogatives without their marks
        "Si me paso de los minutos de la básica, cuánto me cobran",
        "No tengo internet desde esta mañana, qué hago",
        "A qué hora abre la tienda del centro",
        "Por qué me habéis cobrado esto",
        # speaking to the company in the second person plural
        "Otra compañía me ofrece lo mismo más barato, me lo igualáis",
        # wishes and problems told, not asked
        "Quería añadir otra línea de móvil para mi hijo",
        "El wifi va lentísimo en mi habitación",
        "La luz del router parpadea",
        "Me pide el PUK y no lo tengo",
        "No me acuerdo de la contraseña de la aplicación",
        "My internet is down, what should I do",
        "My phone keeps dropping calls",
    ],
)
def test_questions_without_question_marks(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "Vale, muchas gracias.",
        "Sí, claro, dígame",
        "Qué bien",
        "Mi DNI es uno dos tres cuatro cinco",
        "De acuerdo, espero un momento",
        "Perfecto, muchas gracias por todo",
        "Que tenga un buen día",
        "The weather is nice today.",
    ],
)
def test_statements_that_ask_nothing(text: str) -> None:
    assert not is_question(text)
