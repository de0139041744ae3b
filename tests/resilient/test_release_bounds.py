"""ReleaseQueue's bounds on what is out of service: the disruption budget and the health brake.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no real sleep, no
timing assertion. The bounds of every release are checked at each start by the model in
``release_world.py``.
"""

from __future__ import annotations

import math

from resilient.release import (
    Brake,
    Done,
    Dropped,
    ReleaseOptions,
)
from tests.resilient.release_world import (
    make_queue,
    names,
    recorded,
    world,
)

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
