"""The demo knowledge base as the tests and the bench use it, and a large one with distractors.

`demo_kb(dir)` copies `demo/kb/` and adds the two formats the repository does not ship as
binaries: a PDF (made with fpdf2, its headings as outline bookmarks) and a DOCX (python-docx,
"Heading" styles). `large_kb(dir, n)` adds `n` generated documents on the same topics (tariffs,
invoices, roaming, support...) with other names and numbers: same-topic distractors that share
most of the real passages' words, so ranking has to earn its recall.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
DEMO_KB: Final = ROOT / "demo" / "kb"
QUESTIONS: Final = ROOT / "tests" / "coach" / "knowledge" / "questions.yaml"
"""The labelled question set (data, read by path)."""

APP_GUIDE: Final = (
    "Guía de la app Telcomar",
    [
        (
            "Registrarse en la app",
            "Descargue la app Mi Telcomar, pulse Crear cuenta e introduzca su DNI y el número de "
            "teléfono. Recibirá un código por SMS para confirmar el registro.",
        ),
        (
            "Recuperar la contraseña",
            "En la pantalla de acceso pulse He olvidado mi contraseña. Le enviaremos un enlace al "
            "correo electrónico del contrato, válido durante 30 minutos.",
        ),
        (
            "Pagar una factura con tarjeta",
            "Una factura pendiente se puede pagar con tarjeta bancaria desde la app, en Facturas, "
            "pulsando Pagar ahora. El pago se refleja en el momento y evita la suspensión.",
        ),
        (
            "Notificaciones de la app",
            "Active las notificaciones para recibir avisos de consumo, de nuevas facturas y de "
            "incidencias en su zona. Se configuran en Ajustes, Notificaciones.",
        ),
    ],
)
PRIVACY: Final = (
    "Protección de datos",
    [
        (
            "Grabación de las llamadas",
            "Las llamadas al servicio de atención se graban para mejorar la calidad y como prueba "
            "de lo contratado. Las grabaciones se conservan seis meses y el cliente puede pedir una "
            "copia.",
        ),
        (
            "Derecho de acceso y supresión",
            "El cliente puede pedir qué datos suyos tenemos, corregirlos o borrarlos escribiendo a "
            "privacidad@telcomar.example con una copia del DNI. Respondemos en un mes.",
        ),
        (
            "Publicidad y comunicaciones comerciales",
            "Para dejar de recibir publicidad por SMS, correo o llamadas, el cliente lo indica en la "
            "app, en Privacidad, o se lo pide al agente, que lo marca en la ficha al momento.",
        ),
    ],
)


def write_pdf(path: Path, title: str, sections: list[tuple[str, str]]) -> None:
    """A PDF whose headings are outline entries (what the PDF reader splits on)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", size=16)
    pdf.start_section(title, level=0)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    for heading, body in sections:
        pdf.set_font("helvetica", size=13)
        pdf.start_section(heading, level=1)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def write_docx(path: Path, title: str, sections: list[tuple[str, str]]) -> None:
    """A DOCX with a Title and Heading 2 paragraphs."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for heading, body in sections:
        document.add_heading(heading, level=2)
        document.add_paragraph(body)
    document.save(str(path))


def demo_kb(target: Path) -> Path:
    """`demo/kb/` plus a generated PDF and DOCX, in `target` (created)."""
    shutil.copytree(DEMO_KB, target, dirs_exist_ok=True)
    write_pdf(target / "guia-app.pdf", *APP_GUIDE)
    write_docx(target / "proteccion-datos.docx", *PRIVACY)
    return target


_BRANDS: Final = ["Nubia", "Ondas", "Vértice", "Marea", "Alba", "Rayo", "Cumbre", "Faro"]
_TOPICS: Final = [
    (
        "Tarifa {b} {n}",
        "La tarifa {b} {n} cuesta {p} € al mes con {g} GB de datos y llamadas "
        "ilimitadas. Tiene una permanencia de {m} meses y la instalación cuesta {i} €.",
    ),
    (
        "Factura de la tarifa {b} {n}",
        "La factura de {b} {n} se emite el día {d} y se carga en la "
        "cuenta bancaria a los {m} días. Los consumos extra se facturan a mes vencido.",
    ),
    (
        "Roaming con {b} {n}",
        "Con {b} {n} el roaming en la zona {z} cuesta {p} € al día con {g} GB. "
        "Fuera de la Unión Europea se aplica el bono de viaje de la zona {z}.",
    ),
    (
        "Baja de {b} {n}",
        "Para dar de baja {b} {n} hay que llamar al 1550. La penalización por "
        "permanencia es de {i} € por mes pendiente y el router se devuelve en {d} días.",
    ),
    (
        "Avería en {b} {n}",
        "Si la fibra {b} {n} no funciona, reinicie el router y espere {m} "
        "minutos. Si sigue sin conexión, se programa una visita del técnico en {d} horas.",
    ),
    (
        "Oferta {b} {n} para clientes",
        "A clientes de {b} {n} que piden la baja se les puede ofrecer "
        "un descuento del {g} % durante {m} meses con una nueva permanencia.",
    ),
]


def large_kb(target: Path, n_docs: int, seed: int = 7, sections: int = 4) -> Path:
    """The demo KB plus `n_docs` generated same-topic documents (Markdown) of `sections`
    sections each, in `target`."""
    demo_kb(target)
    rng = random.Random(seed)
    gen = target / "generated"
    gen.mkdir(exist_ok=True)
    for k in range(n_docs):
        brand = f"{rng.choice(_BRANDS)} {rng.randint(1, 99)}"
        lines = [f"# Catálogo antiguo {brand} ({k})", ""]
        for head, body in rng.sample(_TOPICS, sections):
            vals = {
                "b": brand,
                "n": rng.choice(["Plus", "Max", "Mini", "Hogar", "Joven"]),
                "p": rng.randint(5, 60),
                "g": rng.randint(5, 100),
                "m": rng.choice([3, 6, 12, 18, 24]),
                "i": rng.randint(10, 90),
                "d": rng.randint(1, 30),
                "z": rng.randint(1, 4),
            }
            lines += [f"## {head.format(**vals)}", "", body.format(**vals), ""]
        (gen / f"doc-{k:05d}.md").write_text("\n".join(lines), encoding="utf-8")
    return target
