"""Hostile callers and hostile dependencies against a release queue.

Whatever a caller passes, or a callback, a state source, an action or an event listener does,
the answer is a clear error to that caller or a drop (or failure) with the reason, and the
queue goes on for everyone else: after each attack an ordinary action still runs.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError, QueueClosedError
from resilient.events import Event
from resilient.release import (
    Done,
    Drop,
    Dropped,
    Failed,
    Proceed,
    ReleaseOptions,
    ReleaseQueue,
    ReleaseState,
    Replan,
    Superseded,
    Ticket,
)
from tests.resilient.release_world import (
    Boom,
    World,
    make_queue,
    no_tasks_left,
    quiet,
    recorded,
    settle,
)

FAST = ReleaseOptions(batch=100, interval=1.0, max_in_flight=100, ramp_start=100)


def world(options: ReleaseOptions = FAST, **state: Any) -> World:
    return World(VirtualClock(autojump=True), options, **state)


async def still_works(queue: ReleaseQueue, fleet: World) -> None:
    """An ordinary action still runs to its end on ``queue``."""
    key = f"ordinary-{len(fleet.starts)}"
    assert await queue.submit(key, fleet.action(key, result="fine"), based_on=1) == Done("fine")


# -- what a caller passes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "\ud800", "\udfff lone surrogates \ud800", "x" * 100_000, "\x00\n\t", "🚀" * 50],
    ids=["empty", "surrogate", "surrogates", "100k", "controls", "emoji"],
)
async def test_any_str_is_a_key(key: str) -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    queue.pause("p")
    first = queue.submit(key, fleet.action(key, result=1), based_on=1)
    second = queue.submit(key, fleet.action(key, result=2), based_on=1)
    dropped = queue.submit(key + "/stale", fleet.action("stale"), based_on=0)
    assert first.outcome == Superseded(second)
    assert repr(second).startswith("Ticket(key=")
    assert len(repr(second)) < 200
    queue.resume()
    assert await second == Done(2)
    assert (await dropped).reason == "stale: based on version 0, state is 1"  # type: ignore[union-attr]
    keyed = [event for event in recorder.events if "key" in event.attributes]
    # the stale one is dropped in the pass that starts the other, before that one ends
    assert [event.name for event in keyed] == ["superseded", "dropped", "done"]
    assert [event.attributes["key"] for event in keyed] == [key, key + "/stale", key]
    await still_works(queue, fleet)
    left = await queue.close()
    assert left == ()
    with pytest.raises(QueueClosedError) as raised:
        queue.submit(key, fleet.action(key), based_on=1)
    assert len(str(raised.value)) < 200


class LyingInt(int):
    """An int whose comparisons lie: the queue must judge the int it is."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return True


async def test_an_int_subclass_cannot_lie_its_way_past_a_bound() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, budget_share=0.1), capacity=10)
    queue = make_queue(fleet)
    with pytest.raises(ArgumentValueError):
        queue.submit("k", fleet.action("k"), based_on=1, takes_out=LyingInt(-5))
    big = queue.submit("big", fleet.action("big"), based_on=1, takes_out=LyingInt(5))
    stale = queue.submit("stale", fleet.action("stale"), based_on=LyingInt(0))
    assert type(big.takes_out) is int
    assert type(stale.based_on) is int
    assert (await big).reason.startswith("over budget: takes out 5 units")  # type: ignore[union-attr]
    assert await stale == Dropped("stale: based on version 0, state is 1")
    await still_works(queue, fleet)
    await queue.close()


@pytest.mark.parametrize(
    ("takes_out", "error", "message"),
    [
        (-1, ArgumentValueError, "ReleaseQueue.submit(takes_out) must be an int >= 0, got -1"),
        (True, ArgumentTypeError, "ReleaseQueue.submit(takes_out) must be an int >= 0, got True"),
        (
            math.nan,
            ArgumentTypeError,
            "ReleaseQueue.submit(takes_out) must be an int >= 0, got nan",
        ),
        (1.0, ArgumentTypeError, "ReleaseQueue.submit(takes_out) must be an int >= 0, got 1.0"),
        ("1", ArgumentTypeError, "ReleaseQueue.submit(takes_out) must be an int >= 0, got '1'"),
        (None, ArgumentTypeError, "ReleaseQueue.submit(takes_out) must be an int >= 0, got None"),
    ],
)
async def test_a_bad_takes_out_is_the_callers_error_and_changes_nothing(
    takes_out: Any, error: type[Exception], message: str
) -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("p")
    waiting = queue.submit("k", fleet.action("k"), based_on=1)
    with pytest.raises(error) as raised:
        queue.submit("k", fleet.action("k"), based_on=1, takes_out=takes_out)
    assert str(raised.value) == message
    assert waiting.status == "queued"  # not superseded by a refused submit
    assert queue.stats.submitted == 1
    queue.resume()
    assert await waiting == Done(None)
    await queue.close()


async def test_a_takes_out_of_ten_to_the_thirty_is_dropped_and_never_blocks_the_line() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, budget_share=1.0), capacity=10**6)
    queue = make_queue(fleet)
    huge = queue.submit("huge", fleet.action("huge"), based_on=1, takes_out=10**30)
    behind = queue.submit("behind", fleet.action("behind", takes_out=1), based_on=1, takes_out=1)
    assert await huge == Dropped(
        "over budget: takes out 1000000000000000000000000000000 units, the whole budget is "
        "1e+06 (budget_share 1 of capacity 1000000, budget_units inf)"
    )
    assert await behind == Done(None)
    await queue.close()


async def test_versions_of_any_size_are_compared_exactly() -> None:
    fleet = world(version=10**30)
    queue = make_queue(fleet)
    ok = queue.submit("ok", fleet.action("ok", based_on=10**30), based_on=10**30)
    stale = queue.submit("stale", fleet.action("stale"), based_on=10**30 - 1)
    assert await ok == Done(None)
    assert await stale == Dropped(f"stale: based on version {10**30 - 1}, state is {10**30}")
    await queue.close()


async def test_a_budget_of_zero_lets_only_restores_and_actions_that_take_nothing_out() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, budget_units=0.0))
    queue = make_queue(fleet)
    drain = queue.submit("drain", fleet.action("drain", takes_out=1), based_on=1, takes_out=1)
    nothing = queue.submit("nothing", fleet.action("nothing"), based_on=1)
    restore = queue.submit("restore", fleet.action("restore", restores=True), based_on=1,
                           restores=True)  # fmt: skip
    assert (await drain).reason.startswith("over budget: takes out 1 units, the whole budget is 0")  # type: ignore[union-attr]
    assert await nothing == Done(None)
    assert await restore == Done(None)
    await queue.close()


# -- hostile actions ------------------------------------------------------------------------------


async def test_an_action_that_raises_cancelled_error_itself_is_a_failed_run() -> None:
    fleet = world(ReleaseOptions(max_attempts=2, backoff_jitter=0.0, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    runs = 0

    async def cancels_itself() -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise asyncio.CancelledError("not from the queue")
        return "second run"

    ticket = queue.submit("k", cancels_itself, based_on=1)
    assert await ticket == Done("second run")
    assert isinstance(ticket.attempts[0].error, asyncio.CancelledError)
    await still_works(queue, fleet)
    await queue.close()
    assert no_tasks_left()


async def test_an_action_that_hangs_is_cancelled_by_close_with_cancel() -> None:
    fleet = world()
    queue = make_queue(fleet)

    async def hangs() -> None:
        await asyncio.Event().wait()

    ticket = queue.submit("k", hangs, based_on=1)
    await still_works(queue, fleet)
    assert ticket.status == "running"
    assert await queue.close(cancel=True) == ()
    outcome = ticket.outcome
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, asyncio.CancelledError)
    assert no_tasks_left()


async def test_a_cancelled_close_cancels_the_running_actions_and_leaves_no_task() -> None:
    fleet = world()
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", seconds=1000.0), based_on=1)
    await settle()
    closing = asyncio.get_running_loop().create_task(queue.close())
    await fleet.clock.sleep(1.0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await settle()
    outcome = ticket.outcome
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, asyncio.CancelledError)
    assert await queue.close() == ()
    assert no_tasks_left()


def test_an_action_that_raises_system_exit_ends_failed_and_the_exit_goes_on() -> None:
    loop = asyncio.new_event_loop()
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    tickets: list[Ticket[Any]] = []

    async def exits() -> None:
        raise SystemExit(3)

    bus, recorder = recorded()

    async def main() -> None:
        queue = make_queue(fleet, events=bus)
        tickets.append(queue.submit("k", exits, based_on=1))
        await asyncio.Event().wait()

    try:
        with pytest.raises(SystemExit):
            loop.run_until_complete(main())
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    outcome = tickets[0].outcome
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, SystemExit)
    [failed] = recorder.named("failed", "release")
    assert (failed.attributes["error"], failed.attributes["reason"]) == (
        "SystemExit: 3",
        "SystemExit raised",
    )


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_errors_that_cannot_be_shown_or_are_huge_are_told_in_a_bounded_way() -> None:
    fleet = world(ReleaseOptions(max_attempts=2, backoff_jitter=0.0, batch=10, ramp_start=10))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)

    async def unprintable() -> None:
        raise Unprintable()

    async def huge() -> None:
        raise Boom("x" * 1_000_000)

    first = queue.submit("unprintable", unprintable, based_on=1)
    second = queue.submit("huge", huge, based_on=1)
    assert isinstance(await first, Failed)
    assert isinstance(await second, Failed)
    errors = [event.attributes["error"] for event in recorder.events if "error" in event.attributes]
    assert "Unprintable: <a message that cannot be shown>" in errors
    assert all(len(error) < 200 for error in errors)
    await still_works(queue, fleet)
    await queue.close()


# -- hostile callbacks and state sources ---------------------------------------------------------


async def test_a_revalidate_that_submits_for_the_key_it_judges_is_judged_again() -> None:
    fleet = world()
    queue: ReleaseQueue | None = None
    judged: list[object] = []

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        assert queue is not None
        judged.append(action.based_on)
        if action.based_on == 1:
            queue.submit(action.key, fleet.action(action.key, result="newer"), based_on=2)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    first = queue.submit("k", fleet.action("k", result="older"), based_on=1)
    outcome = await first
    assert isinstance(outcome, Superseded)
    assert await outcome.by == Done("newer")
    assert judged == [1, 2]
    assert [start.key for start in fleet.starts] == ["k"]
    await queue.close()


async def test_a_revalidate_that_pauses_the_queue_starts_nothing() -> None:
    fleet = world()
    queue: ReleaseQueue | None = None

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        assert queue is not None
        queue.pause("the callback said so")
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await fleet.clock.sleep(10.0)
    assert ticket.status == "queued"
    assert fleet.starts == []
    await queue.close()


async def test_a_revalidate_that_closes_the_queue_drops_the_action() -> None:
    fleet = world()
    queue: ReleaseQueue | None = None
    closing: list[asyncio.Task[Any]] = []

    async def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        assert queue is not None
        closing.append(asyncio.get_running_loop().create_task(queue.close()))
        await settle()
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    assert await ticket == Dropped("closed")
    await asyncio.gather(*closing)
    assert fleet.starts == []
    assert no_tasks_left()


async def test_a_state_of_a_subclass_is_a_state() -> None:
    class Snapshot(ReleaseState):
        pass

    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    queue = ReleaseQueue(lambda: Snapshot(1, 10), FAST, clock=clock, events=quiet())
    assert await queue.submit("k", fleet.action("k"), based_on=1) == Done(None)
    await queue.close()


async def test_many_waiters_on_one_ticket_half_cancelled() -> None:
    fleet = world()
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", seconds=5.0, result="r"), based_on=1)
    loop = asyncio.get_running_loop()
    waiters = [loop.create_task(ticket._wait()) for _ in range(1000)]
    await fleet.clock.sleep(1.0)
    for waiter in waiters[::2]:
        waiter.cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert sum(isinstance(result, asyncio.CancelledError) for result in results) == 500
    assert [result for result in results[1::2]] == [Done("r")] * 500
    await queue.close()


# -- hostile event listeners -----------------------------------------------------------------------


async def test_a_listener_that_raises_or_resubmits_breaks_nothing() -> None:
    fleet = world()
    bus, _recorder = recorded()
    queue = make_queue(fleet, events=bus)
    resubmitted: list[Ticket[Any]] = []

    def hostile(event: Event) -> None:
        if event.name == "dropped" and event.attributes["key"] == "stale":
            resubmitted.append(queue.submit("stale", fleet.action("stale"), based_on=1))
        raise RuntimeError("listener bug")

    bus.subscribe(hostile)
    stale = queue.submit("stale", fleet.action("stale"), based_on=0)
    others = [queue.submit(f"k{i}", fleet.action(f"k{i}"), based_on=1) for i in range(3)]
    assert await stale == Dropped("stale: based on version 0, state is 1")
    await queue.drain()
    assert [await ticket for ticket in others] == [Done(None)] * 3
    assert [ticket.outcome for ticket in resubmitted] == [Done(None)]
    await still_works(queue, fleet)
    await queue.close()


# -- extreme options ----------------------------------------------------------------------------


async def test_a_huge_interval_holds_the_rest_until_close() -> None:
    fleet = world(ReleaseOptions(batch=1, ramp_start=1, interval=1e9, max_age=math.inf))
    queue = make_queue(fleet)
    first = queue.submit("a", fleet.action("a"), based_on=1)
    second = queue.submit("b", fleet.action("b"), based_on=1)
    assert await first == Done(None)
    await settle()
    assert second.status == "queued"
    assert await queue.close() == (second,)
    assert no_tasks_left()


async def test_a_tiny_max_age_drops_what_waited_at_all() -> None:
    fleet = world(ReleaseOptions(batch=1, ramp_start=1, interval=1.0, max_age=1e-9))
    queue = make_queue(fleet)
    first = queue.submit("a", fleet.action("a"), based_on=1)
    second = queue.submit("b", fleet.action("b"), based_on=1)
    assert await first == Done(None)  # no time passed before its start
    outcome = await second
    assert isinstance(outcome, Dropped)
    assert outcome.reason.startswith("expired: 1 s old, max_age 1e-09 s")
    await queue.close()


async def test_a_hanging_state_holds_nothing_longer_than_its_timeout() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    calls = 0

    async def state() -> ReleaseState:
        nonlocal calls
        calls += 1
        if calls <= 2:
            await asyncio.Event().wait()
        return fleet.state()

    options = ReleaseOptions(batch=100, ramp_start=100, state_timeout=0.25, interval=1.0)
    queue = ReleaseQueue(state, options, clock=clock, events=quiet())
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    assert await ticket == Done(None)
    assert clock.monotonic() == 2.5  # two reads of 0.25 s, each followed by an interval
    await queue.close()
    assert no_tasks_left()


async def test_drop_and_replan_answers_are_checked_when_made() -> None:
    with pytest.raises(ArgumentValueError, match=r"^Drop.reason must be a non-empty str, got ''"):
        Drop("")
    with pytest.raises(ArgumentTypeError, match=r"^Replan.run must be an async callable"):
        Replan(print)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"^Replan.restores must be a bool, got 1"):
        Replan(noop, restores=1)  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentValueError,
        match=r"^Replan.takes_out must be 0 for an action that restores, got 2",
    ):
        Replan(noop, takes_out=2, restores=True)
    assert Replan(noop, takes_out=LyingInt(2)).takes_out == 2
    assert type(Replan(noop, takes_out=LyingInt(2)).takes_out) is int
    assert Replan(noop).restores is None


async def noop() -> None:
    return None


async def test_a_replan_of_a_restore_that_would_take_units_out_is_dropped() -> None:
    fleet = world()

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Replan:
        return Replan(fleet.action(action.key), takes_out=2)  # restores=None keeps "restores"

    queue = make_queue(fleet, revalidate=revalidate)
    ticket = queue.submit("r", fleet.action("r", restores=True), based_on=1, restores=True)
    assert await ticket == Dropped(
        "revalidate answered a Replan that restores and takes out 2 units"
    )
    assert fleet.starts == []
    await queue.close()


async def test_cancelled_drains_leave_nothing_behind() -> None:
    fleet = World(VirtualClock(), FAST)  # time moves only when told: the action never ends
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", seconds=100.0), based_on=1)
    loop = asyncio.get_running_loop()
    for _ in range(1000):
        waiter = loop.create_task(queue.drain())
        await settle(2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert queue._ledger._drainers == []
    kept = loop.create_task(queue.drain())
    await settle(2)
    assert len(queue._ledger._drainers) == 1
    await fleet.clock.run_for(100.0)
    await kept
    assert ticket.outcome == Done(None)
    await queue.close()
