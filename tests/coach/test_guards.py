"""Habits the whole tree keeps, checked so they stay kept (issue 14):
tasks only through coach.tasks, retry delays only from coach.backoff, no sleeps in tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SELF = "tests/coach/test_guards.py"
SERVICES = ("coach", "ari", "stt", "relay", "orchestrator", "archive", "retention", "second_pass")
TREE = (*SERVICES, "bench", "fakes", "testbed", "tests", "scripts", "demo")

TASK_CALL = re.compile(r"\b(create_task|ensure_future)\s*\(")
SLEEP_CALL = re.compile(r"\bsleep\s*\(")
# The shapes a hand-written backoff takes: doubling under a ceiling, a jitter factor, a
# delay/backoff variable seeded with a number.
RETRY_LITERAL = re.compile(
    r"min\([^()\n]*\*\s*2\b|\*\s*2\s*,[^()\n]*\)|random\.uniform\(|"
    r"\b\w*(delay|backoff)\w*\s*=\s*[0-9.]+\s*$"
)


def _python_files(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        base = ROOT / top
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def _hits(pattern: re.Pattern[str], files: list[Path], allowed: set[str]) -> list[str]:
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_tasks_are_created_only_by_the_shared_helper() -> None:
    hits = _hits(TASK_CALL, _python_files(*TREE), {"coach/tasks.py", SELF})
    assert hits == [], "use coach.tasks.TaskSet.spawn / first_completed:\n" + "\n".join(hits)


def test_tests_never_sleep() -> None:
    hits = _hits(SLEEP_CALL, _python_files("tests"), {SELF})
    assert hits == [], "wait on an event, or use fakes.poll:\n" + "\n".join(hits)


def test_retry_delays_come_from_the_shared_backoff() -> None:
    hits = _hits(RETRY_LITERAL, _python_files(*SERVICES), {"coach/backoff.py"})
    assert hits == [], "take delays from coach.backoff:\n" + "\n".join(hits)


def test_the_guards_see_what_they_look_for() -> None:
    assert TASK_CALL.search("t = asyncio.create_task(run())")
    assert TASK_CALL.search("asyncio.ensure_future(coro)")
    assert SLEEP_CALL.search("await asyncio.sleep(0.1)") and SLEEP_CALL.search("time.sleep(1)")
    for line in (
        "delay = min(self.backoff_max, delay * 2)",
        "backoff = min(backoff * 2, 2.0)",
        "wait = step * random.uniform(0.8, 1.2)",
        "delay = 0.2",
        "backoff = 0.05",
    ):
        assert RETRY_LITERAL.search(line), line
    assert not RETRY_LITERAL.search("delay = retry.next()")


def test_benchmarks_and_services_do_not_import_the_tests() -> None:
    pattern = re.compile(r"^\s*(from tests[. ]|import tests\b)")
    hits = _hits(pattern, _python_files(*SERVICES, "bench", "fakes", "testbed"), set())
    assert hits == [], "shared test support lives in fakes/ or testbed/:\n" + "\n".join(hits)
