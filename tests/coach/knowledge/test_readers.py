"""Each format's reader finds the document's own headings, anchors and text."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.kb.corpus import write_docx, write_pdf
from coach.knowledge.readers import ReadError, read

pytestmark = pytest.mark.unit


def test_markdown_sections_follow_headings(tmp_path: Path) -> None:
    p = tmp_path / "a.md"
    p.write_text(
        "# Título\n\nIntro *con* énfasis.\n\n## ¿Cómo pago?\n\n- con tarjeta\n- en tienda\n\n"
        "## Tabla\n\n| plan | precio |\n|---|---|\n| Fibra | 30 € |\n\n## ¿Cómo pago?\n\notra\n",
        encoding="utf-8",
    )
    doc = read(p)
    assert doc.title == "Título" and doc.format == "markdown" and doc.has_headings
    titles = [(s.title, s.anchor) for s in doc.sections]
    assert titles == [
        ("Título", "titulo"),
        ("¿Cómo pago?", "como-pago"),
        ("Tabla", "tabla"),
        ("¿Cómo pago?", "como-pago-2"),
    ]
    assert doc.sections[0].text == "Intro con énfasis."
    assert doc.sections[1].text == "con tarjeta\nen tienda"
    assert "Fibra · 30 €" in doc.sections[2].text


def test_html_keeps_ids_and_drops_scripts(tmp_path: Path) -> None:
    p = tmp_path / "a.html"
    p.write_text(
        "<html><head><title>T</title><script>alert('x')</script></head><body>"
        "<nav>menu</nav><h1>Doc</h1><h2 id='pago'>Pagar</h2><ul><li><p>uno</p></li></ul>"
        "<p>dos</p><h2>Sin id</h2><p>tres</p></body></html>",
        encoding="utf-8",
    )
    doc = read(p)
    assert doc.title == "Doc"
    by = {s.anchor: s for s in doc.sections}
    assert by["pago"].text == "uno\ndos"
    assert by["sin-id"].text == "tres"
    assert all("alert" not in s.text and "menu" not in s.text for s in doc.sections)


def test_plain_text_headings(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(
        "Guía\n====\n\nIntro.\n\nReiniciar\n---------\nApague el router.\n\n"
        "¿Y si parpadea?\nLlame al 1550.\n",
        encoding="utf-8",
    )
    doc = read(p)
    assert doc.title == "Guía"
    assert [s.title for s in doc.sections] == ["Guía", "Reiniciar", "¿Y si parpadea?"]
    assert doc.sections[2].text == "Llame al 1550."


def test_text_without_headings_is_reported_as_such(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("Una frase larga que termina en punto.\nOtra frase que también termina.\n")
    doc = read(p)
    assert not doc.has_headings and len(doc.sections) == 1


def test_csv_faq_rows_are_sections(tmp_path: Path) -> None:
    p = tmp_path / "faq.csv"
    p.write_text(
        'Pregunta;Respuesta\n¿Horario?;"De 8 a 22; todos los días"\n;sin pregunta\n',
        encoding="utf-8",
    )
    doc = read(p)
    assert [(s.title, s.text) for s in doc.sections] == [("¿Horario?", "De 8 a 22; todos los días")]


def test_csv_without_question_column_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "faq.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ReadError, match="question"):
        read(p)


def test_pdf_outline_gives_sections(tmp_path: Path) -> None:
    p = tmp_path / "g.pdf"
    write_pdf(p, "Guía", [("Primero", "Texto uno."), ("Segundo", "Texto dos.")])
    doc = read(p)
    assert doc.format == "pdf" and doc.title == "Guía"
    by = {s.title: s.text for s in doc.sections}
    assert by["Primero"] == "Texto uno." and by["Segundo"] == "Texto dos."


def test_docx_heading_styles_give_sections(tmp_path: Path) -> None:
    p = tmp_path / "d.docx"
    write_docx(p, "Datos", [("Acceso", "Escriba a privacidad."), ("Borrado", "En un mes.")])
    doc = read(p)
    assert doc.title == "Datos" and doc.format == "docx"
    assert [(s.title, s.text) for s in doc.sections if s.text] == [
        ("Acceso", "Escriba a privacidad."),
        ("Borrado", "En un mes."),
    ]


def test_broken_binary_files_are_errors_not_crashes(tmp_path: Path) -> None:
    for name in ("x.pdf", "x.docx"):
        (tmp_path / name).write_bytes(b"not really")
        with pytest.raises(ReadError):
            read(tmp_path / name)
