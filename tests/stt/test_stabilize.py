import pytest

from stt.stabilize import Stabilizer

pytestmark = pytest.mark.unit


def test_agreed_words_stay_when_a_later_hypothesis_changes_them():
    s = Stabilizer()
    s.update("por favor ingrese")
    assert s.update("por favor ingrese la") == "por favor ingrese la"
    assert s.committed == ["por", "favor", "ingrese"]
    # The decoder changes its mind about a committed word: the shown text keeps it.
    shown = s.update("por favor, ingresa la clave")
    assert shown.split()[:3] == ["por", "favor", "ingrese"]
    assert shown.endswith("la clave")


def test_last_word_is_never_committed():
    s = Stabilizer()
    s.update("hola")
    s.update("hola")
    assert s.committed == []


def test_shown_text_never_loses_committed_words():
    s = Stabilizer()
    shown = []
    for hyp in ["uno", "uno dos", "uno dos tres", "uno", "uno dos tres cuatro"]:
        shown.append(s.update(hyp))
    assert shown[3].startswith("uno dos")
    assert shown[-1] == "uno dos tres cuatro"
