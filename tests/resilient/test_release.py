"""ReleaseQueue: its options and state, constructing and submitting, order, coalescing, keys.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.release import (
    DEFAULT_RELEASE_OPTIONS,
    Done,
    Failed,
    ReleaseOptions,
    ReleaseQueue,
    ReleaseState,
    Superseded,
)
from tests.resilient.release_world import (
    done_keys,
    make_queue,
    noop,
    recorded,
    settle,
    world,
)

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
