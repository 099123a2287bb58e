"""How far behind a consumer group is, in seconds, and an alarm before trimming would hurt it.

The all-events stream is trimmed by length and by time (`BusConfig.events_retention_s`) and
trimming ignores consumer groups: an entry a lagging worker has not read yet, or read and not
acknowledged, is deleted all the same. So every group consumer (the orchestrator, the archive)
runs a `LagMonitor`: it measures the age of the oldest entry the group has not finished, from
the entry's id (ids are millisecond timestamps), exports it as Prometheus gauges and alarms (a
warning log and a flag in `/health`) once it passes `lag_alarm_fraction` of the time bound.

The oldest unfinished entry is the older of the group's oldest pending entry (XPENDING's
summary) and the first entry after its last-delivered id (not read yet). A group that has
finished everything lags 0 s, however old the stream's last entry is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from coach.bus import Bus
from coach.errors import BusError
from coach.events import parse_id

log = logging.getLogger("coach.lag")

DEFAULT_INTERVAL_S = 10.0
"""How often a monitor measures (three Redis commands per group)."""


@dataclass(frozen=True)
class GroupLag:
    """One measurement of a consumer group on a stream."""

    group: str
    seconds: float
    """Age of the oldest entry the group has not finished (pending or not yet delivered)."""
    pending: int
    """Entries delivered to a consumer and not acknowledged."""
    entries: int | None
    """Entries not yet delivered (XINFO GROUPS `lag`); None when Redis cannot tell (after
    deletions in the stream)."""


def id_ms(entry_id: str) -> int:
    """The millisecond timestamp of a stream id."""
    return parse_id(entry_id)[0]


async def measure(
    bus: Bus, group: str, stream: str | None = None, now_ms: int | None = None
) -> GroupLag:
    """Measure `group` on `stream` (default: the all-events stream); BusError if no such group."""
    key = stream or bus.events_key
    infos: list[dict[str, Any]] = await bus._guard(bus.redis.xinfo_groups(key))
    info = next((g for g in infos if str(g.get("name")) == group), None)
    if info is None:
        raise BusError(f"no consumer group {group!r} on {key}")
    oldest: list[int] = []
    pending = int(info.get("pending") or 0)
    if pending:
        summary = await bus._guard(bus.redis.xpending(key, group))
        if summary.get("min"):
            oldest.append(id_ms(str(summary["min"])))
    last = str(info.get("last-delivered-id") or "0-0")
    after = await bus._guard(bus.redis.xrange(key, f"({last}", "+", 1))
    if after:
        oldest.append(id_ms(after[0][0]))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    seconds = max(0, now - min(oldest)) / 1000 if oldest else 0.0
    undelivered = info.get("lag")
    return GroupLag(group, seconds, pending, None if undelivered is None else int(undelivered))


@dataclass(frozen=True)
class _Gauges:
    seconds: Gauge
    pending: Gauge
    alarm: Gauge


_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, _Gauges] = weakref.WeakKeyDictionary()


def _gauges(registry: CollectorRegistry) -> _Gauges:
    found = _GAUGES.get(registry)
    if found is None:
        found = _Gauges(
            Gauge(
                "coach_bus_group_lag_seconds",
                "Age of the oldest bus entry a consumer group has not finished",
                ["group"],
                registry=registry,
            ),
            Gauge(
                "coach_bus_group_pending",
                "Bus entries delivered to a consumer group and not acknowledged",
                ["group"],
                registry=registry,
            ),
            Gauge(
                "coach_bus_group_lag_alarm",
                "1 while a consumer group lags more than BUS_LAG_ALARM_FRACTION of the time bound",
                ["group"],
                registry=registry,
            ),
        )
        _GAUGES[registry] = found
    return found


class LagMonitor:
    """Measures one group every `interval_s`, exports gauges, alarms (module docstring)."""

    def __init__(
        self,
        bus: Bus,
        group: str,
        *,
        stream: str | None = None,
        registry: CollectorRegistry | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.group = group
        self.stream = stream
        self.interval_s = interval_s
        self.clock = clock
        self.limit_s = bus.config.events_retention_s * bus.config.lag_alarm_fraction
        """Lag above which the alarm is raised."""
        self.gauges = _gauges(registry if registry is not None else REGISTRY)
        self.last: GroupLag | None = None
        self.alarm = False
        self.error = ""

    async def check(self) -> GroupLag | None:
        """Measure once, update gauges and alarm; None (and `error` set) if Redis failed."""
        try:
            lag = await measure(self.bus, self.group, self.stream, int(self.clock() * 1000))
        except BusError as exc:
            self.error = str(exc)
            return None
        self.error = ""
        self.last = lag
        self.gauges.seconds.labels(self.group).set(lag.seconds)
        self.gauges.pending.labels(self.group).set(lag.pending)
        alarm = lag.seconds > self.limit_s
        if alarm and not self.alarm:
            log.warning(
                "consumer group lags near the bus's time bound: entries may be trimmed unread",
                extra={
                    "group": self.group,
                    "lagSeconds": round(lag.seconds, 1),
                    "alarmAboveSeconds": self.limit_s,
                    "retentionSeconds": self.bus.config.events_retention_s,
                },
            )
        elif self.alarm and not alarm:
            log.info(
                "consumer group caught up",
                extra={"group": self.group, "lagSeconds": round(lag.seconds, 1)},
            )
        self.alarm = alarm
        self.gauges.alarm.labels(self.group).set(1 if alarm else 0)
        return lag

    async def run(self, stop: asyncio.Event) -> None:
        """Check every `interval_s` until `stop` is set (run it as a tracked task)."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def health(self) -> dict[str, Any]:
        """What /health shows: the group's lag, its alarm flag and the alarm threshold."""
        return {
            "group": self.group,
            "lagSeconds": None if self.last is None else round(self.last.seconds, 1),
            "pending": None if self.last is None else self.last.pending,
            "alarm": self.alarm,
            "alarmAboveSeconds": self.limit_s,
            **({"error": self.error} if self.error else {}),
        }
