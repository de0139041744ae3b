"""ReleaseQueue when actions fail, and while it is paused, resumed or held by a breaker.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.release import (
    Done,
    Dropped,
    Failed,
    Proceed,
    ReleaseOptions,
    ReleaseQueue,
    ReleaseState,
    Superseded,
    Ticket,
)
from tests.resilient.release_world import (
    FAST,
    Boom,
    World,
    make_queue,
    quiet,
    recorded,
    settle,
    world,
)

# -- failures ---------------------------------------------------------------------------------


async def test_an_action_that_keeps_failing_stops_after_its_attempts_with_its_schedule() -> None:
    options = ReleaseOptions(
        max_attempts=4,
        backoff_initial=0.5,
        backoff_max=1.5,
        backoff_jitter=0.0,
        batch=10,
        ramp_start=10,
    )
    fleet = world(options)
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    ticket = queue.submit("k", fleet.action("k", fail=100, seconds=1.0), based_on=1)
    outcome = await ticket
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, Boom)
    assert str(outcome.error) == "k failed run 4"
    assert [(a.number, a.started, a.ended, a.retry_in, str(a.error)) for a in outcome.attempts] == [
        (1, 0.0, 1.0, 0.5, "k failed run 1"),
        (2, 1.5, 2.5, 1.0, "k failed run 2"),
        (3, 3.5, 4.5, 1.5, "k failed run 3"),
        (4, 6.0, 7.0, None, "k failed run 4"),
    ]
    assert ticket.attempts == outcome.attempts
    assert ticket.runs == 4
    retrying = recorder.named("retrying")
    assert [dict(event.attributes) for event in retrying] == [
        {"key": "k", "attempt": n, "error": f"Boom: k failed run {n}", "delay": delay}
        for n, delay in ((1, 0.5), (2, 1.0), (3, 1.5))
    ]
    [failed] = recorder.named("failed")
    assert failed.attributes == {
        "key": "k",
        "error": "Boom: k failed run 4",
        "attempts": 4,
        "reason": "attempts exhausted (4 of 4)",
    }
    assert (queue.stats.started, queue.stats.retries, queue.stats.failed) == (4, 3, 1)
    await queue.close()


async def test_an_action_that_fails_then_succeeds_is_done_and_keeps_its_attempts() -> None:
    fleet = world(ReleaseOptions(backoff_jitter=0.0, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", fail=2, result="ok"), based_on=1)
    assert await ticket == Done("ok")
    assert [attempt.retry_in for attempt in ticket.attempts] == [0.005, 0.01]
    assert ticket.runs == 3
    await queue.close()


async def test_a_retry_is_revalidated_like_any_start() -> None:
    fleet = world(ReleaseOptions(backoff_initial=1.0, backoff_jitter=0.0, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", fail=5), based_on=1)
    await fleet.clock.sleep(0.5)
    assert ticket.status == "backoff"
    fleet.version = 2
    assert await ticket == Dropped("stale: based on version 1, state is 2")
    assert ticket.runs == 1
    await queue.close()


async def test_a_newer_action_supersedes_one_in_backoff_and_waits_for_no_backoff() -> None:
    fleet = world(
        ReleaseOptions(backoff_initial=100.0, backoff_jitter=0.0, batch=10, ramp_start=10)
    )
    queue = make_queue(fleet)
    failing = queue.submit("k", fleet.action("k", fail=5), based_on=1)
    await fleet.clock.sleep(1.0)
    assert failing.status == "backoff"
    newer = queue.submit("k", fleet.action("k", result="newer"), based_on=1)
    assert failing.outcome == Superseded(newer)
    assert await newer == Done("newer")
    assert fleet.clock.monotonic() < 2.0
    await queue.close()


async def test_a_run_that_fails_while_a_newer_action_waits_is_superseded_not_retried() -> None:
    fleet = world()
    queue = make_queue(fleet)
    failing = queue.submit("k", fleet.action("k", fail=5, seconds=1.0), based_on=1)
    await settle()
    newer = queue.submit("k", fleet.action("k", result="newer"), based_on=1)
    assert newer.status == "parked"
    assert await failing == Superseded(newer)
    assert [attempt.retry_in for attempt in failing.attempts] == [None]
    assert await newer == Done("newer")
    assert queue.stats.retries == 0
    await queue.close()


async def test_failures_shrink_the_ramp_and_successes_grow_it() -> None:
    options = ReleaseOptions(batch=8, ramp_start=1, interval=1.0, backoff_jitter=0.0)
    fleet = world(options)
    queue = make_queue(fleet)
    assert queue.ramp == 1
    for i in range(7):
        queue.submit(f"ok{i}", fleet.action(f"ok{i}"), based_on=1)
    await queue.drain()
    assert queue.ramp == 8  # 1, 2 (after 1), 4 (after 2 more), 8 (after 4 more)
    failing = [
        queue.submit(f"bad{i}", fleet.action(f"bad{i}", fail=1), based_on=1) for i in range(3)
    ]
    await settle()
    assert queue.ramp == 1  # 8 -> 4 -> 2 -> 1
    await queue.drain()
    assert all(ticket.outcome == Done(None) for ticket in failing)
    await queue.close()


async def test_an_action_that_fails_does_not_cost_its_worker() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, max_attempts=1))
    queue = make_queue(fleet)
    tasks: list[asyncio.Task[Any] | None] = []

    async def fails() -> None:
        tasks.append(asyncio.current_task())
        raise Boom("no")

    async def works() -> None:
        tasks.append(asyncio.current_task())

    failing = queue.submit("a", fails, based_on=1)
    working = queue.submit("b", works, based_on=1)
    assert isinstance(await failing, Failed)
    assert await working == Done(None)
    assert len(tasks) == 2
    assert tasks[0] is tasks[1]  # one worker ran both, inline
    await queue.close()


# -- pause, resume, breakers ----------------------------------------------------------------------


async def test_pause_holds_every_start_and_resume_ramps_up_again() -> None:
    options = ReleaseOptions(batch=4, ramp_start=1, interval=1.0)
    fleet = world(options)
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    queue.pause("maintenance")
    fleet.paused = True
    assert queue.paused
    assert queue.pause_reason == "maintenance"
    for i in range(6):
        queue.submit(f"k{i}", fleet.action(f"k{i}"), based_on=1)
    await fleet.clock.sleep(100.0)
    assert fleet.starts == []
    fleet.paused = False
    queue.resume()
    assert not queue.paused
    assert queue.pause_reason is None
    await queue.drain()
    assert [start.time for start in fleet.starts] == [100.0, 100.0, 101.0, 101.0, 101.0, 101.0]
    assert [dict(event.attributes) for event in recorder.named("paused")] == [
        {"reason": "maintenance", "queued": 0}
    ]
    assert [dict(event.attributes) for event in recorder.named("resumed")] == [
        {"paused_for": 100.0, "queued": 6}
    ]
    assert queue.stats.pauses == 1
    queue.resume()  # not paused: nothing happens
    assert len(recorder.named("resumed")) == 1
    await queue.close()


async def test_pause_refuses_an_empty_reason() -> None:
    queue = make_queue(world())
    with pytest.raises(ArgumentValueError, match=r"^ReleaseQueue.pause\(reason\) must be a non"):
        queue.pause("")
    with pytest.raises(ArgumentTypeError, match=r"^ReleaseQueue.pause\(reason\) must be a non"):
        queue.pause(None)  # type: ignore[arg-type]
    assert not queue.paused
    await queue.close()


async def test_a_followed_breaker_holds_the_queue_until_it_closes() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, ReleaseOptions(batch=10, ramp_start=10, interval=1.0))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    trips_at_once = BreakerOptions(failure_threshold=1, reset_timeout=30.0)
    breaker = CircuitBreaker("scheduler", trips_at_once, clock=clock, events=bus)
    unfollow = queue.follow(breaker)
    assert queue.follow(breaker) is not unfollow  # following twice changes nothing
    assert not queue.paused

    async def fail() -> None:
        raise Boom("scheduler down")

    with pytest.raises(Boom):
        await breaker.call(fail)
    assert queue.paused
    assert queue.pause_reason == "breaker 'scheduler' is open"
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await clock.sleep(45.0)  # half-open after 30 s: still held
    assert queue.pause_reason == "breaker 'scheduler' is half-open"
    assert fleet.starts == []

    async def succeed() -> None:
        return None

    await breaker.call(succeed)  # the probe closes it
    assert await ticket == Done(None)
    assert fleet.starts[0].time <= 46.0  # within an interval of the close
    assert [dict(event.attributes) for event in recorder.named("paused", "release")] == [
        {"reason": "breaker 'scheduler' is open", "queued": 1},  # told at the next commit
        {"reason": "breaker 'scheduler' is half-open", "queued": 1},
    ]
    assert len(recorder.named("resumed", "release")) == 1
    unfollow()
    unfollow()
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert not queue.paused  # no longer followed
    await queue.close()


async def test_follow_refuses_what_is_not_a_breaker() -> None:
    queue = make_queue(world())
    with pytest.raises(ArgumentTypeError, match=r"^ReleaseQueue.follow\(breaker\) must be a Circ"):
        queue.follow("breaker")  # type: ignore[arg-type]
    await queue.close()


async def test_a_pause_holds_the_queue_even_when_the_breaker_closes() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    queue = make_queue(fleet)
    breaker = CircuitBreaker("b", clock=clock, events=recorded()[0])
    queue.follow(breaker)
    queue.pause("by hand")
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await clock.sleep(10.0)
    assert fleet.starts == []
    assert queue.pause_reason == "by hand"
    queue.resume()
    assert await ticket == Done(None)
    await queue.close()


@pytest.mark.parametrize("opens_at", [1.0, 11.0], ids=["first window", "a later window"])
async def test_an_end_does_not_wake_a_scheduler_that_waits_for_its_window(opens_at: float) -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, ReleaseOptions(batch=1, ramp_start=1, interval=10.0))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    breaker = CircuitBreaker(
        "dep", BreakerOptions(failure_threshold=1, reset_timeout=100.0), clock=clock, events=bus
    )
    queue.follow(breaker)
    for key in ("a", "b", "c"):
        queue.submit(key, fleet.action(key, seconds=2.0), based_on=1)
    await clock.sleep(opens_at)

    async def fail() -> None:
        raise Boom("down")

    with pytest.raises(Boom):
        await breaker.call(fail)  # the breaker opens while the scheduler waits for the window
    await clock.sleep(8.5)  # the running action ended 1 s after
    assert recorder.named("paused", "release") == []  # nothing woke the scheduler
    await clock.sleep(1.0)  # the window's edge: the breaker is read before the start
    assert [event.attributes["reason"] for event in recorder.named("paused", "release")] == [
        "breaker 'dep' is open"
    ]
    assert len(fleet.starts) == opens_at // 10 + 1
    await queue.close()


async def test_following_and_unfollowing_an_open_breaker_tell_what_waits() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, ReleaseOptions(batch=10, ramp_start=10))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    breaker = CircuitBreaker("dep", BreakerOptions(failure_threshold=1), clock=clock, events=bus)

    async def fail() -> None:
        raise Boom("down")

    with pytest.raises(Boom):
        await breaker.call(fail)
    tickets = [queue.submit(key, fleet.action(key), based_on=1) for key in ("a", "b")]
    unfollow = queue.follow(breaker)  # held at once, before anything started
    unfollow()
    assert [dict(event.attributes) for event in recorder.named("paused", "release")] == [
        {"reason": "breaker 'dep' is open", "queued": 2}
    ]
    assert [dict(event.attributes) for event in recorder.named("resumed", "release")] == [
        {"paused_for": 0.0, "queued": 2}
    ]
    for ticket in tickets:
        await ticket
    await queue.close()


async def test_with_a_callback_a_breaker_that_opens_while_it_runs_holds_the_action() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    breaker = CircuitBreaker(
        "dep", BreakerOptions(failure_threshold=1, reset_timeout=100.0), clock=clock, events=quiet()
    )

    async def fail() -> None:
        raise Boom("down")

    async def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        if action.key == "trip":
            with contextlib.suppress(Boom):
                await breaker.call(fail)
        return Proceed()

    queue = ReleaseQueue(fleet.state, FAST, revalidate=revalidate, clock=clock, events=quiet())
    queue.follow(breaker)
    ok = queue.submit("ok", fleet.action("ok"), based_on=1)
    await clock.sleep(1.0)
    assert ok.outcome == Done(None)  # a followed breaker that is closed holds nothing
    trip = queue.submit("trip", fleet.action("trip"), based_on=1)
    await clock.sleep(5.0)
    assert trip.status == "queued"  # held: the breaker opened while it was judged
    assert queue.pause_reason == "breaker 'dep' is open"
    assert [start.key for start in fleet.starts] == ["ok"]
    assert await queue.close() == (trip,)


async def test_the_units_of_a_failed_action_come_back_when_it_ends_or_backs_off() -> None:
    options = ReleaseOptions(max_attempts=2, backoff_initial=1.0, backoff_jitter=0.0)
    fleet = world(options)
    queue = make_queue(fleet)
    run = fleet.action("k", takes_out=2, fail=100, seconds=1.0)
    ticket = queue.submit("k", run, based_on=1, takes_out=2)
    await fleet.clock.sleep(0.5)
    assert queue.units_out == 2  # running
    await fleet.clock.sleep(1.0)
    assert queue.units_out == 0  # failed once, in backoff: it holds nothing
    assert queue.in_flight == 0
    outcome = await ticket
    assert isinstance(outcome, Failed)
    assert (queue.units_out, queue.in_flight) == (0, 0)
    await queue.close()
