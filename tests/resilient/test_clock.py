"""VirtualClock: sleeping costs no real time and wakes in deadline order."""

from __future__ import annotations

import asyncio
import time

import pytest

from resilient.clock import SYSTEM_CLOCK, Clock, VirtualClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert isinstance(VirtualClock(), Clock)


async def test_advance_wakes_sleepers_in_deadline_order_then_fifo() -> None:
    clock = VirtualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.monotonic()}")

    tasks = [
        asyncio.create_task(sleeper("c", 3)),
        asyncio.create_task(sleeper("a", 1)),
        asyncio.create_task(sleeper("b1", 2)),
        asyncio.create_task(sleeper("b2", 2)),
    ]
    await asyncio.sleep(0)
    assert clock.pending == 4
    clock.advance(2)
    await asyncio.gather(*tasks[1:])
    assert woke == ["a@2.0", "b1@2.0", "b2@2.0"]
    assert not tasks[0].done()
    clock.advance(1)
    await tasks[0]
    assert woke[-1] == "c@3.0"


async def test_run_for_lets_woken_tasks_sleep_again_at_each_deadline() -> None:
    clock = VirtualClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            await clock.sleep(0.25)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(ticker())
    await clock.run_for(1.0)
    assert ticks == [0.25, 0.5, 0.75, 1.0]
    assert clock.monotonic() == 1.0
    task.cancel()


async def test_autojump_runs_an_hour_of_sleeps_without_waiting(virtual_clock: VirtualClock) -> None:
    started = time.monotonic()
    for _ in range(60):
        await virtual_clock.sleep(60)
    assert virtual_clock.monotonic() == 3600
    assert time.monotonic() - started < 1.0


async def test_timeouts_race_in_virtual_time(virtual_clock: VirtualClock) -> None:
    async def slow() -> str:
        await virtual_clock.sleep(10)
        return "slow"

    async def fast() -> str:
        await virtual_clock.sleep(1)
        return "fast"

    done, pending = await asyncio.wait(
        [asyncio.create_task(slow()), asyncio.create_task(fast())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert [t.result() for t in done] == ["fast"]
    assert virtual_clock.monotonic() == 1
    for task in pending:
        task.cancel()


async def test_cancelled_sleeper_is_not_pending_and_does_not_move_time() -> None:
    clock = VirtualClock(autojump=True)
    task = asyncio.create_task(clock.sleep(100))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0
    await clock.sleep(1)
    assert clock.monotonic() == 1


def test_advance_rejects_negative_time() -> None:
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        VirtualClock().advance(-1)
