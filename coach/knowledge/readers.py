"""Readers: one per document format, each turning a file into titled sections.

Libraries, not hand-written parsers: Markdown through `markdown-it-py` (CommonMark plus
tables), HTML through `beautifulsoup4` (lxml's parser, installed with python-docx anyway),
PDF through `pypdf` (its outline gives the headings), DOCX through `python-docx` (the
"Heading N" paragraph styles), CSV FAQs through the standard `csv` module. Plain text has no
library to ask: its headings are Setext-style underlines, `#` lines, or short lines standing
alone before a paragraph.

A reader never interprets markup as instructions: the text is extracted, everything else
(scripts, styles, links' targets) is dropped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from coach.knowledge.analysis import fold

MAX_FILE_BYTES: Final = 5 * 1024 * 1024
"""Larger files are skipped (reported by the linter): a knowledge article is not a manual."""


@dataclass
class Section:
    """A heading and the text under it (up to the next heading of any level)."""

    title: str | None
    """The heading; None for text before the first heading."""
    level: int
    anchor: str
    text: str


@dataclass
class Document:
    """What a reader made of one file."""

    title: str
    format: str
    sections: list[Section] = field(default_factory=list)
    has_headings: bool = False


class ReadError(ValueError):
    """A file could not be read as its format."""


def slug(text: str, limit: int = 60) -> str:
    """An anchor-safe slug ("¿Cómo pago?" -> "como-pago")."""
    s = re.sub(r"[^a-z0-9]+", "-", fold(text).replace("ñ", "n")).strip("-")
    return s[:limit].rstrip("-") or "s"


class _Builder:
    """Collects sections with unique anchors."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._anchors: set[str] = set()
        self._current = Section(None, 0, "top", "")
        self._parts: list[str] = []

    def heading(self, title: str, level: int, anchor: str | None = None) -> None:
        self._flush()
        base = slug(anchor or title)
        unique, n = base, 2
        while unique in self._anchors:
            unique, n = f"{base}-{n}", n + 1
        self._anchors.add(unique)
        self._current = Section(title.strip(), level, unique, "")

    def text(self, text: str) -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", text).strip()
        if text:
            self._parts.append(text)

    def _flush(self) -> None:
        self._current.text = "\n".join(self._parts).strip()
        if self._current.text or self._current.title:
            self.sections.append(self._current)
        self._parts = []

    def done(self, title: str, fmt: str) -> Document:
        self._flush()
        has = any(s.title for s in self.sections)
        return Document(title, fmt, self.sections, has)


def _default_title(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem.split(".")[0]).strip().capitalize() or path.name


def read_markdown(path: Path, raw: bytes) -> Document:
    """Markdown: ATX/Setext headings; paragraphs, list items and table rows as lines."""
    from markdown_it import MarkdownIt  # noqa: PLC0415 - loaded with the first Markdown file

    tokens = MarkdownIt("commonmark").enable("table").parse(raw.decode("utf-8", "replace"))
    b = _Builder()
    doc_title: str | None = None
    row: list[str] = []
    in_heading = 0
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            in_heading = int(tok.tag[1])
        elif tok.type == "inline" and in_heading:
            title = _inline_text(tok)
            if in_heading == 1 and doc_title is None:
                doc_title = title
            b.heading(title, in_heading)
            in_heading = 0
        elif tok.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(_inline_text(tok))
        elif tok.type == "tr_close":
            b.text(" · ".join(c for c in row if c))
            row = []
        elif tok.type == "inline":
            b.text(_inline_text(tok))
        elif tok.type in ("fence", "code_block"):
            b.text(tok.content)
    return b.done(doc_title or _default_title(path), "markdown")


def _inline_text(tok: Any) -> str:
    """The visible text of an inline token (emphasis and link markup dropped)."""
    parts = [c.content for c in tok.children or () if c.type in ("text", "code_inline")]
    return " ".join(p for p in ("".join(parts),) if p) or str(tok.content)


_BLOCKS: Final = ("p", "li", "td", "th", "dt", "dd", "pre", "blockquote", "figcaption")
_HEADINGS: Final = ("h1", "h2", "h3", "h4", "h5", "h6")


def read_html(path: Path, raw: bytes) -> Document:
    """HTML: h1-h6 (their `id` kept as the anchor); block elements as lines."""
    from bs4 import BeautifulSoup  # noqa: PLC0415

    soup = BeautifulSoup(raw, "lxml")
    for junk in soup(["script", "style", "noscript", "template", "nav", "iframe", "svg"]):
        junk.decompose()
    b = _Builder()
    first_h1: str | None = None
    for el in soup.find_all([*_HEADINGS, *_BLOCKS]):
        if el.name in _HEADINGS:
            text = el.get_text(" ", strip=True)
            if not text:
                continue
            if el.name == "h1" and first_h1 is None:
                first_h1 = text
            anchor = el.get("id")
            b.heading(text, int(el.name[1]), anchor if isinstance(anchor, str) else None)
        elif el.find_parent(_BLOCKS) is None:  # nested blocks are in their parent's text
            b.text(el.get_text(" ", strip=True))
    title_tag = soup.title.get_text(strip=True) if soup.title else ""
    return b.done(first_h1 or title_tag or _default_title(path), "html")


def read_docx(path: Path, raw: bytes) -> Document:
    """DOCX: paragraphs styled "Title"/"Heading N" are headings; others are text."""
    import docx  # noqa: PLC0415

    try:
        document = docx.Document(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds on a bad file
        raise ReadError(f"not a DOCX file ({type(exc).__name__})") from None
    b = _Builder()
    doc_title = (document.core_properties.title or "").strip() or None
    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = para.text.strip()
        if not text:
            continue
        level = _docx_level(style)
        if level is not None:
            if doc_title is None and level <= 1:
                doc_title = text
            b.heading(text, level)
        else:
            b.text(text)
    for table in document.tables:
        for tr in table.rows:
            b.text(" · ".join(c.text.strip() for c in tr.cells if c.text.strip()))
    return b.done(doc_title or _default_title(path), "docx")


def _docx_level(style: str) -> int | None:
    if style == "Title":
        return 1
    m = re.match(r"^Heading (\d)$", style)
    return int(m[1]) if m else None


def read_pdf(path: Path, raw: bytes) -> Document:
    """PDF: the outline (bookmarks) gives the headings; the page text is cut at each title."""
    from pypdf import PdfReader  # noqa: PLC0415
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    try:
        reader = PdfReader(io.BytesIO(raw))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        outline = list(_outline(reader, reader.outline, 1))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"not a readable PDF ({exc})") from None
    if not outline:
        doc = read_text(path, text.encode())
        doc.format = "pdf"
        doc.title = meta_title.strip() or doc.title
        return doc
    b = _Builder()
    pos = 0
    flat = re.sub(r"\s+", " ", text)
    for i, (title, level) in enumerate(outline):
        at = flat.find(title, pos)
        if at < 0:
            continue
        if i == 0 and at > pos:
            b.text(flat[pos:at])
        b.heading(title, level)
        pos = at + len(title)
        nxt = [flat.find(t, pos) for t, _ in outline[i + 1 :]]
        end = min((n for n in nxt if n >= 0), default=len(flat))
        b.text(flat[pos:end])
        pos = end
    return b.done(meta_title.strip() or outline[0][0], "pdf")


def _outline(reader: Any, items: Any, level: int) -> Iterator[tuple[str, int]]:
    for item in items:
        if isinstance(item, list):
            yield from _outline(reader, item, level + 1)
        elif getattr(item, "title", None):
            yield str(item.title).strip(), level


_UNDERLINE: Final = re.compile(r"^(=+|-+)\s*$")


def read_text(path: Path, raw: bytes) -> Document:
    """Plain text: `#` lines, underlined lines and short lone lines before a paragraph."""
    lines = raw.decode("utf-8", "replace").splitlines()
    b = _Builder()
    doc_title: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        prev_blank = i == 0 or not lines[i - 1].strip()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            title, i = line.lstrip("#").strip(), i + 1
        elif line and _UNDERLINE.match(nxt) and not _UNDERLINE.match(line):
            level = 1 if nxt.startswith("=") else 2
            title, i = line, i + 2
        elif line and prev_blank and nxt and _looks_like_heading(line):
            level, title, i = 2, line, i + 1
        else:
            b.text(line)
            i += 1
            continue
        if level == 1 and doc_title is None:
            doc_title = title
        b.heading(title, level)
    return b.done(doc_title or _default_title(path), "text")


def _looks_like_heading(line: str) -> bool:
    return len(line) <= 90 and (line.endswith("?") or not line.endswith((".", ",", ";", ":")))


_Q_COLS: Final = ("question", "pregunta", "q")
_A_COLS: Final = ("answer", "respuesta", "a")


def read_csv(path: Path, raw: bytes) -> Document:
    """CSV FAQ: a `question` and an `answer` column (or pregunta/respuesta); one row each."""
    text = raw.decode("utf-8-sig", "replace")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = [fold(h).strip() for h in next(rows, [])]
    q = next((header.index(c) for c in _Q_COLS if c in header), None)
    a = next((header.index(c) for c in _A_COLS if c in header), None)
    if q is None or a is None:
        raise ReadError("a CSV FAQ needs a 'question' and an 'answer' column")
    b = _Builder()
    for row in rows:
        if len(row) <= max(q, a) or not row[q].strip():
            continue
        b.heading(row[q].strip(), 2)
        b.text(row[a])
    return b.done(_default_title(path), "csv")


READERS: Final[dict[str, Callable[[Path, bytes], Document]]] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".txt": read_text,
    ".csv": read_csv,
}
"""File suffix -> reader; other files in KB_DIR are ignored."""


def read(path: Path) -> Document:
    """Read one file with the reader its suffix names; raises ReadError or OSError."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ReadError(f"unsupported format {path.suffix!r}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ReadError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB ({size} bytes)")
    return reader(path, path.read_bytes())
