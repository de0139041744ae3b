"""The backend the pool tests connect to, and how they build and settle a pool."""

from __future__ import annotations

import asyncio
from typing import Any

from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions
from resilient.ratelimit import Rate

FREE_GATE = GateOptions(connect_rate=Rate(1_000_000, 1.0, burst=1000), max_connecting=1000)


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


class Backend:
    """What the pool connects to: numbered connections, each open until closed."""

    def __init__(self, clock: VirtualClock, *, takes: float = 0.0) -> None:
        self.clock = clock
        self.takes = takes
        self.opened: list[int] = []
        self.open_at: list[float] = []
        self.closed: list[int] = []
        self.most_open = 0
        self.error: BaseException | None = None

    async def connect(self) -> int:
        if self.takes:
            await self.clock.sleep(self.takes)
        if self.error is not None:
            raise self.error
        number = len(self.opened) + 1
        self.opened.append(number)
        self.open_at.append(self.clock.monotonic())
        self.most_open = max(self.most_open, self.open_count)
        return number

    async def close(self, connection: int) -> None:
        assert connection not in self.closed, f"connection {connection} closed twice"
        self.closed.append(connection)

    @property
    def open_count(self) -> int:
        return len(self.opened) - len(self.closed)


def pool_for(
    backend: Backend,
    options: PoolOptions = PoolOptions(),  # noqa: B008 - frozen
    gate_options: GateOptions = FREE_GATE,
    **kwargs: Any,
) -> BoundedPool[int]:
    clock = backend.clock
    events = kwargs.pop("events", quiet())
    gate = kwargs.pop("gate", None) or ConnectGate(
        "backend", gate_options, clock=clock, events=events
    )
    return BoundedPool(
        backend.connect, backend.close, options, gate=gate, clock=clock, events=events, **kwargs
    )


async def closes_run() -> None:
    """Let the pool's closing tasks run (a close never holds up a caller's path)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def settled(pool: BoundedPool[int], backend: Backend) -> None:
    """Close the pool and check that nothing is left open."""
    await pool.aclose()
    stats = pool.stats
    assert (stats.open, stats.idle, stats.in_use, stats.connecting, stats.waiting) == (
        0, 0, 0, 0, 0,
    ), stats  # fmt: skip
    assert backend.open_count == 0


class Fixed:
    """A random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class Boom(Exception):
    """An error of the caller's own (no fault of the destination)."""


class Abort(BaseException):
    """A BaseException that is neither a cancellation nor KeyboardInterrupt/SystemExit (which
    asyncio re-raises out of the event loop): it takes the same paths through the pool."""


def assert_nothing_held(pool: BoundedPool[Any]) -> None:
    stats = pool.stats
    assert (stats.open, stats.in_use, stats.connecting, stats.waiting) == (
        stats.idle, 0, 0, 0,
    ), stats  # fmt: skip
    assert pool.gate.connecting == 0
    assert pool.gate.waiting == 0
