"""The incident's scheduler (scenario ``queued-actions-burst``'s naive arm): every move queued
while the breaker was open starts at once when it closes. Kept apart from the scenario so that
the scenario module reads as its declaration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from resilient.breaker import BreakerState, CircuitBreaker

__all__ = ["FlushAtOnce"]


class _Fleet(Protocol):
    version: int

    def view(self) -> Any: ...


class FlushAtOnce:
    """The incident's scheduler: while its breaker is open it keeps the newest move asked for
    each engine (coalesced, as any queue keyed by engine does), and on the first heartbeat
    after the breaker closed it starts every queued move at once, as it was computed: no
    check against the state now, no bound on how many engines leave service together.

    ``on_start(engine, generation, based_on, together)`` is told each move it starts (how many
    started with it in ``together``), for the report.
    """

    def __init__(
        self,
        fleet: _Fleet,
        ping: Callable[[], Awaitable[None]],
        breaker: CircuitBreaker,
        *,
        run: Callable[[str, int], Coroutine[Any, Any, str]],
        on_start: Callable[[str, int, int, int], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.ping = ping
        self.breaker = breaker
        self.view = fleet.view()
        self.run = run
        self.on_start = on_start
        self.pending: dict[str, tuple[int, int]] = {}
        """The move queued for each engine: (generation, state version it was computed on)."""
        self.running: dict[str, asyncio.Task[str]] = {}

    def submit(self, engine: str, generation: int, *, based_on: int) -> None:
        self.pending[engine] = (generation, based_on)

    def wants(self, engine: str) -> bool:
        return engine in self.pending or engine in self.running

    async def heartbeat(self) -> None:
        with contextlib.suppress(Exception):  # CircuitOpenError, or placement down
            await self.breaker.call(self.ping)
            self.view = self.fleet.view()
        if self.breaker.state is not BreakerState.CLOSED or not self.pending:
            return
        batch, self.pending = self.pending, {}
        for engine, (generation, based_on) in batch.items():
            if self.on_start is not None:
                self.on_start(engine, generation, based_on, len(batch))
            task = asyncio.create_task(self.run(engine, generation))
            self.running[engine] = task
            task.add_done_callback(functools.partial(self._ended, engine))

    def _ended(self, engine: str, task: asyncio.Task[str]) -> None:
        if self.running.get(engine) is task:
            del self.running[engine]

    async def aclose(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
