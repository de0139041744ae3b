"""The primary limiter the guard tests drive, and how they build a guard."""

from __future__ import annotations

import asyncio
from typing import Any

from resilient.breaker import BreakerState
from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.ratelimit import (
    Decision,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    LocalLimiter,
    Rate,
)

GLOBAL = Rate(100, 1.0, burst=3)
SHARE = GLOBAL.per_share(4)  # 25/s, no burst


class RedisErrors:
    """Errors named like redis-py's: its ConnectionError is no OSError (name it in
    ``GuardOptions.unavailable`` to have it reported as unavailability)."""

    class ConnectionError(Exception):
        pass


UNSET: Any = object()


def state_of(guard: FailOpenGuard) -> BreakerState:
    """The guard's breaker state, read fresh (a call, so type checkers do not narrow it)."""
    return guard.breaker.state


class FakePrimary:
    """A primary limiter whose behaviour the test switches: healthy, slow, raising, garbage."""

    def __init__(self, clock: VirtualClock, rate: Rate = GLOBAL) -> None:
        self.clock = clock
        self.healthy = LocalLimiter(rate, clock=clock)
        self.calls = 0
        self.delay = 0.0
        self.error: BaseException | None = None
        self.answer: Any = UNSET
        self.hang: asyncio.Event | None = None
        self.cancelled = 0

    def rate_for(self, key: str) -> Rate:
        return self.healthy.rate_for(key)

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        self.calls += 1
        try:
            if self.hang is not None:
                await self.hang.wait()
            if self.delay:
                await self.clock.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        if self.answer is not UNSET:
            answer: Decision = self.answer
            return answer
        return self.healthy.decide_now(key, cost=cost, rate=rate)


def make_guard(
    clock: VirtualClock,
    primary: FakePrimary,
    bus: EventBus | None = None,
    **options: Any,
) -> FailOpenGuard:
    events = bus or EventBus(log_when_unobserved=False)
    mode = options.get("mode", GuardMode.FALLBACK)
    return FailOpenGuard(
        primary,
        GuardOptions(**options),
        fallback=LocalLimiter(SHARE, clock=clock) if mode is GuardMode.FALLBACK else None,
        clock=clock,
        events=events,
    )
