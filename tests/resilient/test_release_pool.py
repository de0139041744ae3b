"""The worker pool of a release queue: runs inline, as many workers as actions suspend, plus
one; a worker cancelled from outside is replaced, one cancelled by a close is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.release._pool import WorkerPool
from resilient.release._ticket import RUNNING, Ticket
from tests.resilient.release_world import Boom, settle


class Recorder:
    def __init__(self, *, raise_on: type[BaseException] | None = None) -> None:
        self.succeeded: list[tuple[str, Any]] = []
        self.failed: list[tuple[str, BaseException]] = []
        self.raise_on = raise_on

    def on_success(self, ticket: Ticket[Any], result: Any) -> None:
        self.succeeded.append((ticket.key, result))

    def on_failure(self, ticket: Ticket[Any], error: BaseException) -> bool:
        self.failed.append((ticket.key, error))
        return self.raise_on is not None and isinstance(error, self.raise_on)


def ticket(key: str, run: Any) -> Ticket[Any]:
    return Ticket(key, run, 1, 0, False, 0.0)


def workers(pool: WorkerPool) -> list[str]:
    return sorted(task.get_name() for task in pool.workers if not task.done())


async def test_instant_actions_run_inline_on_one_worker() -> None:
    recorder = Recorder()
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    tickets = []
    for i in range(50):

        async def run(i: int = i) -> int:
            return i

        tickets.append(ticket(f"k{i}", run))
        pool.run(tickets[-1])
    assert pool._free == 1
    assert workers(pool) == ["ReleaseQueue.worker"]
    await settle()
    assert recorder.succeeded == [(f"k{i}", i) for i in range(50)]
    assert [t._tries for t in tickets] == [1] * 50
    assert [t._state for t in tickets] == [RUNNING] * 50  # the queue ends them, not the pool
    assert pool.workers == set()
    assert pool._free == 0
    pool.wake()  # nothing ready: a worker starts, finds nothing, ends
    await settle()
    assert pool.workers == set()
    assert pool._free == 0


async def test_each_action_that_suspends_gets_its_own_worker_plus_one() -> None:
    recorder = Recorder()
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "opened"

    for i in range(5):
        pool.run(ticket(f"k{i}", waits))
    await settle()
    assert len(workers(pool)) == 5  # one per suspended action; the last found nothing more
    assert pool._free == 0
    pool.run(ticket("late", waits))
    await settle()
    assert len(workers(pool)) == 6
    gate.set()
    await settle()
    assert sorted(key for key, _ in recorder.succeeded) == sorted(
        [f"k{i}" for i in range(5)] + ["late"]
    )
    assert pool.workers == set()
    assert pool._free == 0


async def test_a_failure_is_reported_and_the_worker_goes_on() -> None:
    recorder = Recorder()
    pool = WorkerPool(recorder.on_success, recorder.on_failure)

    async def fails() -> None:
        raise Boom("no")

    async def works() -> str:
        return "yes"

    pool.run(ticket("bad", fails))
    pool.run(ticket("good", works))
    await settle()
    assert [(key, str(error)) for key, error in recorder.failed] == [("bad", "no")]
    assert recorder.succeeded == [("good", "yes")]
    assert pool._free == 0


async def test_a_worker_cancelled_from_outside_is_replaced_for_what_is_ready() -> None:
    recorder = Recorder(raise_on=asyncio.CancelledError)
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "waited"

    async def quick() -> str:
        return "quick"

    pool.run(ticket("slow", waits))
    await settle()
    [worker] = pool.workers
    pool.ready.append(ticket("next", quick))  # ready, and no free worker to take it
    worker.cancel()
    await settle()
    assert [key for key, _ in recorder.failed] == ["slow"]
    assert recorder.succeeded == [("next", "quick")]
    assert pool.workers == set()
    assert pool._free == 0


async def test_workers_cancelled_by_a_close_are_not_replaced() -> None:
    recorder = Recorder(raise_on=asyncio.CancelledError)
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "waited"

    pool.run(ticket("slow", waits))
    await settle()
    pool.ready.append(ticket("never", waits))
    pool.cancel(None)
    await settle()
    assert [key for key, _ in recorder.failed] == ["slow"]
    assert pool.workers == set()
    assert len(pool.ready) == 1  # the closing queue drops it


async def test_cancel_spares_the_caller_and_join_waits_for_the_others() -> None:
    recorder = Recorder(raise_on=asyncio.CancelledError)
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    gate = asyncio.Event()
    joined: list[str] = []

    async def closes_from_inside() -> str:
        me = asyncio.current_task()
        pool.cancel(me)
        await pool.join(me)
        joined.append("joined")
        return "closed"

    async def waits() -> str:
        await gate.wait()
        return "waited"

    pool.run(ticket("other", waits))
    await settle()
    pool.run(ticket("closer", closes_from_inside))
    await settle()
    assert joined == ["joined"]
    assert recorder.succeeded == [("closer", "closed")]
    assert [key for key, _ in recorder.failed] == ["other"]
    assert pool.workers == set()


async def test_join_is_not_broken_by_a_worker_that_raised() -> None:
    recorder = Recorder(raise_on=Boom)
    pool = WorkerPool(recorder.on_success, recorder.on_failure)

    async def raises() -> None:
        await asyncio.sleep(0)
        raise Boom("worker dies")

    pool.run(ticket("k", raises))
    await asyncio.sleep(0)
    await pool.join(None)  # does not raise the worker's error
    assert [key for key, _ in recorder.failed] == ["k"]


async def test_a_cancelled_join_cancels_every_worker() -> None:
    recorder = Recorder(raise_on=asyncio.CancelledError)
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "waited"

    for i in range(3):
        pool.run(ticket(f"k{i}", waits))
    await settle()
    joining = asyncio.get_running_loop().create_task(pool.join(None))
    await settle()
    joining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joining
    await settle()
    assert sorted(key for key, _ in recorder.failed) == ["k0", "k1", "k2"]
    assert pool.workers == set()


async def test_a_lone_action_runs_on_a_lone_worker() -> None:
    recorder = Recorder()
    pool = WorkerPool(recorder.on_success, recorder.on_failure)
    seen: list[int] = []

    async def counts() -> int:
        seen.append(len(pool.workers))
        await asyncio.sleep(0)
        return len(seen)

    pool.run(ticket("lone", counts))
    await settle()
    assert seen == [1]  # nothing else ready: no second worker
    pool.run(ticket("first", counts))
    pool.run(ticket("second", counts))
    await settle()
    assert seen == [1, 2, 2]  # one more ready: a second worker before the first runs
    assert sorted(key for key, _ in recorder.succeeded) == ["first", "lone", "second"]
    assert pool.workers == set()
