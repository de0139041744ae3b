"""What the failover tests share: scripted providers in virtual time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder


@dataclass
class Scripted:
    """A provider whose answers follow ``behaviour(n)`` for its n-th call: a latency in
    seconds (then it answers its name), or an exception to raise (after ``fail_after`` s)."""

    name: str
    clock: VirtualClock
    behaviour: Callable[[int], float | BaseException] = lambda n: 0.01
    fail_after: float = 0.0
    calls: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    cancelled: int = 0
    times: list[float] = field(default_factory=list)

    async def __call__(self, request: str) -> str:
        self.calls += 1
        self.times.append(self.clock.monotonic())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        outcome = self.behaviour(self.calls)
        try:
            if isinstance(outcome, BaseException):
                await self.clock.sleep(self.fail_after)
                raise outcome
            await self.clock.sleep(outcome)
        except BaseException as error:
            if type(error).__name__ == "CancelledError":
                self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        return f"{self.name}:{request}"


def recorded() -> tuple[EventBus, EventRecorder]:
    bus = EventBus()
    recorder = EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder
