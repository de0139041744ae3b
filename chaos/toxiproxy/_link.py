"""One direction of a proxied connection: a direct relay, or a chain of toxic stages.

A link with no toxic is *direct*: its source socket writes straight into the sink transport
(:class:`~chaos.toxiproxy._proxy.Side`), and no task runs. A link with toxics queues what the
source reads (bounded: reading pauses above ``_QUEUE_HIGH_WATER`` bytes) and one task pushes
each chunk through the stages in order; when the last toxic goes, the task drains the queue and
the link turns direct again, never losing or reordering a byte. The link is also the
:class:`~chaos.toxiproxy._toxics.StageHost` of its stages (time, sleeps, closing the
connection).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Final, TypeVar

from chaos.toxiproxy._toxics import Chunk, Stage, Toxic, make_stage

if TYPE_CHECKING:
    from chaos.toxiproxy._proxy import Connection, Side

__all__ = ["Link", "WorkBudget", "resolve_future"]

_log = logging.getLogger("chaos.toxiproxy")

_QUEUE_HIGH_WATER: Final = 1024 * 1024
"""A link with toxics stops reading its source while this many bytes wait for the stages."""
_TIME_SLICE: Final = 0.001
"""Seconds of toxic work all the links of a server may do in one loop iteration, shared equally
by the links that are busy (see :class:`WorkBudget`), so no toxic (a slicer cutting 1-byte
pieces with no delay, a flood through a chain of stages) can starve the API or the other
connections. Measured in ``tests/chaos/toxiproxy/test_fairness.py`` (one link: ``/version`` p99
of 1.7 s before, under 10 ms after) and ``test_soak.py`` (every extreme toxic at once)."""
_MIN_SLICE: Final = 0.00005
"""The least a busy link works between two yields, however many are busy (a yield costs ~10 us)."""


class WorkBudget:
    """The toxic work of one server's links per loop iteration: about ``_TIME_SLICE`` in all.

    A link works for :meth:`share` seconds after each wait, then yields if it still has work.
    Each round (loop iteration) counts the links that yielded in it; the next round's share is
    the slice divided among them. So an iteration holds about one slice of toxic work however
    many links are busy, each busy link gets an equal part, and a callback of the API waits at
    most about one slice for its turn.
    """

    def __init__(self) -> None:
        self._busy = 1
        self._yielded = 0
        self._round: asyncio.Handle | None = None

    def share(self) -> float:
        return max(_MIN_SLICE, _TIME_SLICE / self._busy)

    def yielding(self, loop: asyncio.AbstractEventLoop) -> None:
        """A link used its share and yields; the round ends when the loop comes round."""
        self._yielded += 1
        if self._round is None:
            self._round = loop.call_soon(self._next_round)

    def _next_round(self) -> None:
        self._round = None
        self._busy = max(1, self._yielded)
        self._yielded = 0


class Link:
    """One direction of a connection: direct relay, or a chain of toxic stages run by a task."""

    def __init__(
        self,
        connection: Connection,
        source: Side,
        sink: Side,
        rng: random.Random,
    ) -> None:
        self.connection = connection
        self.source = source
        self.sink = sink
        self.sink_transport: asyncio.Transport | None = None
        self.rng = rng
        self.direct = True
        self.stages: list[Stage] = []
        self._loop = connection.loop
        self._queue: deque[Chunk] = deque()
        self._queued = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._interrupts: set[asyncio.Future[bool]] = set()
        self._drain: asyncio.Future[None] | None = None
        self._budget = connection.proxy.budget
        self._yield_at = 0.0

    # -- what the stages use (StageHost) ---------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    async def sleep(self, seconds: float | None) -> bool:
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._interrupts.add(waiter)
        timer = (
            None
            if seconds is None
            else self._loop.call_later(seconds, resolve_future, waiter, False)
        )
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._interrupts.discard(waiter)
            self._waited()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(seconds, callback)

    def close_connection(self) -> None:
        self.connection.close()

    def reset_connection(self) -> None:
        self.connection.reset()

    # -- data from the source ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._queue.append((self._loop.time(), data))
        self._queued += len(data)
        if self._queued >= _QUEUE_HIGH_WATER:
            self.update_reading()
        self._wake()

    def feed_eof(self) -> None:
        if self.direct:
            self.connection.close()
            return
        self._queue.append((self._loop.time(), None))
        self._wake()

    def dialed(self) -> None:
        """The sink is connected: relay what arrived meanwhile, then go direct if no toxics."""
        if self._task is None:
            while self._queue and not self.connection.closing:
                _read_time, data = self._queue.popleft()
                if data is None:
                    self.connection.close()
                    return
                self._queued -= len(data)
                self.sink_transport.write(data)  # type: ignore[union-attr]
            self.direct = True
        self.update_reading()

    def update_reading(self) -> None:
        if self.connection.closing:
            return
        paused = self.sink.write_paused if self.direct else self._queued >= _QUEUE_HIGH_WATER
        self.source.set_reading(paused=paused)

    def sink_changed(self) -> None:
        if self.direct:
            self.update_reading()
        elif not self.sink.write_paused and self._drain is not None:
            resolve_future(self._drain, None)

    # -- toxics ------------------------------------------------------------------------------

    def add_stage(self, toxic: Toxic) -> None:
        stage = make_stage(toxic, self)
        if self.stages and not self.connection.closing:
            self.stages[-1].start()  # Toxiproxy restarts the stage the new one follows
        self.stages.append(stage)
        stage.start()
        self._interrupt()
        if self._task is None and not self.connection.closing:
            self.direct = False
            self._task = self._loop.create_task(self._run())
            self.update_reading()

    def restart_stage(self, toxic: Toxic) -> None:
        for stage in self.stages:
            if stage.toxic is toxic:
                stage.start()
        self._interrupt()

    def remove_stage(self, toxic: Toxic) -> None:
        for index, stage in enumerate(self.stages):
            if stage.toxic is toxic:
                del self.stages[index]
                stage.stop(removed=True)
                if index > 0 and not self.connection.closing:
                    self.stages[index - 1].start()  # as Toxiproxy, restart the one before
                break
        self._interrupt()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running the stages, while the link has toxics (or is draining)."""
        return self._task

    def stop(self) -> None:
        """The connection closes: stop the task and every stage's timers."""
        for stage in self.stages:
            stage.stop(removed=False)
        if self._task is not None:
            self._task.cancel()
        if self._drain is not None:
            resolve_future(self._drain, None)

    def _interrupt(self) -> None:
        for waiter in self._interrupts:
            resolve_future(waiter, True)
        self._interrupts.clear()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            resolve_future(self._wakeup, None)

    # -- the task of a link with toxics -----------------------------------------------------

    async def _run(self) -> None:
        try:
            if not self.connection.dialed.done():
                await self.connection.dialed
            while True:
                if not self._queue:
                    if not self.stages:
                        break
                    self._wakeup = self._loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    self._waited()
                    continue
                chunk = self._queue.popleft()
                if chunk[1] is not None:
                    self._queued -= len(chunk[1])
                    if self._queued < _QUEUE_HIGH_WATER:
                        self.update_reading()
                await self._push(tuple(self.stages), 0, chunk)
                if chunk[1] is None:
                    return
        except Exception:
            _log.exception(
                "proxy %s: toxic chain failed; closing the connection", self.connection.proxy.name
            )
            self.connection.close()
            return
        finally:
            self._task = None
            self._wakeup = None
        self.direct = True
        self.update_reading()

    def _waited(self) -> None:
        """The task has just waited: its share of work starts again."""
        self._yield_at = self._loop.time() + self._budget.share()

    async def _push(self, stages: tuple[Stage, ...], index: int, chunk: Chunk) -> None:
        if self._loop.time() >= self._yield_at:
            self._budget.yielding(self._loop)
            await asyncio.sleep(0)  # its share of work without a wait: let the loop run
            self._waited()
        while index < len(stages) and stages[index].removed:
            index += 1
        if index < len(stages):
            await stages[index].process(chunk, partial(self._push, stages, index + 1))
            return
        data = chunk[1]
        if data is None:
            self.connection.close()
            return
        sink = self.sink_transport
        if self.connection.closing or sink is None or sink.is_closing():
            return  # a lost socket: asyncio would log a warning for every write after the 5th
        sink.write(data)
        while self.sink.write_paused and not self.connection.closing:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
                self._waited()


_T = TypeVar("_T")


def resolve_future(future: asyncio.Future[_T], value: _T) -> None:
    """Set ``future`` to ``value`` unless it is already done (a waiter may have gone)."""
    if not future.done():
        future.set_result(value)
