"""What the retry tests share: a dependency that fails as told, and how they build policies."""

from __future__ import annotations

import random
from typing import Any

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from resilient.retry import RetryBudget, RetryBudgetOptions, RetryOptions, RetryPolicy

EXACT = RetryOptions(backoff_initial=1.0, backoff_max=1.0, jitter=0.0)
"""Every wait exactly 1 s: a schedule a test can write down."""


def recorded() -> tuple[EventBus, EventRecorder]:
    bus = EventBus(log_when_unobserved=False)
    recorder = EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder


class Dependency:
    """An ``async`` callable that raises ``errors`` in turn (the last one again once they run
    out), then answers ``"ok"`` when told to, recording when each attempt started."""

    def __init__(self, clock: VirtualClock, *errors: BaseException, takes: float = 0.0) -> None:
        self.clock = clock
        self.errors = list(errors)
        self.takes = takes
        self.starts: list[float] = []
        self.succeed_after: int | None = None

    @property
    def attempts(self) -> int:
        return len(self.starts)

    async def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.starts.append(self.clock.monotonic())
        if self.takes:
            await self.clock.sleep(self.takes)
        if self.succeed_after is not None and self.attempts > self.succeed_after:
            return "ok"
        if not self.errors:
            return "ok"
        return self._raise()

    def _raise(self) -> str:
        error = self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]
        raise error


def policy(
    clock: VirtualClock,
    options: RetryOptions = EXACT,
    *,
    budget: RetryBudget | None = None,
    events: EventBus | None = None,
    seed: int = 1,
) -> RetryPolicy:
    return RetryPolicy(
        "provider",
        options,
        budget=budget,
        random=random.Random(seed),
        clock=clock,
        events=events if events is not None else EventBus(log_when_unobserved=False),
    )


def budget(clock: VirtualClock, events: EventBus | None = None, **options: Any) -> RetryBudget:
    return RetryBudget(
        RetryBudgetOptions(**options),
        clock=clock,
        events=events if events is not None else EventBus(log_when_unobserved=False),
    )
