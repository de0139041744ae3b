"""ReleaseQueue: coalescing, order, revalidation, budget, brake, failures, pause, close.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError, QueueClosedError
from resilient.release import (
    DEFAULT_RELEASE_OPTIONS,
    Brake,
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
    names,
    no_tasks_left,
    quiet,
    recorded,
    settle,
)

FAST = ReleaseOptions(batch=100, interval=1.0, max_in_flight=100, ramp_start=100)
"""Options that do not throttle a small test."""


def world(options: ReleaseOptions = FAST, **state: Any) -> World:
    return World(VirtualClock(autojump=True), options, **state)


def done_keys(world: World) -> list[str]:
    return [start.key for start in world.starts]


# -- the options and the state -----------------------------------------------------------------


def test_the_defaults_are_the_documented_anchors() -> None:
    options = DEFAULT_RELEASE_OPTIONS
    assert options == ReleaseOptions()
    assert (options.batch, options.interval, options.max_in_flight, options.ramp_start) == (
        10,
        1.0,
        10,
        1,
    )
    assert (options.budget_units, options.budget_share) == (math.inf, 0.10)
    assert (options.slow_above, options.slow_factor, options.halt_above) == (0.25, 10.0, 0.45)
    assert (options.max_age, options.max_attempts) == (300.0, 16)
    assert (options.backoff_initial, options.backoff_max, options.backoff_jitter) == (
        0.005,
        1000.0,
        1.0,
    )
    assert (options.state_timeout, options.revalidate_timeout) == (1.0, 1.0)
    assert options.routine_events is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch": 3, "ramp_start": 4}, "ReleaseOptions.ramp_start must be <= batch (3), got 4"),
        (
            {"slow_above": 0.5, "halt_above": 0.4},
            "ReleaseOptions.slow_above must be <= halt_above (0.4), got 0.5",
        ),
        (
            {"backoff_initial": 2.0, "backoff_max": 1.5},
            "ReleaseOptions.backoff_initial must be <= backoff_max (1.5), got 2.0",
        ),
    ],
)
def test_options_refuse_fields_that_contradict_each_other(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentValueError) as raised:
        ReleaseOptions(**fields)
    assert str(raised.value) == message


def test_options_accept_fields_at_each_others_bounds() -> None:
    options = ReleaseOptions(
        batch=3, ramp_start=3, slow_above=0.4, halt_above=0.4, backoff_initial=2, backoff_max=2
    )
    assert (options.ramp_start, options.slow_above, options.backoff_initial) == (3, 0.4, 2.0)


def test_a_state_is_checked_and_kept_as_builtins() -> None:
    class Units(int):
        pass

    state = ReleaseState(Units(3), Units(10), Units(2), 1)
    assert (state.version, state.capacity, state.out_of_service, state.unhealthy) == (3, 10, 2, 1)
    assert [type(value) for value in (state.version, state.capacity, state.out_of_service)] == [
        int,
        int,
        int,
    ]
    assert type(state.unhealthy) is float
    assert ReleaseState(-1, 0) == ReleaseState(-1, 0, 0, 0.0)
    assert ReleaseState(1, 5, 5).out_of_service == 5


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((True, 1), ArgumentTypeError, "ReleaseState.version must be an int, got True"),
        ((1, -1), ArgumentValueError, "ReleaseState.capacity must be an int >= 0, got -1"),
        ((1, 1.0), ArgumentTypeError, "ReleaseState.capacity must be an int >= 0, got 1.0"),
        (
            (1, 4, 5),
            ArgumentValueError,
            "ReleaseState.out_of_service must be <= capacity (4), got 5",
        ),
        ((1, 4, -1), ArgumentValueError, "ReleaseState.out_of_service must be an int >= 0, got -1"),
        (
            (1, 4, 0, math.nan),
            ArgumentValueError,
            "ReleaseState.unhealthy must be a finite number of share >= 0 and <= 1, got nan",
        ),
        (
            (1, 4, 0, 1.5),
            ArgumentValueError,
            "ReleaseState.unhealthy must be a finite number of share >= 0 and <= 1, got 1.5",
        ),
    ],
)
def test_a_bad_state_names_its_field(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        ReleaseState(*args)
    assert str(raised.value) == message


# -- constructing and submitting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: ReleaseQueue(3),  # type: ignore[arg-type]
            ArgumentTypeError,
            "ReleaseQueue.state must be a callable returning (or awaiting) a ReleaseState, got 3",
        ),
        (
            lambda: ReleaseQueue(lambda: None, {"batch": 1}),  # type: ignore[arg-type]
            ArgumentTypeError,
            "ReleaseQueue.options must be a ReleaseOptions, got {'batch': 1}",
        ),
        (
            lambda: ReleaseQueue(lambda: None, revalidate="no"),  # type: ignore[arg-type]
            ArgumentTypeError,
            "ReleaseQueue.revalidate must be a callable or None, got 'no'",
        ),
        (
            lambda: ReleaseQueue(lambda: None, clock=object()),  # type: ignore[arg-type]
            ArgumentTypeError,
            "ReleaseQueue.clock must be a Clock, got <object",
        ),
        (
            lambda: ReleaseQueue(lambda: None, events=[]),  # type: ignore[arg-type]
            ArgumentTypeError,
            "ReleaseQueue.events must be an EventBus, got []",
        ),
    ],
)
def test_the_constructor_checks_its_arguments(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build()
    assert str(raised.value).startswith(message)


async def noop() -> None:
    return None


class AsyncCall:
    async def __call__(self) -> str:
        return "called"

    async def method(self) -> str:
        return "method"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"key": 3},
            ArgumentTypeError,
            "ReleaseQueue.submit(key) must be a str, got 3",
        ),
        (
            {"based_on": 1.0},
            ArgumentTypeError,
            "ReleaseQueue.submit(based_on) must be an int, got 1.0",
        ),
        (
            {"based_on": True},
            ArgumentTypeError,
            "ReleaseQueue.submit(based_on) must be an int, got True",
        ),
        (
            {"takes_out": -1},
            ArgumentValueError,
            "ReleaseQueue.submit(takes_out) must be an int >= 0, got -1",
        ),
        (
            {"takes_out": True},
            ArgumentTypeError,
            "ReleaseQueue.submit(takes_out) must be an int >= 0, got True",
        ),
        (
            {"takes_out": math.nan},
            ArgumentTypeError,
            "ReleaseQueue.submit(takes_out) must be an int >= 0, got nan",
        ),
        (
            {"restores": 1},
            ArgumentTypeError,
            "ReleaseQueue.submit(restores) must be a bool, got 1",
        ),
        (
            {"restores": True, "takes_out": 2},
            ArgumentValueError,
            "ReleaseQueue.submit(takes_out) must be 0 for an action that restores, got 2",
        ),
        (
            {"run": lambda: noop()},
            ArgumentTypeError,
            "ReleaseQueue.submit(run) must be an async callable taking no argument (async def, "
            "or a functools.partial of one), got <function",
        ),
        (
            {"run": print},
            ArgumentTypeError,
            "ReleaseQueue.submit(run) must be an async callable",
        ),
        (
            {"run": "noop"},
            ArgumentTypeError,
            "ReleaseQueue.submit(run) must be an async callable taking no argument (async def, "
            "or a functools.partial of one), got 'noop' (not callable)",
        ),
        (
            {"run": AsyncCall},
            ArgumentTypeError,
            "ReleaseQueue.submit(run) must be an async callable",
        ),
    ],
)
async def test_submit_checks_every_argument_before_it_changes_anything(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    fleet = world()
    queue = make_queue(fleet)
    arguments: dict[str, Any] = {"key": "k", "run": noop, "based_on": 1, **kwargs}
    with pytest.raises(error) as raised:
        queue.submit(**arguments)
    assert str(raised.value).startswith(message)
    assert (queue.queued, queue.stats.submitted) == (0, 0)
    assert queue._scheduler is None
    await queue.close()


async def test_submit_accepts_every_kind_of_async_callable() -> None:
    import functools

    async def add(a: int, b: int) -> int:
        return a + b

    fleet = world()
    queue = make_queue(fleet)
    caller = AsyncCall()
    tickets = [
        queue.submit("a", functools.partial(add, 1, 2), based_on=1),
        queue.submit("b", functools.partial(functools.partial(add, 1), 3), based_on=1),
        queue.submit("c", caller, based_on=1),
        queue.submit("d", caller.method, based_on=1),
    ]
    await queue.drain()
    assert [ticket.outcome for ticket in tickets] == [
        Done(3),
        Done(4),
        Done("called"),
        Done("method"),
    ]
    await queue.close()


async def test_a_run_that_answers_no_awaitable_fails_as_the_actions_error() -> None:
    class Cheat:
        async def __call__(self) -> None:
            return None

    cheat = Cheat()
    cheat.__class__ = type("Sync", (), {"__call__": lambda self: 42})  # type: ignore[assignment]
    fleet = world(ReleaseOptions(max_attempts=1, max_in_flight=1, batch=1))
    queue = make_queue(fleet)
    queue._last_run = cheat  # as if it had passed the check
    ticket = queue.submit("k", cheat, based_on=1)  # type: ignore[arg-type]
    outcome = await ticket
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, TypeError)
    await queue.close()


# -- order, coalescing, keys ----------------------------------------------------------------------


async def test_actions_start_in_order_and_end_done_with_their_results() -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    tickets = [queue.submit(f"k{i}", fleet.action(f"k{i}", result=i), based_on=1) for i in range(5)]
    assert [ticket.status for ticket in tickets] == ["queued"] * 5
    assert queue.queued == 5
    await queue.drain()
    assert done_keys(fleet) == ["k0", "k1", "k2", "k3", "k4"]
    assert [await ticket for ticket in tickets] == [Done(i) for i in range(5)]
    assert [ticket.status for ticket in tickets] == ["ended"] * 5
    assert all(ticket.done for ticket in tickets)
    assert [ticket.runs for ticket in tickets] == [1] * 5
    assert (queue.stats.submitted, queue.stats.started, queue.stats.done) == (5, 5, 5)
    assert (queue.queued, queue.in_flight, queue.units_out) == (0, 0, 0)
    done = recorder.named("done", "release")
    assert [dict(event.attributes) for event in done] == [
        {"key": f"k{i}", "attempts": 1} for i in range(5)
    ]
    assert fleet.violations == []
    await queue.close()


async def test_a_newer_action_supersedes_a_waiting_one_and_takes_its_place() -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    queue.pause("planning")
    first = queue.submit("a", fleet.action("a", result="old"), based_on=1)
    queue.submit("b", fleet.action("b"), based_on=1)
    newer = queue.submit("a", fleet.action("a", result="new", based_on=2), based_on=2)
    assert first.done
    assert first.outcome == Superseded(newer)
    assert first.status == "ended"
    assert queue.queued == 2
    [event] = recorder.named("superseded")
    assert event.attributes == {"key": "a", "based_on": 1, "by_based_on": 2}
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["a", "b"]  # the newer one kept the older one's place
    assert newer.outcome == Done("new")
    assert (queue.stats.superseded, queue.stats.done) == (1, 2)
    await queue.close()


async def test_a_chain_of_supersessions_keeps_the_first_place() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("planning")
    queue.submit("a", fleet.action("a"), based_on=1)
    queue.submit("b", fleet.action("b"), based_on=1)
    tickets = [queue.submit("a", fleet.action("a", result=i), based_on=1) for i in range(3)]
    assert [ticket.outcome for ticket in tickets[:2]] == [
        Superseded(tickets[1]),
        Superseded(tickets[2]),
    ]
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["a", "b"]
    assert tickets[2].outcome == Done(2)
    await queue.close()


async def test_a_restore_superseding_a_removal_goes_first() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("planning")
    queue.submit("a", fleet.action("a", takes_out=1), based_on=1, takes_out=1)
    queue.submit("b", fleet.action("b", takes_out=1), based_on=1, takes_out=1)
    restore = queue.submit("b", fleet.action("b", restores=True), based_on=1, restores=True)
    removal = queue.submit("c", fleet.action("c", takes_out=1), based_on=1, takes_out=1)
    back = queue.submit("c", fleet.action("c"), based_on=1)  # stays a removal: same place
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["b", "a", "c"]
    assert restore.outcome == Done(None)
    assert back.outcome == Done(None)
    assert removal.outcome == Superseded(back)
    await queue.close()


async def test_a_removal_superseding_a_restore_goes_to_the_end_of_the_removals() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("planning")
    queue.submit("r", fleet.action("r", restores=True), based_on=1, restores=True)
    queue.submit("a", fleet.action("a"), based_on=1)
    queue.submit("r", fleet.action("r"), based_on=1)
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["a", "r"]
    await queue.close()


async def test_restores_go_first() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("planning")
    for key in ("d1", "d2"):
        queue.submit(key, fleet.action(key, takes_out=1), based_on=1, takes_out=1)
    for key in ("r1", "r2"):
        queue.submit(key, fleet.action(key, restores=True), based_on=1, restores=True)
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["r1", "r2", "d1", "d2"]
    await queue.close()


async def test_a_key_never_runs_twice_at_once() -> None:
    fleet = world()
    queue = make_queue(fleet)
    first = queue.submit("k", fleet.action("k", seconds=5.0, result=1), based_on=1)
    await settle()
    assert first.status == "running"
    assert queue.in_flight == 1
    second = queue.submit("k", fleet.action("k", seconds=1.0, result=2), based_on=1)
    third = queue.submit("k", fleet.action("k", seconds=1.0, result=3), based_on=1)
    assert second.outcome == Superseded(third)
    assert third.status == "parked"
    other = queue.submit("o", fleet.action("o", result="o"), based_on=1)
    await other
    assert third.status == "parked"  # other keys go on meanwhile
    assert await third == Done(3)
    assert await first == Done(1)
    assert [(start.key, start.time) for start in fleet.starts] == [
        ("k", 0.0),
        ("o", 0.0),
        ("k", 5.0),
    ]
    assert fleet.violations == []
    await queue.close()


async def test_an_end_that_unparks_a_key_wakes_the_scheduler_when_the_ramp_is_full() -> None:
    fleet = world(ReleaseOptions(batch=1, ramp_start=1, interval=1.0))
    queue = make_queue(fleet)
    first = queue.submit("k", fleet.action("k", seconds=1.0), based_on=1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert first.status == "running"
    parked = queue.submit("k", fleet.action("k"), based_on=1)
    assert parked.status == "parked"
    await fleet.clock.sleep(3.0)  # nothing else wakes the idle scheduler
    assert parked.outcome == Done(None)
    assert [start.time for start in fleet.starts] == [0.0, 1.0]
    await queue.close()


# -- revalidation at commit time ---------------------------------------------------------------


async def test_actions_computed_from_an_older_state_are_dropped_never_run() -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    queue.pause("breaker open")
    stale = [queue.submit(f"k{i}", fleet.action(f"k{i}", based_on=3), based_on=3) for i in range(3)]
    fresh = queue.submit("f", fleet.action("f", based_on=5), based_on=5)
    ahead = queue.submit("n", fleet.action("n", based_on=6), based_on=6)
    fleet.version = 5
    queue.resume()
    await queue.drain()
    assert done_keys(fleet) == ["f", "n"]
    reason = "stale: based on version 3, state is 5"
    assert [ticket.outcome for ticket in stale] == [Dropped(reason)] * 3
    assert fresh.outcome == Done(None)
    assert ahead.outcome == Done(None)
    assert [dict(event.attributes) for event in recorder.named("dropped")] == [
        {"key": f"k{i}", "reason": reason} for i in range(3)
    ]
    assert queue.stats.dropped == 3
    assert fleet.reads == 1  # the whole backlog was judged on one read, in one pass
    await queue.close()


async def test_an_action_older_than_max_age_is_dropped_with_its_age() -> None:
    fleet = world(ReleaseOptions(max_age=300.0, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    queue.pause("long pause")
    old = queue.submit("old", fleet.action("old"), based_on=1)
    await fleet.clock.sleep(300.0)
    edge = queue.submit("edge", fleet.action("edge"), based_on=1)
    await fleet.clock.sleep(40.2)
    young = queue.submit("young", fleet.action("young"), based_on=1)
    queue.resume()
    await queue.drain()
    assert old.outcome == Dropped("expired: 340 s old, max_age 300 s")
    assert edge.outcome == Done(None)
    assert young.outcome == Done(None)
    await queue.close()


async def test_short_ages_are_told_to_three_digits() -> None:
    fleet = world(ReleaseOptions(max_age=2.5, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    queue.pause("pause")
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await fleet.clock.sleep(2.75)
    queue.resume()
    assert await ticket == Dropped("expired: 2.75 s old, max_age 2.5 s")
    await queue.close()


async def test_revalidate_sees_every_action_with_the_state_at_its_commit() -> None:
    fleet = world()
    seen: list[tuple[str, int]] = []

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        seen.append((action.key, state.version))
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    queue.pause("pause")
    queue.submit("a", fleet.action("a", based_on=7), based_on=7)
    fleet.version = 7
    queue.resume()
    await queue.drain()
    assert seen == [("a", 7)]
    assert done_keys(fleet) == ["a"]
    await queue.close()


async def test_revalidate_drops_with_its_reason_and_replans_in_place() -> None:
    fleet = world()
    bus, recorder = recorded()

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed | Replan | Drop:
        if action.key == "drop":
            return Drop("engine already drained")
        if action.based_on < state.version:
            return Replan(fleet.action(action.key, result="replanned"), takes_out=2)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate, events=bus)
    queue.pause("pause")
    stale = queue.submit("stale", fleet.action("stale", based_on=1), based_on=1, takes_out=1)
    dropped = queue.submit("drop", fleet.action("drop"), based_on=1)
    fleet.version = 2
    queue.submit("fresh", fleet.action("fresh", based_on=2), based_on=2)
    queue.resume()
    await queue.drain()
    assert dropped.outcome == Dropped("engine already drained")
    outcome = stale.outcome
    assert isinstance(outcome, Superseded)
    fresh = outcome.by
    assert (fresh.key, fresh.based_on, fresh.takes_out, fresh.restores) == ("stale", 2, 2, False)
    assert fresh.outcome == Done("replanned")
    assert done_keys(fleet) == ["stale", "fresh"]
    [event] = recorder.named("replanned")
    assert event.attributes == {"key": "stale", "based_on": 1, "version": 2}
    assert (queue.stats.replanned, queue.stats.superseded, queue.stats.dropped) == (1, 1, 1)
    assert recorder.named("superseded") == []  # a replan is told as replanned
    await queue.close()


async def test_proceed_for_a_stale_action_drops_it_with_the_policys_reason() -> None:
    fleet = world()
    queue = make_queue(fleet, revalidate=lambda action, state: Proceed())
    queue.pause("pause")
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    fleet.version = 4
    queue.resume()
    assert await ticket == Dropped("stale: based on version 1, state is 4")
    assert fleet.starts == []
    await queue.close()


async def test_a_replan_may_turn_a_removal_into_a_restore() -> None:
    fleet = world()

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed | Replan:
        if action.key == "flip" and not action.restores:
            return Replan(fleet.action("flip", restores=True), restores=True)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    queue.pause("pause")
    queue.submit("a", fleet.action("a"), based_on=1)
    flip = queue.submit("flip", fleet.action("flip", takes_out=1), based_on=1, takes_out=1)
    queue.resume()
    await queue.drain()
    outcome = flip.outcome
    assert isinstance(outcome, Superseded)
    assert outcome.by.restores
    assert outcome.by.takes_out == 0
    assert outcome.by.outcome == Done(None)
    await queue.close()


async def test_an_async_revalidate_is_awaited() -> None:
    fleet = world()

    async def revalidate(action: Ticket[Any], state: ReleaseState) -> Drop | Proceed:
        await fleet.clock.sleep(0.5)
        return Drop("async no") if action.key == "no" else Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    no = queue.submit("no", fleet.action("no"), based_on=1)
    yes = queue.submit("yes", fleet.action("yes"), based_on=1)
    await queue.drain()
    assert (no.outcome, yes.outcome) == (Dropped("async no"), Done(None))
    assert fleet.starts[0].time == 1.0  # two answers of 0.5 s each came first
    await queue.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("raise", "revalidate raised Boom: no verdict"),
        ("hang", "revalidate gave no answer within 2 s"),
        ("garbage", "revalidate answered 'yes', not Proceed, Replan or Drop"),
        ("timeout", "revalidate raised TimeoutError: its own"),
        ("cancelled", "revalidate raised CancelledError"),
        ("bad replan", "revalidate raised ArgumentValueError: Replan.takes_out must be"),
    ],
)
async def test_a_revalidate_that_fails_drops_the_action_with_the_reason(
    answer: str, reason: str
) -> None:
    fleet = world(ReleaseOptions(revalidate_timeout=2.0, batch=10, ramp_start=10))

    async def revalidate(action: Ticket[Any], state: ReleaseState) -> Any:
        if action.key == "ok":
            return Proceed()
        if answer == "raise":
            raise Boom("no verdict")
        if answer == "hang":
            await fleet.clock.sleep(3600.0)
        if answer == "timeout":
            raise TimeoutError("its own")
        if answer == "cancelled":
            raise asyncio.CancelledError()
        if answer == "bad replan":
            return Replan(fleet.action("k"), takes_out=-1)
        return "yes"

    queue = make_queue(fleet, revalidate=revalidate)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    ok = queue.submit("ok", fleet.action("ok"), based_on=1)
    outcome = await ticket
    assert isinstance(outcome, Dropped)
    assert outcome.reason.startswith(reason)
    assert await ok == Done(None)  # the queue goes on for the others
    assert done_keys(fleet) == ["ok"]
    if answer == "hang":
        assert fleet.clock.monotonic() == 2.0
    await queue.close()


async def test_with_a_callback_every_judgment_has_a_read_of_its_own() -> None:
    fleet = world()
    judged: list[tuple[str, int]] = []

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed | Replan | Drop:
        judged.append((action.key, fleet.reads))
        if action.key == "drop":
            return Drop("no")
        if action.key == "flip" and not action.restores:
            return Replan(fleet.action("flip", restores=True), restores=True)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    queue.pause("pause")
    tickets = [queue.submit(key, fleet.action(key), based_on=1) for key in ("drop", "flip", "go")]
    queue.resume()
    await queue.drain()
    assert tickets[0].outcome == Dropped("no")
    assert judged == [("drop", 1), ("flip", 2), ("flip", 3), ("go", 4)]  # the replan went first
    assert [start.key for start in fleet.starts] == ["flip", "go"]
    await queue.close()


# -- the state at commit time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("raise", "state() raised Boom: store down"),
        ("hang", "state() gave no answer within 1 s"),
        ("garbage", "state() answered {'version': 1}, not a ReleaseState"),
        ("bad state", "state() raised ArgumentValueError: ReleaseState.out_of_service"),
        ("cancelled", "state() raised CancelledError"),
        ("async raise", "state() raised Boom: async store down"),
    ],
)
async def test_no_state_means_no_start_until_it_answers(answer: str, reason: str) -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    failing = True

    def state() -> Any:
        if not failing:
            return fleet.state()
        if answer == "raise":
            raise Boom("store down")
        if answer == "cancelled":
            raise asyncio.CancelledError()
        if answer == "garbage":
            return {"version": 1}
        if answer == "bad state":
            return ReleaseState(1, 1, 2)
        return slow()

    async def slow() -> ReleaseState:
        if answer == "async raise":
            raise Boom("async store down")
        await clock.sleep(3600.0)
        return fleet.state()

    bus, recorder = recorded()
    queue = ReleaseQueue(state, FAST, clock=clock, events=bus)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await clock.sleep(10.0)
    assert fleet.starts == []
    assert ticket.status == "queued"
    [event] = recorder.named("state_unavailable")  # once per outage, not once per read
    assert event.attributes["reason"].startswith(reason)
    failing = False
    assert await ticket == Done(None)
    [recovered] = recorder.named("state_recovered")
    assert recovered.attributes["unavailable_for"] > 0
    await queue.close()


async def test_an_async_state_is_awaited_at_each_pass() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)

    async def state() -> ReleaseState:
        await clock.sleep(0.25)
        return fleet.state()

    queue = ReleaseQueue(state, FAST, clock=clock, events=recorded()[0])
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    assert await ticket == Done(None)
    assert fleet.starts[0].time == 0.25
    await queue.close()


async def test_a_pass_starts_at_most_256_actions_before_it_lets_the_workers_run() -> None:
    options = ReleaseOptions(batch=1000, ramp_start=1000, max_in_flight=1000)
    fleet = world(options)
    queue = make_queue(fleet)
    seen: list[int] = []

    async def run() -> Any:
        seen.append(queue.in_flight)

    for i in range(300):
        queue.submit(f"k{i}", run, based_on=1)
    await settle()  # no virtual time passes
    assert queue.stats.done == 300
    assert (seen[0], seen[256]) == (256, 44)  # 256 committed, then the workers ran them
    assert fleet.reads == 2
    await queue.close()


async def test_the_starts_allowed_at_an_interval_edge_share_one_read() -> None:
    fleet = world(ReleaseOptions(batch=4, ramp_start=4, interval=1.0))
    queue = make_queue(fleet)
    for i in range(12):
        queue.submit(f"d{i}", fleet.action(f"d{i}"), based_on=1)
    await queue.drain()
    assert [start.time for start in fleet.starts] == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert fleet.reads == 3  # one pass, one read, at each edge
    await queue.close()


async def test_an_action_superseded_while_the_state_is_awaited_never_starts() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    reading = asyncio.Event()

    async def state() -> ReleaseState:
        reading.set()
        await clock.sleep(0.5)
        return fleet.state()

    queue = ReleaseQueue(state, FAST, clock=clock)
    old = queue.submit("k", fleet.action("k", result="old"), based_on=1)
    await reading.wait()
    new = queue.submit("k", fleet.action("k", result="new"), based_on=1)
    await clock.sleep(2.0)
    assert new.outcome == Done("new")
    assert old.outcome == Superseded(new)
    assert [start.key for start in fleet.starts] == ["k"]
    assert fleet.violations == []
    await queue.close()


# -- the disruption budget -------------------------------------------------------------------------


async def test_the_budget_holds_and_actions_wait_for_room() -> None:
    options = ReleaseOptions(batch=100, ramp_start=100, max_in_flight=100, budget_share=0.1)
    fleet = world(options, capacity=30, out=1)  # 10% of 30 is 3, and 1 is out already
    queue = make_queue(fleet)
    for i in range(6):
        run = fleet.action(f"d{i}", takes_out=1, seconds=10.0)
        queue.submit(f"d{i}", run, based_on=1, takes_out=1)
    zero = queue.submit("z", fleet.action("z"), based_on=1)
    await fleet.clock.sleep(5.0)
    assert [start.key for start in fleet.starts] == ["d0", "d1"]
    assert queue.units_out == 2
    assert queue.in_flight == 2
    assert zero.status == "queued"  # no overtaking, even by an action that takes nothing out
    await queue.drain()
    # z takes nothing out: it starts as soon as it is first in line
    assert [start.time for start in fleet.starts] == [0.0, 0.0, 10.0, 10.0, 20.0, 20.0, 20.0]
    assert fleet.peak_units == 3
    assert fleet.violations == []
    await queue.close()


async def test_an_action_larger_than_the_whole_budget_is_dropped() -> None:
    options = ReleaseOptions(batch=10, ramp_start=10, budget_share=0.25, budget_units=math.inf)
    fleet = world(options, capacity=8)
    queue = make_queue(fleet)
    big = queue.submit("big", fleet.action("big", takes_out=3), based_on=1, takes_out=3)
    fits = queue.submit("fits", fleet.action("fits", takes_out=2), based_on=1, takes_out=2)
    assert await big == Dropped(
        "over budget: takes out 3 units, the whole budget is 2 (budget_share 0.25 of capacity 8,"
        " budget_units inf)"
    )
    assert await fits == Done(None)
    await queue.close()


async def test_budget_units_bound_the_budget_whatever_the_capacity() -> None:
    options = ReleaseOptions(batch=10, ramp_start=10, budget_share=1.0, budget_units=2)
    fleet = world(options, capacity=1000)
    queue = make_queue(fleet)
    tickets = [
        queue.submit(
            f"d{i}", fleet.action(f"d{i}", takes_out=1, seconds=1.0), based_on=1, takes_out=1
        )
        for i in range(4)
    ]
    big = queue.submit("big", fleet.action("big", takes_out=3), based_on=1, takes_out=3)
    await queue.drain()
    assert [start.time for start in fleet.starts] == [0.0, 0.0, 1.0, 1.0]
    assert all(ticket.outcome == Done(None) for ticket in tickets)
    assert big.outcome == Dropped(
        "over budget: takes out 3 units, the whole budget is 2 (budget_share 1 of capacity 1000,"
        " budget_units 2)"
    )
    await queue.close()


async def test_restores_pass_a_full_budget() -> None:
    options = ReleaseOptions(batch=10, ramp_start=10, budget_share=0.1)
    fleet = world(options, capacity=10, out=1)  # the budget of 1 is taken
    queue = make_queue(fleet)
    drain = queue.submit("d", fleet.action("d", takes_out=1), based_on=1, takes_out=1)
    restore = queue.submit("r", fleet.action("r", restores=True), based_on=1, restores=True)
    assert await restore == Done(None)
    await fleet.clock.sleep(3.0)
    assert drain.status == "queued"
    fleet.out = 0  # the restore brought the engine back
    assert await drain == Done(None)
    assert fleet.violations == []
    await queue.close()


async def test_without_a_callback_an_action_over_the_whole_budget_does_not_end_the_pass() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, budget_units=2))
    queue = make_queue(fleet)
    queue.pause("pause")
    huge = queue.submit("huge", fleet.action("huge", takes_out=3), based_on=1, takes_out=3)
    queue.submit("ok", fleet.action("ok"), based_on=1)
    queue.resume()
    await queue.drain()
    assert isinstance(huge.outcome, Dropped)
    assert [start.key for start in fleet.starts] == ["ok"]
    assert fleet.reads == 1  # one pass: the drop, then the start
    await queue.close()


# -- the health brake ---------------------------------------------------------------------------


async def test_the_brake_slows_then_halts_as_health_falls_and_releases_when_it_returns() -> None:
    options = ReleaseOptions(
        batch=2, ramp_start=2, interval=1.0, slow_above=0.2, slow_factor=10.0, halt_above=0.4
    )
    fleet = world(options)
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    for i in range(12):
        queue.submit(f"d{i}", fleet.action(f"d{i}", takes_out=1), based_on=1, takes_out=1)
    await fleet.clock.sleep(1.5)
    assert [start.time for start in fleet.starts] == [0.0, 0.0, 1.0, 1.0]
    assert queue.brake is Brake.OFF
    fleet.unhealthy = 0.3  # slowed: 2 starts per 10 s
    await fleet.clock.sleep(20.0)  # t = 21.5
    assert [start.time for start in fleet.starts][4:] == [11.0, 11.0, 21.0, 21.0]
    assert queue.brake is Brake.SLOWED
    [slowed] = recorder.named("slowed")
    assert slowed.attributes == {"unhealthy": 0.3, "threshold": 0.2, "factor": 10.0}
    fleet.unhealthy = 0.5  # halted
    queue.submit("r", fleet.action("r", restores=True), based_on=1, restores=True)
    await fleet.clock.sleep(40.0)  # t = 61.5
    assert queue.brake is Brake.HALTED
    assert [start.key for start in fleet.starts][8:] == ["r"]  # restores still go
    [halted] = recorder.named("halted")
    assert halted.attributes == {"unhealthy": 0.5, "threshold": 0.4}
    assert queue.stats.halts == 1
    fleet.unhealthy = 0.0
    await queue.drain()
    [released] = recorder.named("released")
    assert released.attributes["unhealthy"] == 0.0
    # slowed at the read of t=2, released at the first read (once an interval) after t=61.5
    assert released.attributes["braked_for"] == 60.0
    assert [e for e in names(recorder) if e in ("slowed", "halted", "released")] == [
        "slowed",
        "halted",
        "released",
    ]
    assert fleet.violations == []
    assert queue.ramp == 2
    await queue.close()


async def test_out_of_a_halt_the_ramp_starts_again() -> None:
    options = ReleaseOptions(batch=8, ramp_start=1, interval=1.0, halt_above=0.3, slow_above=0.3)
    fleet = world(options)
    queue = make_queue(fleet)
    for i in range(40):
        queue.submit(f"d{i}", fleet.action(f"d{i}"), based_on=1)
    await fleet.clock.sleep(5.5)
    assert queue.ramp == 8
    fleet.unhealthy = 0.9
    await fleet.clock.sleep(3.0)
    fleet.unhealthy = 0.0
    await fleet.clock.sleep(1.0)  # a halted queue reads the state once an interval
    assert queue.brake is Brake.OFF
    assert queue.ramp <= 2
    await queue.close()


async def test_only_a_halt_restarts_the_ramp_and_health_at_slow_above_releases_a_slowing() -> None:
    options = ReleaseOptions(batch=8, ramp_start=1, interval=1.0, slow_above=0.3, halt_above=0.6)
    fleet = world(options)
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    for i in range(40):
        queue.submit(f"d{i}", fleet.action(f"d{i}"), based_on=1)
    await fleet.clock.sleep(5.5)
    assert queue.ramp == 8
    assert len(fleet.starts) == 38
    fleet.unhealthy = 0.5  # slowed at the read of t=6
    await fleet.clock.sleep(1.0)
    assert queue.brake is Brake.SLOWED
    assert queue.ramp == 8  # slowing keeps the ramp
    fleet.unhealthy = 0.3  # exactly slow_above: not slowed any more
    await fleet.clock.sleep(9.0)  # the slowed window opens at t=15 (8 starts at t=5)
    assert queue.brake is Brake.OFF
    assert queue.ramp == 8  # a release from a slowing keeps the ramp too
    assert [e for e in names(recorder) if e in ("slowed", "halted", "released")] == [
        "slowed",
        "released",
    ]
    assert [start.time for start in fleet.starts][38:] == [15.0, 15.0]
    assert fleet.violations == []
    await queue.close()


async def test_successes_under_the_brake_do_not_grow_the_ramp() -> None:
    options = ReleaseOptions(
        batch=8, ramp_start=1, interval=1.0, slow_above=0.2, slow_factor=2.0, halt_above=0.9
    )
    fleet = world(options, unhealthy=0.5)
    queue = make_queue(fleet)
    for i in range(6):
        queue.submit(f"d{i}", fleet.action(f"d{i}"), based_on=1)
    await queue.drain()
    assert queue.brake is Brake.SLOWED
    assert queue.ramp == 1
    assert [start.time for start in fleet.starts] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    await queue.close()


async def test_a_halted_queue_waits_its_interval_even_when_an_action_ends() -> None:
    options = ReleaseOptions(batch=4, ramp_start=4, interval=1.0, slow_above=0.3, halt_above=0.3)
    fleet = world(options, unhealthy=0.5)
    queue = make_queue(fleet)
    restore = queue.submit(
        "r", fleet.action("r", restores=True, seconds=0.5), based_on=1, restores=True
    )
    removal = queue.submit("d", fleet.action("d", takes_out=1), based_on=1, takes_out=1)
    await fleet.clock.sleep(0.25)
    assert queue.brake is Brake.HALTED
    fleet.unhealthy = 0.0
    await restore
    await removal
    assert [(start.key, start.time) for start in fleet.starts] == [("r", 0.0), ("d", 1.0)]
    assert fleet.reads == 2  # at 0 and 1: the restore's end at 0.5 woke nothing
    await queue.close()


async def test_under_a_halt_a_restore_parked_behind_its_key_starts_when_the_key_ends() -> None:
    options = ReleaseOptions(batch=4, ramp_start=4, interval=1.0, slow_above=0.3, halt_above=0.3)
    fleet = world(options, unhealthy=0.5)
    queue = make_queue(fleet)
    first = queue.submit(
        "k", fleet.action("k", restores=True, seconds=0.5), based_on=1, restores=True
    )
    queue.submit("d", fleet.action("d", takes_out=1), based_on=1, takes_out=1)  # halted
    await fleet.clock.sleep(0.25)
    assert queue.brake is Brake.HALTED
    second = queue.submit("k", fleet.action("k", restores=True), based_on=1, restores=True)
    assert second.status == "parked"
    await fleet.clock.sleep(0.5)
    assert first.outcome == Done(None)
    assert second.outcome == Done(None)
    assert [(start.key, start.time) for start in fleet.starts] == [("k", 0.0), ("k", 0.5)]
    await queue.close()


async def test_a_removal_waits_for_the_slowed_window_from_the_read_that_slowed_the_queue() -> None:
    options = ReleaseOptions(
        batch=1, ramp_start=1, interval=1.0, slow_above=0.2, slow_factor=1.5, halt_above=0.9
    )
    fleet = world(options)
    queue = make_queue(fleet)
    queue.submit("a", fleet.action("a"), based_on=1)
    queue.submit("b", fleet.action("b"), based_on=1)
    await fleet.clock.sleep(0.5)
    fleet.unhealthy = 0.5  # slowed at the read of t=1: b's window is 1.5 s from a's start
    await queue.drain()
    assert queue.brake is Brake.SLOWED
    assert [(start.key, start.time) for start in fleet.starts] == [("a", 0.0), ("b", 1.5)]
    await queue.close()


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


# -- drain, close, cancellation -----------------------------------------------------------------


async def test_close_drops_what_waits_lets_running_actions_end_and_refuses_more() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, max_in_flight=1))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    running = queue.submit("run", fleet.action("run", seconds=5.0, result="ran"), based_on=1)
    await settle()
    waiting = [queue.submit(f"w{i}", fleet.action(f"w{i}"), based_on=1) for i in range(3)]
    parked = queue.submit("run", fleet.action("run"), based_on=1)
    restore = queue.submit("r", fleet.action("r", restores=True), based_on=1, restores=True)
    await settle()
    assert (running.status, parked.status, restore.status) == ("running", "parked", "queued")
    left = await queue.close()
    assert left == (restore, *waiting, parked)
    assert all(ticket.outcome == Dropped("closed") for ticket in left)
    assert running.outcome == Done("ran")  # close waited for it
    assert fleet.clock.monotonic() == 5.0
    with pytest.raises(QueueClosedError, match=r"^the release queue is closed: submit\('x'\) "):
        queue.submit("x", noop, based_on=1)
    assert await queue.close() == ()
    [closed] = recorder.named("closed")
    assert closed.attributes == {"left": 5, "cancelled": 0}
    assert queue.closed
    assert no_tasks_left()
    await queue.drain()  # nothing left: returns at once


async def test_close_with_cancel_cancels_running_actions_and_leaves_no_task() -> None:
    fleet = world(ReleaseOptions(batch=10, ramp_start=10, max_in_flight=10))
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    running = [
        queue.submit(f"r{i}", fleet.action(f"r{i}", seconds=100.0), based_on=1) for i in range(3)
    ]
    await settle()
    assert [ticket.status for ticket in running] == ["running"] * 3
    assert await queue.close(cancel=True) == ()
    for ticket in running:
        outcome = ticket.outcome
        assert isinstance(outcome, Failed)
        assert isinstance(outcome.error, asyncio.CancelledError)
    assert [event.attributes["reason"] for event in recorder.named("failed")] == ["cancelled"] * 3
    assert recorder.named("closed")[0].attributes == {"left": 0, "cancelled": 3}
    assert queue.stats.failed == 3
    assert queue.in_flight == 0
    assert queue.units_out == 0
    assert fleet.clock.monotonic() == 0.0
    assert no_tasks_left()


async def test_close_with_cancel_drops_actions_committed_but_not_yet_started() -> None:
    fleet = world()
    queue = make_queue(fleet)
    tickets = [queue.submit(f"k{i}", fleet.action(f"k{i}"), based_on=1) for i in range(3)]
    await asyncio.sleep(0)  # the scheduler commits them; no worker has run yet
    assert [ticket.status for ticket in tickets] == ["starting"] * 3
    left = await queue.close(cancel=True)
    assert left == tuple(tickets)
    assert all(ticket.outcome == Dropped("closed") for ticket in tickets)
    assert fleet.starts == []
    assert queue.in_flight == 0
    assert no_tasks_left()


async def test_a_failure_after_close_is_not_retried() -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    ticket = queue.submit("k", fleet.action("k", seconds=1.0, fail=1), based_on=1)
    await settle()
    await queue.close()
    outcome = ticket.outcome
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, Boom)
    assert ticket.runs == 1
    [failed] = recorder.named("failed", "release")
    assert failed.attributes["reason"] == "closed"


async def test_the_async_context_closes_and_cancels_when_the_block_raises() -> None:
    fleet = world()
    async with make_queue(fleet) as queue:
        ok = queue.submit("ok", fleet.action("ok"), based_on=1)
        await queue.drain()
    assert queue.closed
    assert ok.outcome == Done(None)
    started: list[Ticket[Any]] = []

    async def block() -> None:
        async with make_queue(fleet) as queue:
            started.append(queue.submit("slow", fleet.action("slow", seconds=100.0), based_on=1))
            await settle()
            raise Boom("block failed")

    with pytest.raises(Boom):
        await block()
    [slow] = started
    outcome = slow.outcome
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, asyncio.CancelledError)
    assert no_tasks_left()


async def test_a_cancelled_waiter_changes_nothing_for_the_action_or_other_waiters() -> None:
    fleet = world()
    queue = make_queue(fleet)
    ticket = queue.submit("k", fleet.action("k", seconds=10.0, result=7), based_on=1)
    impatient = asyncio.get_running_loop().create_task(ticket._wait())
    patient = asyncio.get_running_loop().create_task(ticket._wait())
    drainer = asyncio.get_running_loop().create_task(queue.drain())
    await fleet.clock.sleep(1.0)
    impatient.cancel()
    drainer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    with pytest.raises(asyncio.CancelledError):
        await drainer
    assert await patient == Done(7)
    assert ticket.outcome == Done(7)
    await queue.drain()
    await queue.close()


async def test_close_can_be_called_from_inside_an_action() -> None:
    fleet = world()
    queue = make_queue(fleet)
    closed: list[tuple[Ticket[Any], ...]] = []

    async def closer() -> str:
        closed.append(await queue.close())
        return "closed it"

    waiting = queue.submit("later", fleet.action("later", seconds=0), based_on=1)
    queue.pause("hold")
    ticket = queue.submit("closer", closer, based_on=1, restores=True)
    queue.resume()
    assert await ticket == Done("closed it")
    assert closed == [(waiting,)] or waiting.outcome == Done(None)
    assert queue.closed
    await queue.close()
    assert no_tasks_left()


async def test_close_can_be_called_from_state() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    queue: ReleaseQueue | None = None
    closing: list[asyncio.Task[Any]] = []

    def state() -> ReleaseState:
        assert queue is not None
        closing.append(asyncio.get_running_loop().create_task(queue.close()))
        return fleet.state()

    queue = ReleaseQueue(state, FAST, clock=clock, events=recorded()[0])
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await asyncio.gather(*closing) if closing else await asyncio.sleep(0)
    await asyncio.gather(*closing)
    assert ticket.done
    assert queue.closed
    await queue.close()


async def test_stats_account_for_every_ticket() -> None:
    fleet = world(ReleaseOptions(max_attempts=2, backoff_jitter=0.0, batch=10, ramp_start=10))
    queue = make_queue(fleet)
    queue.pause("p")
    queue.submit("a", fleet.action("a"), based_on=1)
    queue.submit("a", fleet.action("a", fail=5), based_on=1)
    queue.submit("b", fleet.action("b", based_on=0), based_on=0)
    queue.submit("c", fleet.action("c", fail=1), based_on=1)
    queue.resume()
    await queue.drain()
    stats = queue.stats
    assert (stats.submitted, stats.done, stats.failed, stats.superseded, stats.dropped) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert stats.submitted + stats.replanned == (
        stats.done + stats.failed + stats.superseded + stats.dropped
    )
    assert (stats.started, stats.retries) == (4, 2)
    await queue.close()


async def test_a_ticket_tells_what_it_is() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("p")
    ticket = queue.submit("engine-7", fleet.action("engine-7"), based_on=4, takes_out=2)
    fleet.version = 4
    assert (ticket.key, ticket.based_on, ticket.takes_out, ticket.restores) == (
        "engine-7",
        4,
        2,
        False,
    )
    assert ticket.submitted_at == 0.0
    assert ticket.outcome is None
    assert not ticket.done
    assert ticket.attempts == ()
    assert ticket.runs == 0
    assert repr(ticket) == "Ticket(key='engine-7', based_on=4, takes_out=2, status=queued)"
    long = queue.submit("x" * 100, fleet.action("long"), based_on=4)
    assert repr(long) == f"Ticket(key='{'x' * 40}', based_on=4, takes_out=0, status=queued)"
    assert repr(queue) == (
        "ReleaseQueue(queued=2, in_flight=0, paused=True, brake=off, closed=False)"
    )
    queue.resume()
    await queue.drain()
    assert ticket.outcome == Done(None)
    await queue.close()


async def test_a_broken_scheduler_closes_the_queue_and_drops_every_action_with_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import resilient.release._scheduler as scheduler_module

    def broken(options: ReleaseOptions, state: ReleaseState) -> float:
        raise RuntimeError("a bug")

    monkeypatch.setattr(scheduler_module, "budget_limit", broken)
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    tickets = [queue.submit(f"k{i}", fleet.action(f"k{i}"), based_on=1) for i in range(2)]
    assert await tickets[0] == Dropped("closed: the release queue failed (RuntimeError: a bug)")
    assert tickets[1].outcome == tickets[0].outcome
    assert queue.closed is True
    assert recorder.named("closed")[0].attributes == {"left": 2, "cancelled": 0}
    [logged] = [record for record in caplog.records if record.name == "resilient.release"]
    assert (logged.levelname, logged.getMessage()) == (
        "ERROR",
        "the release queue's scheduler failed; the queue is closed",
    )
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], RuntimeError)
    with pytest.raises(QueueClosedError):
        queue.submit("k", noop, based_on=1)
    await queue.close()


@pytest.mark.parametrize("restores", [False, True], ids=["same lane", "other lane"])
async def test_an_action_superseded_while_its_revalidation_is_awaited_never_starts(
    restores: bool,
) -> None:
    fleet = world()
    queue: ReleaseQueue | None = None
    newer: list[Ticket[Any]] = []

    async def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed:
        assert queue is not None
        if action.based_on == 1:
            await fleet.clock.sleep(0.5)
            run = fleet.action("k", restores=restores, based_on=2, result="newer")
            newer.append(queue.submit("k", run, based_on=2, restores=restores))
            await fleet.clock.sleep(0.5)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    old = queue.submit("k", fleet.action("k", result="old"), based_on=1)
    assert await old == Superseded(newer[0])
    assert await newer[0] == Done("newer")
    assert [start.based_on for start in fleet.starts] == [2]
    await queue.close()


async def test_a_replanned_action_waiting_for_room_is_superseded_by_a_newer_submit() -> None:
    options = ReleaseOptions(batch=10, ramp_start=10, budget_share=0.1)
    fleet = world(options, capacity=10, out=1)  # no room

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed | Replan:
        if action.based_on < state.version:
            return Replan(fleet.action(action.key, takes_out=1, based_on=2), takes_out=1)
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    queue.pause("p")
    old = queue.submit("k", fleet.action("k", takes_out=1), based_on=1, takes_out=1)
    fleet.version = 2
    queue.resume()
    await fleet.clock.sleep(2.5)
    replanned = old.outcome
    assert isinstance(replanned, Superseded)
    assert replanned.by.status == "queued"  # waits for room
    assert queue.queued == 1
    newest = queue.submit("k", fleet.action("k", result="newest", based_on=2), based_on=2)
    assert replanned.by.outcome == Superseded(newest)
    assert queue.queued == 1
    assert await newest == Done("newest")  # it takes nothing out: no room needed
    await queue.close()


async def test_every_pause_is_counted() -> None:
    queue = make_queue(world())
    queue.pause("one")
    queue.pause("one, told again")  # still the same pause
    queue.resume()
    queue.pause("two")
    queue.resume()
    assert queue.stats.pauses == 2
    await queue.close()


async def test_a_parked_action_put_back_in_line_is_queued_and_closed_once() -> None:
    fleet = world(ReleaseOptions(batch=1, ramp_start=1, interval=100.0))
    queue = make_queue(fleet)
    running = queue.submit("k", fleet.action("k", seconds=1.0), based_on=1)
    await settle()
    parked = queue.submit("k", fleet.action("k"), based_on=1)
    assert parked.status == "parked"
    assert await running == Done(None)
    await settle()
    assert parked.status == "queued"  # back in line, waiting for the window
    assert await queue.close() == (parked,)
    assert parked.outcome == Dropped("closed")


async def test_every_replan_is_counted() -> None:
    fleet = world()

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Proceed | Replan:
        if action.based_on < state.version:
            return Replan(fleet.action(action.key, based_on=state.version))
        return Proceed()

    queue = make_queue(fleet, revalidate=revalidate)
    queue.pause("p")
    for key in ("a", "b"):
        queue.submit(key, fleet.action(key), based_on=1)
    fleet.version = 2
    queue.resume()
    await queue.drain()
    stats = queue.stats
    assert (stats.replanned, stats.superseded, stats.done) == (2, 2, 2)
    await queue.close()


async def test_each_outage_of_the_state_is_told_with_its_length() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    down = True

    def state() -> ReleaseState:
        if down:
            raise Boom("down")
        return fleet.state()

    bus, recorder = recorded()
    queue = ReleaseQueue(state, FAST, clock=clock, events=bus)
    assert queue._checks.unavailable is False
    for outage in range(2):
        down = True
        ticket = queue.submit(f"k{outage}", fleet.action(f"k{outage}"), based_on=1)
        await clock.sleep(2.5)
        assert queue._checks.unavailable is True
        down = False
        assert await ticket == Done(None)
        assert queue._checks.unavailable is False
    assert [event.name for event in recorder.events if "state" in event.name] == [
        "state_unavailable",
        "state_recovered",
        "state_unavailable",
        "state_recovered",
    ]
    lengths = [e.attributes["unavailable_for"] for e in recorder.named("state_recovered")]
    assert lengths == [3.0, 3.0]  # down at the read of 0 and 2.5, read again 1 s later each
    await queue.close()


async def test_the_brake_thresholds_are_strict_and_slowing_keeps_the_ramp() -> None:
    options = ReleaseOptions(batch=4, ramp_start=4, slow_above=0.3, halt_above=0.6)
    fleet = world(options, unhealthy=0.3)  # at slow_above: not slowed
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    assert await queue.submit("a", fleet.action("a"), based_on=1) == Done(None)
    assert queue.brake is Brake.OFF
    fleet.unhealthy = 0.6  # at halt_above: slowed, not halted
    assert await queue.submit("b", fleet.action("b"), based_on=1) == Done(None)
    assert queue.brake is Brake.SLOWED
    assert queue.ramp == 4  # slowing does not restart the ramp
    for unhealthy in (0.9, 0.0, 0.9, 0.0):
        fleet.unhealthy = unhealthy
        queue.submit(f"k{unhealthy}", fleet.action(f"k{unhealthy}"), based_on=1)  # a halt holds it
        await fleet.clock.sleep(1.0)
    assert queue.stats.halts == 2
    assert [e.name for e in recorder.events if e.name in ("slowed", "halted", "released")] == [
        "slowed",
        "halted",
        "released",
        "halted",
        "released",
    ]
    await queue.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("raise", "revalidate raised Boom: sync no"),
        ("garbage", "revalidate answered 3, not Proceed, Replan or Drop"),
    ],
)
async def test_a_sync_revalidate_that_fails_drops_the_action(answer: str, reason: str) -> None:
    fleet = world()

    def revalidate(action: Ticket[Any], state: ReleaseState) -> Any:
        if action.key == "ok":
            return Proceed()
        if answer == "raise":
            raise Boom("sync no")
        return 3

    queue = make_queue(fleet, revalidate=revalidate)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    assert await ticket == Dropped(reason)
    assert await queue.submit("ok", fleet.action("ok"), based_on=1) == Done(None)
    await queue.close()


async def test_age_is_counted_from_the_submit_and_max_age_itself_is_not_too_old() -> None:
    fleet = world(ReleaseOptions(max_age=10.0, batch=10, ramp_start=10))
    queue = make_queue(fleet, revalidate=lambda action, state: Proceed())
    await fleet.clock.sleep(50.0)
    queue.pause("p")
    edge = queue.submit("edge", fleet.action("edge"), based_on=1)
    await fleet.clock.sleep(5.0)
    old = queue.submit("old", fleet.action("old"), based_on=1)
    await fleet.clock.sleep(5.0)  # edge is exactly 10 s old
    queue.resume()
    assert await edge == Done(None)
    assert await old == Done(None)
    queue.pause("p")
    late = queue.submit("late", fleet.action("late"), based_on=1)
    await fleet.clock.sleep(12.5)
    queue.resume()
    assert await late == Dropped("expired: 12.5 s old, max_age 10 s")
    await queue.close()


async def test_a_close_while_the_state_is_awaited_is_no_outage() -> None:
    clock = VirtualClock(autojump=True)
    fleet = World(clock, FAST)
    reading = asyncio.Event()

    async def state() -> ReleaseState:
        reading.set()
        await clock.sleep(0.5)
        return fleet.state()

    bus, recorder = recorded()
    queue = ReleaseQueue(state, FAST, clock=clock, events=bus)
    ticket = queue.submit("k", fleet.action("k"), based_on=1)
    await reading.wait()
    assert await queue.close() == (ticket,)
    assert clock.monotonic() == 0.0
    assert recorder.named("state_unavailable") == []
    assert no_tasks_left()


async def test_a_resume_tells_how_long_the_pause_lasted_from_when_it_began() -> None:
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    await fleet.clock.sleep(5.0)
    queue.pause("p")
    await fleet.clock.sleep(3.0)
    queue.resume()
    assert [dict(event.attributes) for event in recorder.named("resumed", "release")] == [
        {"paused_for": 3.0, "queued": 0}
    ]
    await queue.close()
