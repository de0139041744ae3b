"""Scenario ``queued-actions-burst`` judged by the engine, and its example service run by hand.

The scenario runs at its full length (11 s of load per arm, about 30 s in all with both
topologies of 8 engines, a placement service and 9 proxies), both arms on the same schedule:
the scheduler that starts every queued move at once must reproduce the incident, the
example's ReleaseQueue must keep the hypothesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import aiohttp
import numpy as np
import pytest

from chaos._proxy_process import run_toxiproxy
from chaos.engine import run_scenario
from chaos.scenarios import load_scenarios
from chaos.scenarios.queued_actions_burst import (
    BUDGET_SHARE,
    ENGINES,
    EXAMPLE,
    MIN_SUCCESS,
    MOVED,
    RATE,
    STAYING,
)
from tests.chaos._arm_report import explain, slo_values
from tests.chaos._example_process import example_service

RETRIES = 4
"""Attempts beyond the first for an arm whose measurement the harness cannot trust (a busy
machine), as ``chaos run`` gives by default."""

ENGINE_RATE = 60
"""Requests per second one engine serves (3 slots, 50 ms each; the scenario checks the
example's figures)."""

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_naive_takes_six_engines_out_at_once_and_the_release_queue_keeps_six_in() -> None:
    scenario = load_scenarios()["queued-actions-burst"]
    async with run_toxiproxy(None, seed=1) as control:
        before = set(await control.proxies())
        result = await run_scenario(scenario, control, seed=1, retries=RETRIES)
        assert set(await control.proxies()) == before
    naive, guarded = result.arms
    assert (naive.name, naive.verdict, naive.error) == ("naive", "reproduced", None), explain(naive)
    assert (guarded.name, guarded.verdict, guarded.error) == ("guarded", "mitigated", None), (
        explain(guarded)
    )
    assert naive.load is not None
    assert guarded.load is not None
    assert np.array_equal(naive.load.scheduled, guarded.load.scheduled)

    naive_values, guarded_values = slo_values(naive), slo_values(guarded)
    assert naive_values["capacity-in-service"] == ENGINES - len(MOVED)
    success = naive_values["success"]
    assert success is not None
    assert success < MIN_SUCCESS
    assert naive_values["acted-on-stale-state"] == len(STAYING)
    assert naive.load.counts().get("overloaded", 0) > 0
    together = [note for note in naive.notes if f"{len(MOVED)} moves at once (stale" in note]
    assert len(together) == len(MOVED), naive.notes

    floor = guarded_values["capacity-in-service"]
    assert floor is not None
    assert floor >= ENGINES * (1 - BUDGET_SHARE)
    assert floor < ENGINES, "no move ever ran: the release was not exercised"
    success = guarded_values["success"]
    assert success is not None
    assert success >= MIN_SUCCESS
    assert guarded_values["no-unneeded-move"] == 0
    dropped = [note for note in guarded.notes if note.startswith("dropped ")]
    assert sorted(note.split(":")[0] for note in dropped) == [f"dropped {e}" for e in STAYING]
    assert all(": stale: computed from state version" in note for note in dropped)
    (stats,) = [note for note in guarded.notes if note.startswith("release queue at the end")]
    assert f"dropped={len(STAYING)}" in stats
    assert f"done={len(MOVED) - len(STAYING)}" in stats
    assert "failed=0" in stats
    for arm in result.arms:
        steps = [f.description for f in arm.faults if f.kind == "ArmStep"]
        assert len(steps) == 2
        assert steps[0].startswith("new plan")
        assert steps[1].startswith("plan revised")
        (premise,) = arm.premises
        assert premise.name == "loop-not-stalled"
        assert premise.value is not None


def test_six_engines_serve_the_load_with_room_to_spare_and_two_cannot() -> None:
    """Why the budget keeps the service whole and the burst does not: 6 engines at most 60 %
    busy, 2 engines at least 1.5 times over."""
    assert RATE / (ENGINE_RATE * ENGINES * (1 - BUDGET_SHARE)) <= 0.6
    assert RATE / (ENGINE_RATE * (ENGINES - len(MOVED))) >= 1.5


# -- the example service, by hand ------------------------------------------------------------


async def _fleet(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
    async with session.get(base + "fleet") as response:
        assert response.status == 200
        page: dict[str, object] = await response.json()
        return page


async def _wait_for(session: aiohttp.ClientSession, base: str, key: str, wanted: object) -> None:
    for _ in range(100):
        if (await _fleet(session, base))[key] == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/fleet {key} never became {wanted!r}: {await _fleet(session, base)}")


async def test_example_service_serves_and_holds_moves_while_placement_is_down() -> None:
    service = example_service(EXAMPLE, ready_path="fleet")
    async with service as base, aiohttp.ClientSession() as session:
        engines = set()
        for _ in range(16):
            async with session.get(base) as response:
                assert response.status == 200
                engines.add(response.headers["X-Engine"])
        assert engines == {f"engine-{i}" for i in range(ENGINES)}  # round-robin over all

        async with session.post(base + "placement/down") as response:
            assert response.status == 200
        await _wait_for(session, base, "breaker", "open")
        async with session.post(base + "plan?engines=engine-0,engine-1&generation=2") as r:
            assert r.status == 200
        await asyncio.sleep(0.5)
        page = await _fleet(session, base)
        assert page["moving"] == []  # paused: the moves wait in the queue
        assert "queued=2" in str(page["queue"])

        async with session.post(base + "placement/up") as response:
            assert response.status == 200
        await _wait_for(session, base, "breaker", "closed")
        await _wait_for(session, base, "moving", ["engine-0"])  # slow start: one move first
        async with session.get(base) as response:
            assert response.status == 200
            assert response.headers["X-Engine"] != "engine-0"
        generations = {f"engine-{i}": 2 if i < 2 else 1 for i in range(ENGINES)}
        await _wait_for(session, base, "generation", generations)
        await _wait_for(session, base, "in_service", sorted(f"engine-{i}" for i in range(ENGINES)))
        async with session.post(base + "plan?engines=nobody&generation=2") as response:
            assert response.status == 400


# -- the example's guarded scheduler, in virtual time ---------------------------------------


async def test_the_guarded_scheduler_drops_stale_moves_and_keeps_the_budget_in_virtual_time() -> (
    None
):
    """The scenario's story without a network: 6 moves queued while the breaker is open, the
    plan revised (2 stay), the breaker closed: the 2 stale moves are dropped with their
    reasons, the 4 others replanned and run, never more than 2 engines out at once."""
    from chaos.scenarios._examples import load_example
    from resilient import EventBus, EventRecorder, VirtualClock
    from resilient.breaker import CircuitBreaker
    from resilient.release import RELEASE_DROPPED

    module = load_example("queued-actions-burst")
    clock = VirtualClock(autojump=True)
    events, recorder = EventBus(), EventRecorder()
    events.subscribe(recorder)
    fleet = module.Fleet({f"engine-{i}": f"http://engine-{i}/" for i in range(ENGINES)})
    out: list[int] = []

    async def watched(engine: str) -> None:
        out.append(ENGINES - len(fleet.in_service))

    breaker = CircuitBreaker("scheduler", module.BREAKER_OPTIONS, clock=clock, events=events)
    run = functools.partial(
        module._run_move, fleet, reassign_time=2.0, leave=watched, rejoin=watched, clock=clock
    )
    scheduler = module.GuardedScheduler(
        fleet, "http://placement/", None, breaker, run=run, clock=clock, events=events
    )
    manager = module.CapacityManager(fleet, scheduler)

    async def down() -> None:
        raise ConnectionRefusedError("placement down")

    async def up() -> None:
        return None

    for _ in range(module.BREAKER_OPTIONS.failure_threshold):
        with contextlib.suppress(ConnectionRefusedError):
            await breaker.call(down)
    assert breaker.state.value == "open"
    frozen = scheduler.view.version
    fleet.set_plan(dict.fromkeys(MOVED, 2))
    manager.tick()
    assert scheduler.queue.queued == len(MOVED)
    fleet.set_plan(dict.fromkeys(STAYING, 1))
    manager.tick()  # adds nothing, takes nothing back
    assert scheduler.queue.queued == len(MOVED)
    await clock.sleep(module.BREAKER_OPTIONS.reset_timeout)
    await breaker.call(up)  # the probe: closed
    await scheduler.queue.drain()

    assert max(out) == int(BUDGET_SHARE * ENGINES)  # 2 engines out at most, and it got there
    assert fleet.generation == {f"engine-{i}": 2 if i < 4 else 1 for i in range(ENGINES)}
    assert fleet.unneeded_moves == 0
    assert sorted(fleet.in_service) == sorted(f"engine-{i}" for i in range(ENGINES))
    drops = {e.attributes["key"]: e.attributes["reason"] for e in recorder.named(RELEASE_DROPPED)}
    assert set(drops) == set(STAYING)
    for engine, reason in drops.items():
        assert reason.startswith(f"stale: computed from state version {frozen}, state is ")
        assert f"keeps {engine} on generation 1" in reason
    stats = scheduler.queue.stats
    assert (stats.done, stats.dropped, stats.failed) == (4, 2, 0)
    await scheduler.aclose()
