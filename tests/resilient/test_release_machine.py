"""A Hypothesis state machine against the release queue: random interleavings of submits
(random keys, units, versions, restores, durations, failures), pause and resume, changes of the
world (version, capacity, units out of service, health), and time passing.

After every step, and at every start (the fleet model of ``release_world.py``): no key runs
twice at once, never more than ``max_in_flight`` run, the budget is never exceeded, never more
than ``batch`` starts per ``interval``, nothing starts while paused, no removal while halted,
nothing computed from an older version than the world's. The books always balance (every
ticket is waiting, running, or ended once), and once drained or closed every ticket has ended,
exactly once, and no task is left.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient.clock import VirtualClock
from resilient.release import (
    Done,
    Dropped,
    Failed,
    ReleaseOptions,
    ReleaseQueue,
    Superseded,
    Ticket,
)
from tests.resilient.release_world import World, recorded

OPTIONS = ReleaseOptions(
    batch=3,
    interval=1.0,
    max_in_flight=2,
    ramp_start=1,
    budget_share=0.3,
    slow_above=0.3,
    slow_factor=4.0,
    halt_above=0.6,
    max_age=20.0,
    max_attempts=3,
    backoff_initial=0.5,
    backoff_max=2.0,
    backoff_jitter=0.5,
)
KEYS = ("a", "b", "c", "d")


class ReleaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = VirtualClock()
        self.world = World(self.clock, OPTIONS, capacity=10)
        self.bus, self.recorder = recorded()
        self.queue = ReleaseQueue(self.world.state, OPTIONS, clock=self.clock, events=self.bus)
        self.tickets: list[Ticket[Any]] = []
        self.closed = False
        self.steps = 0

    def run(self, seconds: float = 0.0) -> None:
        self.steps += 1
        self.loop.run_until_complete(self.clock.run_for(seconds))

    # -- rules ---------------------------------------------------------------------------------

    @precondition(lambda self: not self.closed)
    @rule(
        key=st.sampled_from(KEYS),
        takes_out=st.integers(0, 3),
        lag=st.sampled_from((0, 0, 0, 1, 2)),
        restores=st.booleans(),
        seconds=st.sampled_from((0.0, 0.5, 1.0, 3.0, 3.0)),
        fail=st.sampled_from((0, 0, 0, 1, 5)),
    )
    def submit(
        self, key: str, takes_out: int, lag: int, restores: bool, seconds: float, fail: int
    ) -> None:
        takes_out = 0 if restores else takes_out
        based_on = self.world.version - lag
        run = self.world.action(
            key,
            takes_out=takes_out,
            restores=restores,
            based_on=based_on,
            seconds=seconds,
            fail=fail,
        )

        async def submit() -> None:
            ticket = self.queue.submit(
                key, run, based_on=based_on, takes_out=takes_out, restores=restores
            )
            self.tickets.append(ticket)

        self.loop.run_until_complete(submit())
        self.run()

    @precondition(lambda self: not self.closed)
    @rule()
    def pause(self) -> None:
        self.queue.pause("test")
        self.world.paused = True
        self.run()

    @precondition(lambda self: not self.closed)
    @rule()
    def resume(self) -> None:
        self.world.paused = False
        self.queue.resume()
        self.run()

    @rule()
    def new_version(self) -> None:
        self.world.version += 1
        self.run()

    @rule(capacity=st.integers(0, 20), out=st.integers(0, 20))
    def new_capacity(self, capacity: int, out: int) -> None:
        self.world.capacity = capacity
        self.world.out = min(out, capacity)
        self.run()

    @rule(unhealthy=st.sampled_from((0.0, 0.1, 0.35, 0.5, 0.9)))
    def new_health(self, unhealthy: float) -> None:
        self.world.unhealthy = unhealthy
        self.run()

    @rule(seconds=st.sampled_from((0.1, 0.5, 1.0, 2.5, 7.0)))
    def time_passes(self, seconds: float) -> None:
        self.run(seconds)

    @precondition(lambda self: not self.closed)
    @rule()
    def drain(self) -> None:
        """Let everything end: resumed, healthy, time passing (max_age ends what cannot)."""
        self.world.paused = False
        self.queue.resume()
        self.world.unhealthy = 0.0
        for _ in range(200):
            if not self.queue.queued and not self.queue.in_flight:
                break
            self.run(1.0)
        assert self.queue.queued == self.queue.in_flight == 0
        assert all(ticket.done for ticket in self.tickets)

    @precondition(lambda self: not self.closed and self.steps >= 20)
    @rule(cancel=st.booleans())
    def close(self, cancel: bool) -> None:
        waiting = {ticket for ticket in self.tickets if ticket.status in _WAITING}
        closing = self.loop.create_task(self.queue.close(cancel=cancel))
        for _ in range(100):  # running actions end as time passes (close waits for them)
            if closing.done():
                break
            self.run(1.0)
        left = closing.result()
        self.closed = True
        assert set(left) <= waiting
        assert all(ticket.outcome == Dropped("closed") for ticket in left)
        assert all(ticket.done for ticket in self.tickets)

    # -- what always holds ---------------------------------------------------------------------

    @invariant()
    def every_bound_held_at_every_start(self) -> None:
        assert self.world.violations == []

    @invariant()
    def the_books_balance(self) -> None:
        stats = self.queue.stats
        ended = stats.done + stats.failed + stats.superseded + stats.dropped
        assert stats.submitted == len(self.tickets)
        assert stats.submitted + stats.replanned == ended + self.queue.queued + self.queue.in_flight
        assert sum(1 for ticket in self.tickets if ticket.done) == ended - stats.replanned
        outcomes = [ticket.outcome for ticket in self.tickets if ticket.done]
        assert all(isinstance(o, Done | Failed | Superseded | Dropped) for o in outcomes)
        assert stats.done == sum(isinstance(o, Done) for o in outcomes)
        assert stats.failed == sum(isinstance(o, Failed) for o in outcomes)
        assert stats.dropped == sum(isinstance(o, Dropped) for o in outcomes)

    @invariant()
    def one_action_waits_and_one_runs_per_key_at_most(self) -> None:
        for key in KEYS:
            mine = [ticket for ticket in self.tickets if ticket.key == key]
            assert sum(ticket.status in _WAITING for ticket in mine) <= 1
            assert sum(ticket.status in ("starting", "running") for ticket in mine) <= 1

    def teardown(self) -> None:
        try:
            if not self.closed:
                self.loop.run_until_complete(self.queue.close(cancel=True))
                self.run()
            assert all(ticket.done for ticket in self.tickets)
            stats = self.queue.stats
            ended = stats.done + stats.failed + stats.superseded + stats.dropped
            assert stats.submitted + stats.replanned == ended
            tasks = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            assert [task.get_name() for task in tasks] == []
        finally:
            self.loop.close()


_WAITING = ("queued", "parked", "backoff")

ReleaseMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestReleaseMachine = ReleaseMachine.TestCase
