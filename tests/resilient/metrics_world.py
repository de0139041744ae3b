"""What the metrics tests share: every pattern driven through a short incident in virtual time,
on one bus, each instance watched by the sink under test."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from resilient import (
    BoundedPool,
    Bulkhead,
    BulkheadOptions,
    CircuitBreaker,
    ConnectGate,
    FailOpenGuard,
    Failover,
    FailoverOptions,
    FixedLimit,
    LocalLimiter,
    Provider,
    Rate,
    ReleaseQueue,
    ReleaseState,
    RetryBudget,
    RetryBudgetOptions,
    RetryOptions,
    RetryPolicy,
    VirtualClock,
)
from resilient.errors import LoadShedError
from resilient.events import EventBus
from resilient.metrics import MetricsSink
from resilient.release import ReleaseOptions
from resilient.rollout import ConfigRollout, MemoryConfigStore, PydanticSchema
from tests.resilient.failover_world import Scripted
from tests.resilient.rollout_world import BAD, FAST, GOOD, Routing, feed

NAMES = {
    "limiter": {"api-limit"},
    "breaker": {"ratelimit.guard", "payments", "connect backend", "failover/one", "failover/two"},
    "pool": {"backend-pool"},
    "gate": {"backend", "success_ratio", "latency"},  # a connect gate, rollout gates
    "queue": {"engines"},
    "rollout": {"config"},
    "policy": {"provider"},
    "budget": {"retries"},
    "failover": {"failover"},
    "provider": {"one", "two"},
    "bulkhead": {"db"},
}
"""Every name label the world can produce, by label."""


class Down:
    """A primary limiter that cannot be reached."""

    never_waits = True

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Any:
        raise ConnectionError("redis down")


@dataclass
class World:
    clock: VirtualClock
    bus: EventBus
    instances: list[Any]
    """Every instance watched (the sink holds them weakly: the world keeps them)."""


async def boom() -> None:
    raise ConnectionError("down")


async def ok() -> str:
    return "ok"


async def run_world(sink: MetricsSink, bus: EventBus, keys: list[str]) -> World:
    """Every pattern through a fault, watched by ``sink`` (which listens on ``bus``); ``keys``
    are the callers' keys, handed to every pattern that takes one."""
    clock = VirtualClock(autojump=True)
    # A limiter whose primary is down: fallback decisions, the guard's breaker opens.
    guard = FailOpenGuard(
        Down(), fallback=LocalLimiter(Rate(5, 1.0), clock=clock), clock=clock, events=bus
    )
    sink.watch(guard, "api-limit")
    sink.watch(guard.breaker)
    for key in keys:
        await guard.decide(key)
    # A breaker that trips, half-opens and closes.
    breaker = sink.watch(CircuitBreaker("payments", clock=clock, events=bus))
    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            await breaker.call(boom)
    await clock.sleep(breaker.options.reset_timeout)
    await breaker.call(ok)
    # A pool behind its gate: connections opened, one discarded, one caller refused.
    opened_count = 0

    async def connect() -> int:
        nonlocal opened_count
        opened_count += 1
        return opened_count

    async def close(connection: int) -> None:
        return None

    gate = sink.watch(ConnectGate("backend", clock=clock, events=bus))
    pool: BoundedPool[int] = BoundedPool(connect, close, gate=gate, clock=clock, events=bus)
    sink.watch(pool, "backend-pool")
    async with pool.acquire():
        pass
    with contextlib.suppress(RuntimeError):
        async with pool.acquire():
            raise RuntimeError("the caller's fault: the connection is discarded")
    async with pool.acquire():  # a new connection, then idle in the pool
        pass
    # A release queue: one action done, one stale (dropped), one superseded.
    version = 2

    def state() -> ReleaseState:
        return ReleaseState(version=version, capacity=100)

    queue = ReleaseQueue(state, ReleaseOptions(batch=100), clock=clock, events=bus)
    sink.watch(queue, "engines")
    tickets = [queue.submit(key, ok, based_on=1) for key in keys[:3]]  # stale
    tickets.append(queue.submit("fresh", ok, based_on=2))
    tickets.append(queue.submit("fresh", ok, based_on=2))  # supersedes the one before
    await asyncio.gather(*(ticket for ticket in tickets))
    queue.pause("an operator holds it")
    queue.submit("held", ok, based_on=2)  # queued while paused
    # A rollout whose canary fails: gate verdicts, a rollback.
    rollout_clock = VirtualClock()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        MemoryConfigStore(), FAST, schema=PydanticSchema(Routing), clock=rollout_clock, events=bus
    )
    await rollout.bootstrap(GOOD)
    sink.watch(rollout)
    await rollout.start(BAD, "eu to a dead backend")
    runner = asyncio.create_task(rollout.run())
    await rollout_clock.run_for(1.0)
    for key in keys:
        rollout.config_for(key)
    feed(rollout, 1000, canary_ok=0.0)
    await rollout_clock.run_for(5.0)
    await runner
    # Retries spent from a budget until it refuses.
    budget = RetryBudget(RetryBudgetOptions(ratio=0.0, min_retries=1), clock=clock, events=bus)
    sink.watch(budget, "retries")
    policy = RetryPolicy(
        "provider",
        RetryOptions(attempts=3, backoff_initial=0.1, jitter=0.0),
        budget=budget,
        clock=clock,
        events=bus,
    )
    sink.watch(policy)
    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            await policy.call(boom)
    # A failover: a hedge won by the second provider, then the fallback.
    slow = {30}
    one = Scripted("one", clock, lambda n: 0.5 if n in slow else 0.010)
    two = Scripted("two", clock, lambda n: 0.02)

    async def fallback(request: str, error: Exception) -> str:
        return "degraded"

    failover: Failover[str, str] = Failover(
        [Provider("one", one), Provider("two", two)],
        FailoverOptions(timeout=2.0),
        fallback=fallback,
        clock=clock,
        events=bus,
    )
    sink.watch(failover)
    for i in range(30):
        await failover.call(f"r{i}")
    one.behaviour = two.behaviour = lambda n: ConnectionError("down")
    await failover.call("nobody answers")
    # A bulkhead that sheds.
    bulkhead = Bulkhead(
        "db", BulkheadOptions(max_waiting=0), limit=FixedLimit(1), clock=clock, events=bus
    )
    sink.watch(bulkhead)

    async def slow_call() -> None:
        await clock.sleep(1.0)

    first = asyncio.create_task(bulkhead.call(slow_call))
    await asyncio.sleep(0)
    with contextlib.suppress(LoadShedError):
        await bulkhead.call(slow_call)
    await first
    return World(
        clock, bus, [guard, breaker, gate, pool, queue, rollout, budget, policy, failover, bulkhead]
    )
