"""`python -m coach.knowledge lint DIR` | `search DIR QUESTION`: check or try a knowledge base."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from coach.knowledge.base import KnowledgeBase
from coach.knowledge.lint import lint, report
from coach.knowledge.semantic import load


def main(argv: list[str] | None = None) -> int:
    """Run the command; exit 1 when lint finds something, 2 on a bad folder."""
    parser = argparse.ArgumentParser(prog="python -m coach.knowledge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_lint = sub.add_parser("lint", help="report overlapping, overlong and heading-less passages")
    p_lint.add_argument("dir", type=Path)
    p_lint.add_argument("--quiet", action="store_true", help="no progress lines")
    p_search = sub.add_parser("search", help="print the best passages for a question")
    p_search.add_argument("dir", type=Path)
    p_search.add_argument("question")
    p_search.add_argument("--lang", default=None)
    p_search.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"{args.dir}: not a directory", file=sys.stderr)
        return 2
    # The linter needs words only; a search ranks as the services do (semantic when installed).
    kb = KnowledgeBase(args.dir, embedder=None if args.command == "lint" else load("auto"))
    if args.command == "lint":

        def progress(msg: str) -> None:
            if not args.quiet:
                print(msg, file=sys.stderr, flush=True)

        findings = lint(kb, progress)
        report(findings)
        return 1 if findings else 0
    kb.refresh()
    for hit in kb.search(args.question, k=args.k, lang=args.lang):
        p = hit.passage
        print(
            json.dumps(
                {"id": p.id, "score": hit.score, "section": p.section, "text": hit.text},
                ensure_ascii=False,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
