"""The workers of a :class:`~resilient.release.ReleaseQueue`: they run committed actions.

An action's run is awaited inline by a worker task, not by a task of its own: a task per
action cost 7 to 10 us on the machine of ``bench/bench_release.py``, where an
``asyncio.Queue`` put and get cost 0.75 us. A worker that takes an action while more are
ready and no other worker is free starts one more worker first, so an action that suspends
never delays the ones committed after it: there are at most as many workers as actions in
flight, plus one. A worker with nothing ready ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from resilient.release._ticket import RUNNING, Ticket

__all__ = ["WorkerPool"]


class WorkerPool:
    """Runs each ticket handed to :meth:`run` on its worker tasks, and tells how it went:
    ``succeeded(ticket, result)``, or ``failed(ticket, error)``, which answers whether the
    worker must raise the error too (a cancellation of the worker, KeyboardInterrupt)."""

    __slots__ = ("_closing", "_failed", "_free", "_succeeded", "ready", "workers")

    def __init__(
        self,
        succeeded: Callable[[Ticket[Any], Any], None],
        failed: Callable[[Ticket[Any], BaseException], bool],
    ) -> None:
        self._succeeded = succeeded
        self._failed = failed
        self.ready: deque[Ticket[Any]] = deque()
        """Committed tickets no worker has taken yet (for an instant)."""
        self.workers: set[asyncio.Task[None]] = set()
        self._free = 0
        self._closing = False

    def run(self, ticket: Ticket[Any]) -> None:
        """Run ``ticket`` now (on a free worker, or a new one)."""
        self.ready.append(ticket)
        self.wake()

    def wake(self) -> None:
        """Tickets were added to :attr:`ready` directly: make sure a worker will take them."""
        if not self._free:
            self._spawn()

    def _spawn(self) -> None:
        self._free += 1
        task = asyncio.get_running_loop().create_task(self._work(), name="ReleaseQueue.worker")
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    async def _work(self) -> None:
        ready = self.ready
        succeeded = self._succeeded
        failed = self._failed
        busy = False
        try:
            while ready:
                ticket = ready.popleft()
                self._free -= 1
                busy = True
                if ready and not self._free:
                    self._spawn()
                ticket._state = RUNNING
                ticket._tries += 1
                try:
                    result = await ticket._run()
                except BaseException as error:
                    if failed(ticket, error):
                        raise
                else:
                    succeeded(ticket, result)
                self._free += 1
                busy = False
        finally:
            if not busy:
                self._free -= 1
            if ready and not self._free and not self._closing:
                self._spawn()  # this worker was cancelled from outside: replace it

    def cancel(self, me: asyncio.Task[Any] | None) -> None:
        """Cancel every worker but ``me`` (the caller, when it is a worker)."""
        self._closing = True
        for worker in self.workers:
            if worker is not me:
                worker.cancel()

    async def join(self, me: asyncio.Task[Any] | None) -> None:
        """Wait for every worker but ``me``; if this wait is cancelled, cancel them all (a
        cancelled caller leaves no task behind)."""
        while others := [worker for worker in self.workers if worker is not me]:
            try:
                await asyncio.gather(*others, return_exceptions=True)
            except asyncio.CancelledError:
                self.cancel(me)
                raise
