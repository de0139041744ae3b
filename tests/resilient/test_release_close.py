"""ReleaseQueue: drain, close and cancellation.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, QueueClosedError
from resilient.release import (
    Brake,
    Done,
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
    FAST,
    Boom,
    World,
    make_queue,
    no_tasks_left,
    noop,
    recorded,
    settle,
    world,
)

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


async def test_a_second_close_that_cancels_ends_the_running_actions_as_cancelled() -> None:
    """close() waits for running actions; a close(cancel=True) meanwhile cancels them: they
    end as failed with the reason ``cancelled``, not as a failure of their own."""
    fleet = world()
    bus, recorder = recorded()
    queue = make_queue(fleet, events=bus)
    ticket = queue.submit("k", fleet.action("k", seconds=100.0), based_on=1)
    await settle()
    first = asyncio.create_task(queue.close())
    await settle()
    assert not first.done()  # waits for the running action
    assert await queue.close(cancel=True) == ()
    await first
    outcome = await ticket
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, asyncio.CancelledError)
    [failed] = recorder.named("failed")
    assert failed.attributes["reason"] == "cancelled"
    assert no_tasks_left()


async def test_close_names_its_bad_argument() -> None:
    queue = make_queue(world())
    with pytest.raises(ArgumentTypeError, match=r"^ReleaseQueue\.close\(cancel\) must be a bool"):
        await queue.close(cancel="yes")  # type: ignore[arg-type]
    await queue.close()


async def test_the_scheduler_task_is_named_for_the_queue() -> None:
    fleet = world()
    queue = make_queue(fleet)
    queue.pause("hold")
    queue.submit("k", fleet.action("k"), based_on=1)
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "ReleaseQueue.scheduler" in names
    await queue.close()
