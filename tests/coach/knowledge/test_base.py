"""The knowledge base of a folder: ids, passages, re-indexing on change, scores, the linter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coach.knowledge import KnowledgeBase
from coach.knowledge.analysis import content_words, detect_lang, fold
from coach.knowledge.base import MAX_PASSAGE_WORDS
from coach.knowledge.lint import lint

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_analysis_folds_accents_keeps_enye_and_drops_fillers() -> None:
    assert fold("Facturación AÑO") == "facturacion año"
    assert content_words("Hola, buenas, quería saber cuánto cuesta la fibra") == [
        "cuesta",
        "fibra",
    ]
    assert detect_lang("How do I pay the bill?") == "en"
    assert detect_lang("¿Cómo pago la factura de la fibra?") == "es"


def test_passages_keep_document_section_and_link(tmp_path: Path) -> None:
    _write(tmp_path / "tarifas" / "fibra.md", "# Fibra\n\n## Precio\n\nLa fibra cuesta 30 €.\n")
    _write(tmp_path / "tarifas" / "fibra.html", "<h1>Otra</h1><h2 id='x'>X</h2><p>texto</p>")
    _write(tmp_path / "_synonyms.txt", "precio, coste\n")
    _write(tmp_path / ".hidden.md", "# no\n\ntexto\n")
    kb = KnowledgeBase(tmp_path)
    assert kb.refresh()
    # Sorted paths: fibra.html comes first and keeps the short id.
    assert sorted(d.id for d in kb) == ["tarifas-fibra", "tarifas-fibra-md"]
    p = kb.passage("tarifas-fibra-md#precio")
    assert p is not None
    assert (p.title, p.section, p.url, p.lang) == (
        "Fibra",
        "Precio",
        "/kb/docs/tarifas-fibra-md#precio",
        "es",
    )
    hits = kb.search("¿qué coste tiene la fibra?")
    assert hits and hits[0].passage.id == "tarifas-fibra-md#precio"
    assert 0 < hits[0].score <= 1


def test_doc_lookup_is_by_id_never_by_path(tmp_path: Path) -> None:
    _write(tmp_path / "kb" / "a.md", "# A\n\ntexto\n")
    _write(tmp_path / "secret.md", "# S\n\nsecreto\n")
    kb = KnowledgeBase(tmp_path / "kb")
    kb.refresh()
    assert kb.doc("a") is not None
    for bad in ("../secret", "../secret.md", "/etc/passwd", "..", "a/../../secret"):
        assert kb.doc(bad) is None


def test_refresh_rebuilds_only_when_files_change(tmp_path: Path) -> None:
    doc = tmp_path / "roaming.md"
    _write(doc, "# Roaming\n\n## Europa\n\nEn Europa el roaming no cuesta nada.\n")
    kb = KnowledgeBase(tmp_path)
    assert kb.refresh()
    assert not kb.refresh()
    assert not kb.search("seguro del móvil", min_score=0.3)
    _write(
        tmp_path / "seguro.md",
        "# Seguro\n\n## Precio del seguro\n\nEl seguro del móvil vale 7 €.\n",
    )
    assert kb.refresh()
    assert kb.search("seguro del móvil")[0].passage.id == "seguro#precio-del-seguro"
    doc.write_text("# Roaming\n\n## Mundo\n\nFuera de Europa el roaming cuesta 5 € al día.\n")
    os.utime(doc, ns=(1, 1))  # a different mtime even on coarse clocks
    assert kb.refresh()
    assert kb.passage("roaming#europa") is None and kb.passage("roaming#mundo") is not None
    (tmp_path / "seguro.md").unlink()
    assert kb.refresh()
    assert kb.doc("seguro") is None


def test_unrelated_questions_score_low_and_min_score_filters(tmp_path: Path) -> None:
    _write(
        tmp_path / "f.md",
        "# F\n\n## Factura\n\nLa factura se cobra el día 5 de cada mes.\n"
        "\n## Router\n\nReinicie el router si no hay conexión.\n",
    )
    kb = KnowledgeBase(tmp_path)
    kb.refresh()
    good = kb.search("¿qué día se cobra la factura?")[0]
    assert good.passage.id == "f#factura" and good.score >= 0.5
    assert kb.search("¿qué tiempo hará mañana en Sevilla?", min_score=0.3) == []
    assert all(h.score >= good.score for h in kb.search("cobra factura", min_score=good.score))


def test_long_sections_are_split_and_cards_trimmed(tmp_path: Path) -> None:
    def filler(n: int, topic: str) -> str:
        return " ".join(f"Frase {i} sobre {topic} que no responde nada." for i in range(n))

    first, second = filler(12, "tarifas"), filler(12, "facturas")
    _write(
        tmp_path / "largo.md",
        f"# L\n\n## Todo\n\n{first}\n\n{second} El PUK se pide en tienda. {filler(5, 'otros')}\n",
    )
    kb = KnowledgeBase(tmp_path)
    kb.refresh()
    assert [p.id for p in kb.snapshot.index.passages] == ["largo#todo", "largo#todo-2"]
    assert kb.snapshot.docs["largo"].split_sections == ["Todo"]
    hit = kb.search("¿dónde pido el PUK?")[0]
    assert hit.passage.id == "largo#todo-2"
    assert "El PUK se pide en tienda." in hit.text and len(hit.text) < len(hit.passage.text) / 2


def test_lint_reports_overlap_overlong_and_missing_headings(tmp_path: Path) -> None:
    answer = "La penalización por permanencia es de diez euros por cada mes que falte hasta un año."
    _write(tmp_path / "a.md", f"# A\n\n## Permanencia\n\n{answer}\n")
    _write(tmp_path / "b.md", f"# B\n\n## Penalización\n\n{answer} Sin más.\n")
    long_text = " ".join(["palabra"] * (MAX_PASSAGE_WORDS + 20))
    _write(tmp_path / "c.md", f"# C\n\n## Largo\n\n{long_text}\n")
    _write(tmp_path / "d.txt", "Solo una línea de texto sin ningún título en todo el documento.\n")
    _write(tmp_path / "e.csv", "x,y\n1,2\n")
    findings = lint(KnowledgeBase(tmp_path))
    kinds = {(f.kind, f.where.split(" ")[0]) for f in findings}
    assert ("overlap", "a#permanencia") in kinds
    assert ("overlong", "c.md") in kinds
    assert ("no-headings", "d.txt") in kinds
    assert ("unreadable", "e.csv") in kinds
    assert not any(f.kind == "overlap" and "c#" in f.where for f in findings)


def test_lint_command_prints_progress_and_fails_on_findings(tmp_path: Path) -> None:
    _write(tmp_path / "d.txt", "Solo una línea de texto sin ningún título en todo el documento.\n")
    run = subprocess.run(
        [sys.executable, "-m", "coach.knowledge", "lint", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert run.returncode == 1
    assert "reading 1/1 d.txt" in run.stderr
    assert "no-headings" in run.stdout and "lint: 1 no-headings" in run.stdout


def test_demo_kb_lints_clean() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "coach.knowledge", "lint", "--quiet", str(ROOT / "demo" / "kb")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout
