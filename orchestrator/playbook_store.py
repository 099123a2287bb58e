"""The playbooks of a folder (`<lang>.yaml`), loaded at start and re-read when a file changes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from orchestrator.playbook import Playbook, PlaybookError
from orchestrator.playbook_schema import parse_playbook

log = logging.getLogger(__name__)

RELOAD_CHECK_S: Final = 2.0
"""How often the store looks at file modification times."""


@dataclass
class PlaybookStore:
    """The playbooks of a folder (`<lang>.yaml`), re-read when a file changes.

    A file that fails to parse is logged and the previous version of that language kept, so
    a typo in production never switches coaching off.
    """

    folder: Path
    default_lang: str = "es"
    _books: dict[str, Playbook] = field(default_factory=dict)
    _mtimes: dict[Path, float] = field(default_factory=dict)
    _checked: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)

    def load(self) -> None:
        """Load every playbook now; raises PlaybookError if none is usable (start-up check)."""
        self.reload(force=True)
        if not self._books:
            raise PlaybookError(f"no usable playbook in {self.folder}: {self.errors}")
        if self.default_lang not in self._books:
            raise PlaybookError(f"no playbook for the default language {self.default_lang!r}")

    def reload(self, force: bool = False) -> bool:
        """Re-read changed files (at most every RELOAD_CHECK_S); whether anything changed."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_CHECK_S:
            return False
        self._checked = now
        changed = False
        for path in sorted(self.folder.glob("*.yaml")):
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if not force and self._mtimes.get(path) == mtime:
                continue
            self._mtimes[path] = mtime
            try:
                book = parse_playbook(path.read_text(encoding="utf-8"), str(path))
            except (PlaybookError, OSError, UnicodeDecodeError) as exc:
                self.errors[path.stem] = str(exc)
                log.error(
                    "playbook not loaded, keeping the previous one", extra={"error": str(exc)}
                )
                continue
            self.errors.pop(path.stem, None)
            self._books[book.lang] = book
            changed = True
            log.info("playbook loaded", extra={"lang": book.lang, "rules": len(book.rules)})
        return changed

    def get(self, lang: str | None) -> Playbook:
        """The playbook of a language ("es-MX" → "es"), or the default one."""
        self.reload()
        if lang:
            base = lang.lower().split("-")[0].split("_")[0]
            if base in self._books:
                return self._books[base]
        return self._books[self.default_lang]

    @property
    def languages(self) -> list[str]:
        """Loaded languages."""
        return sorted(self._books)
