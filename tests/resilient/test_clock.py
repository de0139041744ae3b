"""VirtualClock: sleeping costs no real time and wakes in deadline order."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

import resilient.clock as clock_module
from resilient.clock import SYSTEM_CLOCK, Clock, VirtualClock, _ready_callbacks


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


def test_a_negative_advance_is_refused_in_exact_words() -> None:
    with pytest.raises(ValueError, match="seconds must be >= 0") as raised:
        VirtualClock().advance(-1.5)
    assert str(raised.value) == "seconds must be >= 0, got -1.5"


async def test_a_sleep_of_nothing_only_yields_on_either_clock() -> None:
    clock = VirtualClock()
    for seconds in (0, -1.0):
        # Bounded in real time: a sleep of nothing must not wait (0.5 s is far above a yield).
        await asyncio.wait_for(clock.sleep(seconds), 0.5)
        await asyncio.wait_for(SYSTEM_CLOCK.sleep(seconds), 0.5)
    assert clock.monotonic() == 0.0
    assert clock.pending == 0
    assert clock.next_deadline() is None


def test_each_clock_says_what_it_is() -> None:
    clock = VirtualClock(2.5)
    assert repr(SYSTEM_CLOCK) == "SystemClock()"
    assert repr(clock) == "VirtualClock(now=2.5, pending=0)"


async def test_autojump_waits_until_every_task_is_idle() -> None:
    clock = VirtualClock(autojump=True)
    seen: list[float] = []

    names: set[str] = set()

    async def busy_then_sleep() -> None:
        await asyncio.sleep(0)
        names.update(task.get_name() for task in asyncio.all_tasks())
        for _ in range(30):  # busy for 30 rounds of the loop (autojump waits for up to 64)
            await asyncio.sleep(0)
        seen.append(clock.monotonic())
        await clock.sleep(1.0)
        seen.append(clock.monotonic())

    task = asyncio.ensure_future(busy_then_sleep())
    await clock.sleep(5.0)
    await task
    assert seen == [0.0, 1.0]  # the clock did not jump to 5 while the task was busy
    assert "VirtualClock.autojump" in names


async def test_the_private_ready_queue_the_clock_reads_is_still_a_deque() -> None:
    """VirtualClock reads asyncio's ``BaseEventLoop._ready`` (clock.py says why): on the
    interpreter the suite runs on it must still be the deque it reads."""
    loop = asyncio.get_running_loop()
    assert type(loop._ready) is collections.deque  # type: ignore[attr-defined]
    assert _ready_callbacks(loop) is loop._ready  # type: ignore[attr-defined]


async def test_a_loop_without_a_ready_queue_is_still_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on uvloop: no ``_ready`` to read, so settling yields every round, and the clock
    still waits until every task is idle before it jumps."""

    class Loop:
        pass

    assert _ready_callbacks(Loop()) is None  # type: ignore[arg-type]
    monkeypatch.setattr(clock_module, "_ready_callbacks", lambda loop: None)
    clock = VirtualClock(autojump=True)
    steps: list[tuple[str, float]] = []

    async def busy() -> None:
        for _ in range(40):  # many rounds of work before it sleeps: the clock must wait
            await asyncio.sleep(0)
        steps.append(("busy", clock.monotonic()))

    async def sleeper() -> None:
        await clock.sleep(1.0)
        steps.append(("sleeper", clock.monotonic()))

    await asyncio.gather(sleeper(), busy())
    assert steps == [("busy", 0.0), ("sleeper", 1.0)]


def test_a_ready_queue_that_is_no_deque_is_refused_loudly() -> None:
    class Loop:
        def __init__(self) -> None:
            self._ready: list[object] = []

    expected = r"Loop\._ready, expected a collections\.deque, found list"
    with pytest.raises(RuntimeError, match=expected):
        _ready_callbacks(Loop())  # type: ignore[arg-type]


@pytest.mark.parametrize("busy_rounds", [0, 1, 2, 3])
async def test_autojump_waits_for_a_callback_that_became_ready_while_it_settled(
    busy_rounds: int,
) -> None:
    """A loop callback that comes due between two idle checks (here a real-time timer of 0 s,
    as I/O or ``call_later`` would) runs, and the task it wakes reads the time, before the
    clock jumps: the clock jumps only once it has found the loop idle twice in a row."""
    clock = VirtualClock(autojump=True)
    seen: list[float] = []

    async def woken_by_a_timer() -> None:
        for _ in range(busy_rounds):
            await asyncio.sleep(0)
        due: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0, due.set_result, None)
        await due
        seen.append(clock.monotonic())
        await clock.sleep(1.0)
        seen.append(clock.monotonic())

    async def sleeper() -> None:
        await clock.sleep(5.0)
        seen.append(clock.monotonic())

    await asyncio.gather(woken_by_a_timer(), sleeper())
    assert seen == [0.0, 1.0, 5.0]
