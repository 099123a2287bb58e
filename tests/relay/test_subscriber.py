"""The per-client queue and its overflow policy."""

from __future__ import annotations

import pytest

from relay.auth import Principal
from relay.subscriber import Message, Subscriber, SubState

pytestmark = pytest.mark.unit


def msg(n: int, type_: str = "final", call: str = "c") -> Message:
    return Message((1000, n), f"1000-{n}", call, type_, "{}")


def test_full_queue_sheds_partials_first_then_cuts_off() -> None:
    drops: list[str] = []
    sub = Subscriber(Principal("service"), "c", limit=4, on_drop=drops.append)
    sub.go_live()
    for n, t in enumerate(["partial", "final", "partial", "final"]):
        sub.push(msg(n, t))
    sub.push(msg(4))  # full: the two partials go, the final is queued
    assert [m.id for m in sub.queue] == ["1000-1", "1000-3", "1000-4"]
    assert drops == ["partial", "partial"] and not sub.cut_off.is_set()
    sub.push(msg(5))
    sub.push(msg(6))  # full of finals: nothing left to shed
    assert sub.overflowed and sub.cut_off.is_set()
    sub.push(msg(7))
    assert len(sub.queue) == 4  # nothing more is queued after the cut


def test_live_events_already_replayed_are_skipped() -> None:
    sub = Subscriber(Principal("service"), "*", limit=100)
    for n in range(6):
        sub.push(msg(n, call="a" if n % 2 else "b"))
    sub.call_floor = {"a": (1000, 3)}  # replay covered a up to 1000-3
    sub.go_live()
    assert [m.id for m in sub.queue] == ["1000-0", "1000-2", "1000-4", "1000-5"]
    assert sub.state is SubState.LIVE and sub.wakeup.is_set()
    sub.push(msg(1, call="a"))  # a late duplicate from the hub
    assert len(sub.queue) == 4
    assert [m.id for m in sub.take(3)] == ["1000-0", "1000-2", "1000-4"]
    sub.take(3)
    assert not sub.wakeup.is_set()


def test_replaying_subscriber_queues_without_waking_the_writer() -> None:
    sub = Subscriber(Principal("service"), "c", limit=10)
    sub.push(msg(1))
    assert not sub.wakeup.is_set() and len(sub.queue) == 1
