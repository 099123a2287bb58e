import pytest

from bench.stt.wer import WerCounts, corpus_wer, normalise, number_words, wer

pytestmark = pytest.mark.unit


def test_normalise_case_accents_punctuation():
    assert normalise("¿Número de Conferencia INVÁLIDO?") == [
        "numero",
        "de",
        "conferencia",
        "invalido",
    ]


def test_normalise_keeps_enie():
    assert normalise("Contraseña") == ["contraseña"]


@pytest.mark.parametrize(
    ("digits", "words"),
    [
        (0, "cero"),
        (1, "uno"),
        (16, "dieciseis"),
        (21, "veintiuno"),
        (35, "treinta y cinco"),
        (100, "cien"),
        (101, "ciento uno"),
        (999, "novecientos noventa y nueve"),
        (1000, "mil"),
        (2024, "dos mil veinticuatro"),
        (1_000_000, "un millon"),
    ],
)
def test_number_words(digits, words):
    assert number_words(digits) == words


def test_digits_and_words_score_the_same():
    assert wer("Por favor marque 1 para salir", "por favor marque uno para salir") == 0.0
    assert wer("presione 4 o 6", "presione cuatro u seis") == 0.0


def test_leading_zero_numbers_are_read_digit_by_digit():
    assert normalise("0123") == ["cero", "uno", "dos", "tres"]


def test_wer_counts_substitution_insertion_deletion():
    assert wer("a b c d", "a x c d") == 0.25
    assert wer("a b c d", "a b c d e") == 0.25
    assert wer("a b c d", "a b d") == 0.25
    assert wer("a b", "") == 1.0


def test_corpus_wer_weights_by_reference_words():
    counts = WerCounts()
    counts.add("uno dos tres cuatro", "uno dos tres cuatro")
    counts.add("cinco", "seis")
    assert counts.wer == pytest.approx(1 / 5)
    assert corpus_wer(
        [("uno dos tres cuatro", "uno dos tres cuatro"), ("cinco", "seis")]
    ) == pytest.approx(0.2)
