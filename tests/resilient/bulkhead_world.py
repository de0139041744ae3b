"""What the bulkhead tests share: a dependency whose latency and faults a test sets, that
checks the bulkhead's bound at every call, and an open-loop load."""

from __future__ import annotations

import asyncio
from collections import Counter

from resilient.bulkhead import Bulkhead
from resilient.clock import VirtualClock
from resilient.events import EventBus


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


class Dependency:
    """A dependency that takes ``latency`` seconds (virtual), raises ``fault`` when set, and
    records, at every call's start, whether the bulkhead let more calls in than its limit."""

    def __init__(self, clock: VirtualClock, latency: float = 0.01) -> None:
        self.clock = clock
        self.latency = latency
        self.fault: BaseException | None = None
        self.in_flight = 0
        self.peak = 0
        self.calls = 0
        self.over_limit: list[tuple[int, int]] = []
        self.bulkhead: Bulkhead | None = None

    async def __call__(self) -> str:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.bulkhead is not None and self.in_flight > self.bulkhead.stats.limit:
            self.over_limit.append((self.in_flight, self.bulkhead.stats.limit))
        try:
            await self.clock.sleep(self.latency)
            if self.fault is not None:
                raise self.fault
            return "ok"
        finally:
            self.in_flight -= 1


class Load:
    """Open-loop callers: ``rate`` a second, each ``await bulkhead.call(dependency)``; every
    outcome counted by the name of what it raised (``"ok"`` when it returned)."""

    def __init__(self, bulkhead: Bulkhead, dependency: Dependency) -> None:
        self.bulkhead = bulkhead
        self.dependency = dependency
        self.outcomes: Counter[str] = Counter()
        self.waits: list[float] = []
        """Seconds each shed caller waited for its answer."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def one(self) -> None:
        clock = self.dependency.clock
        started = clock.monotonic()
        try:
            await self.bulkhead.call(self.dependency)
        except Exception as error:
            self.outcomes[type(error).__name__] += 1
            self.waits.append(clock.monotonic() - started)
        else:
            self.outcomes["ok"] += 1

    async def run(self, seconds: float, rate: float) -> None:
        clock = self.dependency.clock
        end = clock.monotonic() + seconds
        while clock.monotonic() < end:
            task = asyncio.get_running_loop().create_task(self.one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await clock.sleep(1 / rate)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
