"""The one backoff policy: growth, ceiling, jitter bounds, reset."""

from __future__ import annotations

import pytest

from coach.backoff import BUS, RECONNECT, Backoff

pytestmark = pytest.mark.unit


def test_delays_double_up_to_the_ceiling_within_the_jitter() -> None:
    policy = Backoff(initial=0.1, maximum=1.0, jitter=0.2)
    retry = policy.retry()
    delays = [retry.next() for _ in range(8)]
    for n, delay in enumerate(delays):
        base = min(1.0, 0.1 * 2**n)
        assert base * 0.8 <= delay <= base * 1.2
    assert max(delays) <= 1.2 and delays[-1] >= 0.8


def test_reset_starts_again_from_the_first_delay() -> None:
    retry = Backoff(initial=0.5, maximum=8.0, jitter=0).retry()
    assert [retry.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    retry.reset()
    assert retry.next() == 0.5


def test_capped_and_scaled_keep_the_shape() -> None:
    assert RECONNECT.capped(1.0).maximum == 1.0
    assert RECONNECT.capped(0.1).initial == 0.1
    fast = BUS.scaled(0.01)
    assert fast.initial == pytest.approx(BUS.initial / 100) and fast.jitter == BUS.jitter


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0, "maximum": 1},
        {"initial": 2, "maximum": 1},
        {"initial": 1, "maximum": 2, "factor": 0.5},
        {"initial": 1, "maximum": 2, "jitter": 1.0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)
