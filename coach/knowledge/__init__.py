"""The knowledge base: documents from a folder, split into passages, searched with BM25.

`KnowledgeBase(Path(KB_DIR)).refresh()` then `.search(question)`; the orchestrator turns hits
into knowledge cards, the relay serves them to the console's search box.
"""

from coach.knowledge.base import KnowledgeBase, SourceDoc
from coach.knowledge.index import Hit, Passage

__all__ = ["Hit", "KnowledgeBase", "Passage", "SourceDoc"]
