"""Keeping a knowledge base current: open it from settings, re-index when files change.

The build runs in a worker thread (`asyncio.to_thread`): reading PDFs and embedding passages
takes seconds and must not stall the event loop that publishes cards. Searches keep using the
previous index until the new one replaces it in one assignment.
"""

from __future__ import annotations

import asyncio
import logging

from coach.knowledge.base import KnowledgeBase
from coach.knowledge.semantic import load
from coach.knowledge.settings import KBSettings

log = logging.getLogger(__name__)


def open_kb(settings: KBSettings) -> KnowledgeBase | None:
    """The knowledge base KB_DIR names (not yet indexed), or None when KB_DIR is unset."""
    if settings.dir is None:
        return None
    return KnowledgeBase(settings.dir, embedder=load(settings.semantic, settings.cache_dir))


async def keep_indexed(kb: KnowledgeBase, poll_s: float) -> None:
    """Index now, then every `poll_s` re-index if a file changed; runs until cancelled.
    A failed round is logged and retried at the next poll (the previous index stays)."""
    while True:
        try:
            await asyncio.to_thread(kb.refresh)
        except Exception:  # a bad file or a bug must not stop the polling
            log.exception("knowledge base not re-indexed", extra={"kbDir": str(kb.root)})
        await asyncio.sleep(poll_s)
