"""Deadlines on the injected clock behave as asyncio.timeout, in virtual time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from resilient._deadline import Deadlines
from resilient.clock import VirtualClock


def watchdogs() -> list[str]:
    """Watchdog tasks still alive (the virtual clock's own autojump task aside)."""
    return [task.get_name() for task in asyncio.all_tasks() if "watchdog" in task.get_name()]


async def test_a_block_that_ends_in_time_is_untouched(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock)
    async with deadlines.within(1.0) as scope:
        await virtual_clock.sleep(0.5)
    assert not scope.expired
    await virtual_clock.sleep(2.0)  # would raise if a cancellation were left behind
    assert virtual_clock.monotonic() == pytest.approx(2.5)
    assert not watchdogs()  # the watchdog ended with the last deadline


async def test_a_block_over_time_raises_timeout_at_the_deadline(
    virtual_clock: VirtualClock,
) -> None:
    deadlines = Deadlines(virtual_clock)
    scope = deadlines.within(0.020)
    cancelled_inside = []

    async def body() -> None:
        async with scope:
            try:
                await virtual_clock.sleep(10.0)
            except asyncio.CancelledError:
                cancelled_inside.append(True)
                raise

    with pytest.raises(TimeoutError):
        await body()
    assert cancelled_inside == [True]
    assert scope.expired
    assert virtual_clock.monotonic() == pytest.approx(0.020)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)


async def test_deadlines_of_different_lengths_each_expire_on_time(
    virtual_clock: VirtualClock,
) -> None:
    deadlines = Deadlines(virtual_clock)
    ended: dict[str, float] = {}

    async def wait(name: str, seconds: float) -> None:
        try:
            async with deadlines.within(seconds):
                await asyncio.Event().wait()
        except TimeoutError:
            ended[name] = virtual_clock.monotonic()

    late = asyncio.create_task(wait("late", 5.0))
    await asyncio.sleep(0)
    early = asyncio.create_task(wait("early", 1.0))  # an earlier deadline, added later
    await asyncio.gather(late, early)
    assert ended == {"early": pytest.approx(1.0), "late": pytest.approx(5.0)}
    await asyncio.sleep(0)
    assert not watchdogs()


async def test_a_cancellation_from_elsewhere_passes_through(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock)
    entered = asyncio.Event()

    async def body() -> None:
        async with deadlines.within(5.0):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.pending == 0


async def test_an_error_inside_is_not_turned_into_a_timeout(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock)

    async def body() -> None:
        async with deadlines.within(1.0):
            raise KeyError("x")

    with pytest.raises(KeyError):
        await body()


async def test_aclose_stops_the_watchdog() -> None:
    clock = VirtualClock()
    deadlines = Deadlines(clock)
    entered = asyncio.Event()

    async def body() -> None:
        async with deadlines.within(1.0):
            entered.set()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(body())
    await entered.wait()
    await deadlines.aclose()
    clock.advance(5.0)  # no watchdog left: the block runs without a deadline
    await task
    assert not watchdogs()


async def test_pending_counts_the_scopes_entered_and_not_left(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock, name="counting")
    inside = asyncio.Event()
    leave = asyncio.Event()
    entered = 0

    async def body() -> None:
        nonlocal entered
        async with deadlines.within(10.0):
            entered += 1
            if entered == 3:
                inside.set()
            await leave.wait()

    tasks = [asyncio.create_task(body()) for _ in range(3)]
    await inside.wait()
    assert deadlines.pending == 3
    assert watchdogs() == ["counting.watchdog"]  # one, named after its owner
    leave.set()
    await asyncio.gather(*tasks)
    assert deadlines.pending == 0


async def test_the_messages_say_what_happened(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock)
    seen: list[str] = []

    async def body() -> None:
        async with deadlines.within(0.25):
            try:
                await virtual_clock.sleep(1.0)
            except asyncio.CancelledError as cancelled:
                seen.append(str(cancelled.args[0]))
                raise

    with pytest.raises(TimeoutError, match=r"^deadline of 0\.25s passed$"):
        await body()
    assert seen == ["deadline passed"]
    scope = deadlines.within(1.0)
    async with scope:
        pass
    with pytest.raises(RuntimeError, match=r"^a deadline scope is entered once; make a new one"):
        async with scope:
            pass
    with pytest.raises(ValueError, match=r"^Deadlines\.within\(seconds\) must be a number"):
        deadlines.within(float("nan"))


async def test_aclose_twice_and_without_a_watchdog_is_harmless(virtual_clock: VirtualClock) -> None:
    deadlines = Deadlines(virtual_clock)
    await deadlines.aclose()
    async with deadlines.within(1.0):
        await virtual_clock.sleep(0.1)
    await virtual_clock.sleep(2.0)  # the watchdog has ended by itself
    await deadlines.aclose()
    await deadlines.aclose()
    assert not watchdogs()


async def test_a_scope_that_ended_early_does_not_hide_the_next_deadline(
    virtual_clock: VirtualClock,
) -> None:
    deadlines = Deadlines(virtual_clock)
    ended: list[float] = []

    async def quick() -> None:
        async with deadlines.within(1.0):
            pass

    async def slow() -> None:
        with contextlib.suppress(TimeoutError):
            async with deadlines.within(2.0):
                await asyncio.Event().wait()
        ended.append(virtual_clock.monotonic())

    await asyncio.gather(quick(), slow())
    assert ended == [pytest.approx(2.0)]


async def test_the_watchdog_is_named_after_its_owner_and_aclose_ends_it_at_once(
    virtual_clock: VirtualClock,
) -> None:
    deadlines = Deadlines(virtual_clock)
    entered = asyncio.Event()

    async def body() -> None:
        async with deadlines.within(5.0):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await entered.wait()
    assert watchdogs() == ["deadlines.watchdog"]
    await deadlines.aclose()
    assert watchdogs() == []  # cancelled and awaited, not left to end by itself
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_scope_entered_outside_any_task_is_refused() -> None:
    deadlines = Deadlines(VirtualClock())
    loop = asyncio.get_running_loop()
    raised: asyncio.Future[BaseException] = loop.create_future()

    def outside_a_task() -> None:
        entering = deadlines.within(1.0).__aenter__()
        try:
            entering.send(None)
        except BaseException as error:
            raised.set_result(error)

    loop.call_soon(outside_a_task)
    error = await raised
    assert isinstance(error, RuntimeError)
    assert str(error) == "a deadline scope must be entered from a task"
