"""The polling helper returns the first truthy value and names what it waited for on timeout."""

from __future__ import annotations

import pytest

from fakes.poll import until, until_async, until_sync

pytestmark = pytest.mark.unit


async def test_until_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", 7, 8])
    assert await until(lambda: next(values), 5, interval=0) == 7


async def test_until_async_awaits_its_probe() -> None:
    seen: list[int] = []

    async def probe() -> list[int]:
        seen.append(1)
        return seen if len(seen) >= 3 else []

    assert len(await until_async(probe, 5, interval=0)) == 3


def test_a_timeout_names_what_was_awaited() -> None:
    with pytest.raises(TimeoutError, match="the agent's phone rings"):
        until_sync(lambda: False, 0, what="the agent's phone rings")
