"""A model of the fleet a release queue acts on, for the release tests.

:class:`World` is the state the queue reads (``world.state``) and the place every action runs
in: each start and end is recorded, and every bound of the release is checked against the
model *at each start*, independently of the queue's own accounting:

- no key runs twice at once;
- no more than ``max_in_flight`` actions run;
- the units out of service (the world's own ``out`` plus the ``takes_out`` of every action
  running) never exceed the budget (``budget_units``, or ``budget_share`` of the capacity
  rounded up), when an action that takes units out starts;
- no more than ``batch`` starts within any ``interval`` (half-open window, as the queue's,
  to a nanosecond);
- nothing starts while the world says the queue is paused, no removal while health is past
  ``halt_above``, and no action computed from an older version than the world's (unless a
  test's revalidation replanned it).
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from resilient.release import ReleaseOptions, ReleaseQueue, ReleaseState

_EDGE = 1e-9


class Boom(Exception):
    """The error a failing action raises."""


@dataclass
class Start:
    time: float
    key: str
    takes_out: int
    restores: bool
    based_on: int


@dataclass
class World:
    clock: VirtualClock
    options: ReleaseOptions
    capacity: int = 100
    version: int = 1
    out: int = 0
    unhealthy: float = 0.0
    paused: bool = False
    """Set by tests that pause the queue: a start while set is a violation."""
    starts: list[Start] = field(default_factory=list)
    ends: list[tuple[float, str]] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    """Key -> takes_out of the actions running now."""
    peak_in_flight: int = 0
    peak_units: int = 0
    reads: int = 0
    violations: list[str] = field(default_factory=list)

    def state(self) -> ReleaseState:
        self.reads += 1
        return ReleaseState(self.version, self.capacity, self.out, self.unhealthy)

    def limit(self) -> float:
        share = math.ceil(round(self.options.budget_share * self.capacity, 9))
        return min(self.options.budget_units, share)

    def action(
        self,
        key: str,
        *,
        takes_out: int = 0,
        restores: bool = False,
        based_on: int | None = None,
        seconds: float = 0.0,
        fail: int = 0,
        result: object = None,
    ) -> Callable[[], Awaitable[Any]]:
        """An action that checks the bounds when it starts, runs ``seconds`` on the clock,
        fails (raises :class:`Boom`) its first ``fail`` runs, then returns ``result``."""
        runs = 0
        based = self.version if based_on is None else based_on

        async def run() -> Any:
            nonlocal runs
            runs += 1
            self._started(key, takes_out, restores, based)
            try:
                await self.clock.sleep(seconds)
                if runs <= fail:
                    raise Boom(f"{key} failed run {runs}")
                return result
            finally:
                self._ended(key)

        return run

    def _started(self, key: str, takes_out: int, restores: bool, based_on: int) -> None:
        now = self.clock.monotonic()
        options = self.options
        if key in self.running:
            self.violations.append(f"{key} started twice at once at {now}")
        if self.paused:
            self.violations.append(f"{key} started at {now} while paused")
        if based_on < self.version:
            self.violations.append(f"{key} started at {now} from version {based_on}")
        if not restores and takes_out and self.unhealthy > options.halt_above:
            self.violations.append(f"{key} started at {now} while halted")
        self.running[key] = takes_out
        self.peak_in_flight = max(self.peak_in_flight, len(self.running))
        if len(self.running) > options.max_in_flight:
            self.violations.append(f"{len(self.running)} in flight at {now}")
        units = self.out + sum(self.running.values())
        if takes_out:
            self.peak_units = max(self.peak_units, units)
            if units > self.limit():
                self.violations.append(f"{units} units out at {now}, budget {self.limit()}")
        # Starts in (now - interval, now]; one within a nanosecond of the edge counts as out
        # (64.1 - 1.0 is 63.09999999999999 in binary: the start at 63.1 is on the edge).
        times = [start.time for start in self.starts]
        edge = now - options.interval + _EDGE
        window = bisect.bisect_right(times, now) - bisect.bisect_right(times, edge)
        if window + 1 > options.batch:
            self.violations.append(f"{window + 1} starts within an interval ending at {now}")
        self.starts.append(Start(now, key, takes_out, restores, based_on))

    def _ended(self, key: str) -> None:
        self.running.pop(key, None)
        self.ends.append((self.clock.monotonic(), key))


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def recorded() -> tuple[EventBus, EventRecorder]:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder


def make_queue(
    world: World,
    *,
    revalidate: Any = None,
    events: EventBus | None = None,
) -> ReleaseQueue:
    return ReleaseQueue(
        world.state,
        world.options,
        revalidate=revalidate,
        clock=world.clock,
        events=events or quiet(),
    )


def names(recorder: EventRecorder) -> list[str]:
    return [event.name for event in recorder.events]


def no_tasks_left(*besides: asyncio.Task[Any] | None) -> bool:
    """True when no task but the current one (and ``besides``) is alive."""
    current = asyncio.current_task()
    alive = {
        task
        for task in asyncio.all_tasks()
        if task is not current and task not in besides and not task.done()
    }
    alive = {task for task in alive if task.get_name() != "VirtualClock.autojump"}
    return not alive


async def settle(rounds: int = 16) -> None:
    """Let every task that can run, run, without moving virtual time: an autojumping clock
    jumps when the loop is idle, or after 64 busy rounds, so stay well under that."""
    for _ in range(rounds):
        await asyncio.sleep(0)


FAST = ReleaseOptions(batch=100, interval=1.0, max_in_flight=100, ramp_start=100)
"""Options that do not throttle a small test."""


def world(options: ReleaseOptions = FAST, **state: Any) -> World:
    return World(VirtualClock(autojump=True), options, **state)


def done_keys(world: World) -> list[str]:
    return [start.key for start in world.starts]


async def noop() -> None:
    return None
