"""LocalLimiter and RedisLimiter decide alike: same arrivals at the same times, same decisions.

Both read one VirtualClock (``RedisLimiterOptions(time_source="clock")``), so the only
difference left is where the formula runs: in Python, or in the Lua script on a real redis-server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.servers import RedisServer
from resilient.clock import VirtualClock
from resilient.ratelimit import Decision, LocalLimiter, Rate, RedisLimiter, RedisLimiterOptions

pytestmark = pytest.mark.real_server

KEYS = ("alice", "bob", "carol")

rates = st.builds(
    Rate,
    limit=st.integers(1, 50),
    period=st.sampled_from([0.001, 0.1, 0.5, 1.0, 3.7, 60.0]) | st.floats(0.01, 100.0),
    burst=st.integers(0, 8),
)

arrivals = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1, 999, 1000, 33_333, 100_000, 250_000, 1_000_000, 7_000_000])
        | st.integers(0, 3_000_000),
        st.sampled_from(KEYS),
        st.sampled_from([0, 1, 1, 1, 2, 3]) | st.integers(0, 60),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)
"""(microseconds since the previous arrival, key, cost, whether this call passes its own rate)."""


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every Hypothesis example of a test (examples are not coroutines)."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture
def client(redis_server: RedisServer, loop: asyncio.AbstractEventLoop) -> Iterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    loop.run_until_complete(redis.aclose())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.floats(0.0, 1e9),
    default_rate=rates,
    per_key=st.dictionaries(st.sampled_from(KEYS), rates, max_size=2),
    call_rate=rates,
    sequence=arrivals,
)
def test_local_and_redis_limiters_give_identical_decisions(
    loop: asyncio.AbstractEventLoop,
    client: aredis.Redis,
    start: float,
    default_rate: Rate,
    per_key: dict[str, Rate],
    call_rate: Rate,
    sequence: list[tuple[int, str, int, bool]],
) -> None:
    clock = VirtualClock(start=start)
    local = LocalLimiter(default_rate, rates=per_key, clock=clock)
    remote = RedisLimiter(
        client,
        default_rate,
        rates=per_key,
        options=RedisLimiterOptions(
            prefix=f"equivalence:{uuid.uuid4().hex}:", time_source="clock", key_ttl_margin=3600
        ),
        clock=clock,
    )

    async def run() -> list[tuple[Decision, Decision]]:
        pairs = []
        for delay_us, key, cost, own_rate in sequence:
            clock.advance(delay_us / 1_000_000)
            rate = call_rate if own_rate else None
            pairs.append(
                (
                    await local.decide(key, cost=cost, rate=rate),
                    await remote.decide(key, cost=cost, rate=rate),
                )
            )
        await remote.aclose()
        return pairs

    for step, (expected, actual) in enumerate(loop.run_until_complete(run())):
        assert actual == expected, (step, sequence[step])


def test_concurrent_batched_decisions_equal_sequential_local_ones(
    loop: asyncio.AbstractEventLoop, client: aredis.Redis
) -> None:
    # Many callers at one instant, coalesced into pipelines, are decided in arrival order.
    clock = VirtualClock(start=500.0)
    rate = Rate(10, 1.0, burst=20)
    local = LocalLimiter(rate, clock=clock)
    remote = RedisLimiter(
        client,
        rate,
        options=RedisLimiterOptions(
            prefix=f"equivalence:{uuid.uuid4().hex}:", time_source="clock", key_ttl_margin=3600
        ),
        clock=clock,
    )
    calls = [(KEYS[i % 3], 1 + i % 2) for i in range(100)]

    async def run() -> tuple[list[Decision], list[Decision]]:
        batched = list(await asyncio.gather(*(remote.decide(k, cost=c) for k, c in calls)))
        await remote.aclose()
        return batched, [await local.decide(k, cost=c) for k, c in calls]

    batched, sequential = loop.run_until_complete(run())
    assert remote.stats.round_trips < 10
    assert batched == sequential
