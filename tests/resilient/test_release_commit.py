"""ReleaseQueue at commit time: revalidation, and the state read before each start.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.release import (
    Done,
    Drop,
    Dropped,
    Proceed,
    ReleaseOptions,
    ReleaseQueue,
    ReleaseState,
    Replan,
    Superseded,
    Ticket,
)
from tests.resilient.release_world import (
    FAST,
    Boom,
    World,
    done_keys,
    make_queue,
    recorded,
    settle,
    world,
)

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
