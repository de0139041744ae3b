"""FailOpenGuard over a RedisLimiter whose Redis sits behind the embedded proxy, under faults.

For each fault: no request is denied because of the fault, every decision taken while it lasts
says FALLBACK (or PASS_THROUGH), the fallback still holds an abusive key to this instance's
share, and once the fault is gone the guard answers from Redis again. Real time, kept short:
a 20 ms budget, faults of a few hundred milliseconds, a breaker that probes every 100 ms.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from chaos.pytest_plugin import ProxyFactory
from chaos.servers import RedisServer
from chaos.toxiproxy.control import ToxiproxyControl
from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.events import Event, EventBus, EventRecorder
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    LocalLimiter,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
)

pytestmark = [pytest.mark.real_server, pytest.mark.chaos]

GLOBAL_RATE = Rate(100, 1.0, burst=10)
"""The limit every key has across the fleet."""

INSTANCES = 4
SHARE = GLOBAL_RATE.per_share(INSTANCES)
"""This instance's share, what the fallback enforces: 25/s, burst 2."""

BUDGET = 0.020
FAULT_SECONDS = 0.3
RECOVERY_DEADLINE = 5.0


@dataclass
class Rig:
    """One guarded instance whose primary reaches Redis only through the proxy."""

    control: ToxiproxyControl
    proxy: str
    guard: FailOpenGuard
    limiter: RedisLimiter
    recorder: EventRecorder
    decisions: list[tuple[str, Decision]] = field(default_factory=list)

    async def decide(self, key: str) -> Decision:
        decision = await self.guard.decide(key)
        self.decisions.append((key, decision))
        return decision


@pytest.fixture
async def make_rig(
    toxiproxy: ToxiproxyControl, toxiproxy_proxy: ProxyFactory
) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[Rig] = []

    async def make(redis: RedisServer, mode: GuardMode = GuardMode.FALLBACK) -> Rig:
        proxy = await toxiproxy_proxy(upstream=f"{redis.host}:{redis.port}")
        recorder = EventRecorder()
        bus = EventBus()
        bus.subscribe(recorder)
        limiter = RedisLimiter(
            f"redis://127.0.0.1:{proxy.listen_port}/0",
            GLOBAL_RATE,
            RedisLimiterOptions(prefix=f"faults:{uuid.uuid4().hex}:", round_trip_timeout=0.25),
            events=bus,
        )
        guard = FailOpenGuard(
            limiter,
            GuardOptions(timeout=BUDGET, mode=mode, instances=INSTANCES),
            fallback=LocalLimiter(SHARE, events=bus) if mode is GuardMode.FALLBACK else None,
            breaker=CircuitBreaker(
                "redis-limiter",
                BreakerOptions(failure_threshold=3, reset_timeout=0.1),
                events=bus,
            ),
            events=bus,
        )
        rig = Rig(toxiproxy, proxy.name, guard, limiter, recorder)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.guard.aclose()
        await rig.limiter.aclose()


async def exercise(
    rig: Rig,
    fault: Callable[[], Awaitable[None]],
    heal: Callable[[], Awaitable[None]],
    *,
    degraded_source: DecisionSource = DecisionSource.FALLBACK,
) -> None:
    """Healthy, then the fault (checked), then recovery (checked)."""
    # Healthy: Redis answers (the first decision also connects and loads the script, which may
    # take longer than the budget on a busy machine: wait until the guard is on its primary).
    await rig.limiter.decide("warm-up")
    await until_primary(rig)
    assert not rig.guard.degraded
    healthy_events = len(rig.recorder.events)

    await fault()
    during = await drive_load(rig, FAULT_SECONDS)
    await heal()

    normal = [d for key, d in during if key != "abuser"]
    abusive = [d for key, d in during if key == "abuser"]
    assert normal
    assert abusive
    # Nobody is denied because of the fault ...
    assert all(d.allowed for d in normal), [d for d in normal if not d.allowed][:3]
    # ... every decision says it was degraded, and why ...
    assert {d.source for _, d in during} == {degraded_source}
    assert all(d.reason for _, d in during)
    assert _named(rig, "degraded", since=healthy_events)
    if degraded_source is DecisionSource.FALLBACK:
        # ... and the abusive key is still held to this instance's share.
        allowed = sum(d.allowed for d in abusive)
        bound = SHARE.limit * FAULT_SECONDS * 2 + SHARE.burst + 1
        assert 0 < allowed <= bound, (allowed, bound)
        assert any(not d.allowed for d in abusive)

    # Recovery: the breaker's probe finds Redis again and the guard returns to the primary.
    await until_primary(rig)
    assert _named(rig, "recovered", since=healthy_events)
    assert not rig.guard.degraded


def _named(rig: Rig, name: str, *, since: int) -> list[Event]:
    return [
        e for e in rig.recorder.events[since:] if (e.source, e.name) == ("ratelimit.guard", name)
    ]


async def until_primary(rig: Rig) -> None:
    """Decide (fresh keys, every 20 ms) until the primary answers; fail after a deadline."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while (await rig.decide(f"probe-{uuid.uuid4().hex[:6]}")).source is not DecisionSource.PRIMARY:
        assert time.monotonic() < deadline, "the guard did not return to the primary"
        await asyncio.sleep(0.02)


async def drive_load(rig: Rig, seconds: float) -> list[tuple[str, Decision]]:
    """Every 5 ms: one request from a fresh (well-behaved) key and three from the abuser."""
    start = len(rig.decisions)
    end = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < end:
        tick += 1
        await asyncio.gather(rig.decide(f"user-{tick}"), *(rig.decide("abuser") for _ in range(3)))
        await asyncio.sleep(0.005)
    return rig.decisions[start:]


# -- the faults ----------------------------------------------------------------------------------


TOXICS = [
    pytest.param("latency", "downstream", {"latency": 200}, id="latency-above-budget"),
    pytest.param("timeout", "downstream", {"timeout": 0}, id="timeout-0"),
    pytest.param("reset_peer", "upstream", {"timeout": 0}, id="reset-peer"),
    pytest.param("limit_data", "downstream", {"bytes": 8}, id="limit-data"),
    pytest.param(
        "slicer",
        "downstream",
        {"average_size": 1, "size_variation": 0, "delay": 10_000},
        id="slicer",
    ),
]


@pytest.mark.parametrize(("toxic", "stream", "attributes"), TOXICS)
async def test_toxic_degrades_to_the_fallback_and_recovers(
    make_rig: Callable[..., Awaitable[Rig]],
    redis_server: RedisServer,
    toxic: str,
    stream: str,
    attributes: dict[str, int],
) -> None:
    rig = await make_rig(redis_server)

    async def fault() -> None:
        await rig.control.add_toxic(
            rig.proxy, toxic, name="fault", stream=stream, attributes=attributes
        )

    async def heal() -> None:
        await rig.control.remove_toxic(rig.proxy, "fault")

    await exercise(rig, fault, heal)


async def test_proxy_disabled_degrades_to_the_fallback_and_recovers(
    make_rig: Callable[..., Awaitable[Rig]], redis_server: RedisServer
) -> None:
    rig = await make_rig(redis_server)

    async def fault() -> None:
        await rig.control.disable(rig.proxy)

    async def heal() -> None:
        await rig.control.enable(rig.proxy)

    await exercise(rig, fault, heal)


async def test_redis_killed_and_restarted_degrades_to_the_fallback_and_recovers(
    make_rig: Callable[..., Awaitable[Rig]], fresh_redis_server: RedisServer
) -> None:
    rig = await make_rig(fresh_redis_server)

    async def fault() -> None:
        await asyncio.to_thread(fresh_redis_server.kill)

    async def heal() -> None:
        await asyncio.to_thread(fresh_redis_server.start)

    await exercise(rig, fault, heal)
    assert rig.limiter.stats.script_loads == 2  # the restarted Redis had no script


async def test_pass_through_mode_allows_everything_while_redis_is_unreachable(
    make_rig: Callable[..., Awaitable[Rig]], redis_server: RedisServer
) -> None:
    rig = await make_rig(redis_server, GuardMode.PASS_THROUGH)

    async def fault() -> None:
        await rig.control.add_toxic(
            rig.proxy, "timeout", name="fault", stream="downstream", attributes={"timeout": 0}
        )

    async def heal() -> None:
        await rig.control.remove_toxic(rig.proxy, "fault")

    await exercise(rig, fault, heal, degraded_source=DecisionSource.PASS_THROUGH)
    assert all(d.allowed for _, d in rig.decisions)


async def test_asyncio_timeout_around_a_decision_still_raises_timeout_error(
    redis_server: RedisServer, toxiproxy: ToxiproxyControl, toxiproxy_proxy: ProxyFactory
) -> None:
    """A cancelled decision re-raises the very cancellation (only noting on it how long Redis
    had been silent), so ``asyncio.timeout`` around it gives TimeoutError as it always does
    (the naive arm of the scenario counts on it)."""
    proxy = await toxiproxy_proxy(upstream=f"{redis_server.host}:{redis_server.port}")
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{proxy.listen_port}/0",
        GLOBAL_RATE,
        RedisLimiterOptions(prefix=f"faults:{uuid.uuid4().hex}:"),
    )
    try:
        assert (await limiter.decide("k")).allowed
        await toxiproxy.add_toxic(proxy.name, "timeout", attributes={"timeout": 0})
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await limiter.decide("k")
        assert time.monotonic() - started < 1.0
    finally:
        await limiter.aclose()
