"""The pace of a release: the sliding window, the ramp, the in-flight bound and the budget,
with 1,000 actions released after a pause, and the arithmetic behind them.

The release is checked at every start by the fleet model (``release_world.py``): never more
than ``batch`` starts within an ``interval``, never more than ``max_in_flight`` running, the
budget never exceeded. Its makespan is compared with the best the policy allows, computed
from the options: in closed form where one constraint binds, and by an exact event-driven
model of the policy (first in line first, each start as early as every bound allows) where
they all do.
"""

from __future__ import annotations

import heapq
import math
import random

import pytest

from resilient.clock import VirtualClock
from resilient.release import Done, ReleaseOptions, ReleaseState
from resilient.release._pacing import Pacer, backoff, budget_limit
from tests.resilient.release_world import World, make_queue, recorded

ACTIONS = 1000


def best_makespan(
    options: ReleaseOptions, actions: list[tuple[int, float]], out: int, capacity: int
) -> float:
    """The earliest time the last of ``actions`` ((takes_out, seconds) each, in line order,
    released at time 0, all succeeding) can end under ``options``: an event-driven model of
    the policy, independent of the queue's code."""
    limit = min(options.budget_units, math.ceil(round(options.budget_share * capacity, 9)))
    allowance, successes = options.ramp_start, 0
    starts: list[float] = []
    running: list[tuple[float, int]] = []  # (end, takes_out), a heap
    units = 0
    now, index, last = 0.0, 0, 0.0
    while index < len(actions) or running:
        while running and running[0][0] <= now:  # ends first: they free room, grow the ramp
            end, takes_out = heapq.heappop(running)
            units -= takes_out
            last = max(last, end)
            successes += 1
            if successes >= allowance:
                allowance, successes = min(options.batch, allowance * 2), 0
        while index < len(actions):
            takes_out, seconds = actions[index]
            if len(running) >= options.max_in_flight:
                break
            if len(starts) >= allowance and starts[-allowance] + options.interval > now:
                break
            if takes_out and out + units + takes_out > limit:
                break
            heapq.heappush(running, (now + seconds, takes_out))
            units += takes_out
            starts.append(now)
            index += 1
        upcoming = [running[0][0]] if running else []
        if index < len(actions) and len(starts) >= allowance:
            upcoming.append(starts[-allowance] + options.interval)
        later = [time for time in upcoming if time > now]
        if not later:
            break
        now = min(later)
    return last


def rate_bound(options: ReleaseOptions, count: int, seconds: float) -> float:
    """A lower bound from the window alone: ``count`` starts, ``batch`` per ``interval``,
    the last one then runs ``seconds``."""
    return (count - 1) // options.batch * options.interval + seconds


async def release(
    options: ReleaseOptions,
    actions: list[tuple[int, float]],
    *,
    out: int = 0,
    capacity: int = 100,
    pause: float = 60.0,
) -> tuple[World, float]:
    """Queue ``actions`` during a pause of ``pause`` seconds, release them, and return the
    fleet model and the makespan from the resume to the last end."""
    fleet = World(VirtualClock(autojump=True), options, capacity=capacity, out=out)
    queue = make_queue(fleet)
    queue.pause("breaker open")
    fleet.paused = True
    tickets = [
        queue.submit(f"e{i}", fleet.action(f"e{i}", takes_out=units, seconds=seconds),
                     based_on=1, takes_out=units)
        for i, (units, seconds) in enumerate(actions)
    ]  # fmt: skip
    await fleet.clock.sleep(pause)
    assert fleet.starts == []
    fleet.paused = False
    queue.resume()
    await queue.drain()
    await queue.close()
    assert all(ticket.outcome == Done(None) for ticket in tickets)
    assert [start.key for start in fleet.starts] == [f"e{i}" for i in range(len(actions))]
    return fleet, max(time for time, _ in fleet.ends) - pause


async def test_a_thousand_actions_released_after_a_pause_keep_every_bound() -> None:
    """The incident's shape: a backlog built up behind a breaker is released. Every bound
    binds in turn: the ramp first, then the budget (10% of 100 units, 2 already out, actions
    take 0 to 2 units for 1.5 s), the window and the in-flight bound."""
    options = ReleaseOptions(
        batch=10, interval=1.0, max_in_flight=12, ramp_start=1, budget_share=0.10,
        max_age=math.inf,
    )  # fmt: skip
    draw = random.Random(9)
    actions = [(draw.choice((0, 1, 1, 2)), 1.5) for _ in range(ACTIONS)]
    fleet, makespan = await release(options, actions, out=2)
    assert fleet.violations == []
    assert fleet.peak_in_flight <= options.max_in_flight
    assert fleet.peak_units <= 10
    best = best_makespan(options, actions, out=2, capacity=100)
    assert best - 1e-9 <= makespan <= best * 1.05
    # The model's own floor: units times seconds over the room the budget leaves, and the
    # window's pace.
    unit_seconds = sum(units * seconds for units, seconds in actions)
    assert best >= max(unit_seconds / 8, rate_bound(options, ACTIONS, 1.5))


async def test_when_only_the_window_binds_the_makespan_is_within_5_percent_of_closed_form() -> None:
    """batch 10 per second, short actions, no budget, room in flight: the best the policy
    allows is one full batch each interval after a short ramp, at least
    ``(N - 1) // batch * interval + seconds``."""
    options = ReleaseOptions(batch=10, interval=1.0, max_in_flight=50, ramp_start=1)
    actions = [(0, 0.1)] * ACTIONS
    fleet, makespan = await release(options, actions)
    assert fleet.violations == []
    bound = rate_bound(options, ACTIONS, 0.1)
    assert bound == 99.1
    assert bound <= makespan <= bound * 1.05
    assert makespan == pytest.approx(best_makespan(options, actions, out=0, capacity=100))
    # the ramp: 1 start; its success (0.1 s later) allows 2, the next 2 successes 4, ...
    first = [start.time - 60.0 for start in fleet.starts[:8]]
    assert first == pytest.approx([0.0, 0.1, 1.0, 1.1, 1.1, 1.1, 2.0, 2.1])


async def test_when_the_budget_binds_it_is_never_exceeded_and_fully_used() -> None:
    options = ReleaseOptions(
        batch=100, interval=1.0, max_in_flight=100, ramp_start=100, budget_share=0.05,
        max_age=math.inf,
    )  # fmt: skip
    actions = [(1, 2.0)] * 200
    fleet, makespan = await release(options, actions, capacity=100)
    assert fleet.violations == []
    assert fleet.peak_units == 5
    assert makespan == pytest.approx(200 / 5 * 2.0)  # 5 at a time, 2 s each


async def test_when_the_in_flight_bound_binds_it_is_never_exceeded() -> None:
    options = ReleaseOptions(batch=100, interval=1.0, max_in_flight=7, ramp_start=100)
    actions = [(0, 3.0)] * 70
    fleet, makespan = await release(options, actions)
    assert fleet.violations == []
    assert fleet.peak_in_flight == 7
    assert makespan == pytest.approx(10 * 3.0)


# -- the arithmetic -----------------------------------------------------------------------------


def test_the_window_is_a_sliding_log_with_no_burst() -> None:
    pacer = Pacer(ReleaseOptions(batch=3, ramp_start=3))
    assert pacer.delay(0.0, 1.0) == 0.0
    for time in (0.0, 0.2, 0.5):
        pacer.record(time)
    assert pacer.delay(0.5, 1.0) == pytest.approx(0.5)  # the oldest of the 3 leaves at 1.0
    assert pacer.delay(0.99, 1.0) == pytest.approx(0.01)
    assert pacer.delay(1.0, 1.0) == 0.0  # (0.0, 1.0] holds 2: a start is allowed at 1.0
    assert pacer.delay(1.0, 10.0) == pytest.approx(9.0)  # slowed tenfold
    pacer.record(1.0)
    assert pacer.delay(1.0, 1.0) == pytest.approx(0.2)
    assert len(pacer.log) == 3  # only the last batch starts are kept


def test_the_ramp_doubles_after_as_many_successes_as_it_allows_and_halves_on_failure() -> None:
    pacer = Pacer(ReleaseOptions(batch=10, ramp_start=1))
    grew = []
    for _ in range(27):
        pacer.successes += 1
        if pacer.successes >= pacer.allowance:
            grew.append((pacer.succeeded(), pacer.allowance))
    # 1 success, then 2, 4, 8 (15 in all): 10; 10 more change nothing
    assert grew == [(True, 2), (True, 4), (True, 8), (True, 10), (False, 10)]
    assert pacer.successes == 2
    pacer.failed()
    assert (pacer.allowance, pacer.successes) == (5, 0)
    pacer.failed()
    pacer.failed()
    pacer.failed()
    assert pacer.allowance == 1
    pacer.failed()
    assert pacer.allowance == 1  # never below one
    pacer.successes = 1
    pacer.allowance = 7
    pacer.restart()
    assert (pacer.allowance, pacer.successes) == (1, 0)


def test_the_ramp_starts_where_the_options_say() -> None:
    pacer = Pacer(ReleaseOptions(batch=10, ramp_start=3))
    assert (pacer.allowance, pacer.batch, pacer.ramp_start, pacer.successes) == (3, 10, 3, 0)
    pacer.successes = 3
    assert pacer.succeeded() is True
    assert pacer.allowance == 6
    pacer.successes = 6
    assert pacer.succeeded() is True
    assert pacer.allowance == 10  # capped at batch


@pytest.mark.parametrize(
    ("share", "units", "capacity", "limit"),
    [
        (0.10, math.inf, 30, 3),  # not 4: 0.1 * 30 is 3.0000000000000004 in binary
        (0.10, math.inf, 8, 1),  # 0.8 rounds up, as Karpenter rounds
        (0.25, math.inf, 8, 2),
        (0.10, math.inf, 0, 0),
        (0.0, math.inf, 100, 0),
        (1.0, 2.0, 100, 2),
        (0.5, 7.0, 10, 5),
        (0.07, math.inf, 100, 7),
        (0.29, math.inf, 100, 29),
        (0.30000000001, math.inf, 10, 3),  # rounded to 9 decimals before rounding up
        (0.3000000001, math.inf, 10, 4),
    ],
)
def test_the_budget_is_the_smaller_of_units_and_the_share_rounded_up(
    share: float, units: float, capacity: int, limit: float
) -> None:
    options = ReleaseOptions(budget_share=share, budget_units=units)
    assert budget_limit(options, ReleaseState(1, capacity)) == limit


def test_the_backoff_doubles_from_its_start_up_to_its_cap() -> None:
    options = ReleaseOptions(backoff_initial=0.005, backoff_max=1000.0, backoff_jitter=0.0)
    draw = random.Random(1)
    delays = [backoff(options, failures, draw) for failures in range(1, 20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[14] == pytest.approx(81.92)  # client-go's 15th: 82 s
    assert delays[-1] == 1000.0
    assert backoff(options, 10**9, draw) == 1000.0  # no overflow, whatever the count
    tiny = ReleaseOptions(backoff_initial=1e-300, backoff_max=1e300, backoff_jitter=0.0)
    assert backoff(tiny, 10**6, draw) == 1e-300 * 2.0**1000  # the exponent stops at 1000


def test_the_backoff_jitter_draws_a_share_of_the_delay() -> None:
    options = ReleaseOptions(backoff_initial=1.0, backoff_max=100.0, backoff_jitter=0.5)

    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    assert backoff(options, 3, Fixed(0.0)) == 4.0
    assert backoff(options, 3, Fixed(0.5)) == 3.0
    assert backoff(options, 3, Fixed(0.999)) == pytest.approx(2.002)
    full = ReleaseOptions(backoff_initial=1.0, backoff_max=100.0, backoff_jitter=1.0)
    assert backoff(full, 1, Fixed(0.25)) == 0.75
    draw = random.Random(5)
    assert all(0.0 < backoff(full, 4, draw) <= 8.0 for _ in range(100))


async def test_backoffs_of_many_keys_that_failed_together_come_back_apart() -> None:
    options = ReleaseOptions(
        batch=100, ramp_start=100, max_in_flight=100, backoff_initial=10.0, backoff_max=10.0,
        max_attempts=2,
    )  # fmt: skip
    fleet = World(VirtualClock(autojump=True), options)
    queue = make_queue(fleet, events=recorded()[0])
    for i in range(20):
        queue.submit(f"k{i}", fleet.action(f"k{i}", fail=1), based_on=1)
    await queue.drain()
    retries = sorted({start.time for start in fleet.starts if start.time > 0})
    assert len(retries) > 10  # full jitter: not all at 10 s
    assert all(0.0 < time <= 10.0 for time in retries)
    await queue.close()
