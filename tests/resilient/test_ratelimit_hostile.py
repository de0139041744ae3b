"""Hostile callers against a healthy Redis: no input and no load of this process opens the
breaker or changes another caller's decisions (issue 8, points 1, 3, 6, 7)."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaos.servers import RedisServer
from resilient.aiohttp import header_key, rate_limit_middleware
from resilient.breaker import BreakerState
from resilient.events import EventBus, EventRecorder
from resilient.ratelimit import (
    DecisionSource,
    FailOpenGuard,
    GuardOptions,
    LocalLimiter,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
)

pytestmark = pytest.mark.real_server

RATE = Rate(2, 60.0, burst=1)
"""Two requests at once, then one per 30 s."""


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def options() -> RedisLimiterOptions:
    return RedisLimiterOptions(prefix=f"hostile:{uuid.uuid4().hex}:")


# -- 1. a header whose bytes are not UTF-8 --------------------------------------------------------


async def raw_get(port: int, api_key: bytes) -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 GET with the raw ``X-Api-Key`` bytes (no client library would send them)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Api-Key: " + api_key + b"\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers


async def test_header_bytes_that_are_not_utf8_are_limited_as_their_own_key(
    redis_server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_server.url, RATE, options())
    guard = FailOpenGuard(
        limiter, fallback=LocalLimiter(RATE), events=EventBus(log_when_unobserved=False)
    )
    app = web.Application(middlewares=[rate_limit_middleware(guard, key=header_key("X-Api-Key"))])

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", hello)
    server = TestServer(app)
    await server.start_server()
    try:
        port = server.port
        assert port is not None
        statuses = [(await raw_get(port, b"\xff\xfe\x80"))[0] for _ in range(6)]
        assert statuses == [200, 200, 429, 429, 429, 429]  # limited as that key: 2 per minute
        assert (await raw_get(port, b"\xff\xfe\x81"))[0] == 200  # another such key: its own
        assert (await raw_get(port, b"alice"))[0] == 200
        assert guard.breaker.state is BreakerState.CLOSED
        assert guard.breaker.failure_count == 0
        assert guard.stats.errors == guard.stats.unavailable == guard.stats.fallback == 0
    finally:
        await server.close()
        await guard.aclose()
        await limiter.aclose()


@pytest.mark.parametrize(
    "key",
    ["\udcff\udcfe\udc80", "\ud800", "x" * 100_000, "é" * 40, "\x00\r\n*3\r\n"],
    ids=["escaped-bytes", "lone-surrogate", "100k-chars", "long-utf8", "resp-injection"],
)
async def test_any_str_is_a_key_of_its_own_in_redis(
    redis_server: RedisServer, client: aredis.Redis, key: str
) -> None:
    opts = options()
    limiter = RedisLimiter(redis_server.url, RATE, opts)
    try:
        assert [(await limiter.decide(key)).allowed for _ in range(3)] == [True, True, False]
        assert (await limiter.decide(key + "?")).allowed
        names = await client.keys(opts.prefix + "*")
        assert len(names) == 2
        assert all(len(name) <= len(opts.prefix) + 64 for name in names)  # bounded in Redis
    finally:
        await limiter.aclose()


# -- 3. a thousand callers at once on a healthy Redis -----------------------------------------


@pytest.mark.parametrize("callers", [500, 1000])
async def test_local_queueing_never_opens_the_breaker(
    redis_server: RedisServer, callers: int
) -> None:
    recorder, bus = EventRecorder(), EventBus()
    bus.subscribe(recorder)
    limiter = RedisLimiter(redis_server.url, Rate(10**6, 1.0, burst=10**5), options(), events=bus)
    guard = FailOpenGuard(
        limiter, GuardOptions(timeout=0.020), fallback=LocalLimiter(RATE), events=bus
    )
    try:
        await guard.decide("warm-up")
        for _ in range(2):
            decisions = await asyncio.gather(*(guard.decide(f"u{i}") for i in range(callers)))
            assert all(d.allowed for d in decisions)
            degraded = [d for d in decisions if d.source is not DecisionSource.PRIMARY]
            assert {d.reason for d in degraded} <= {"budget spent waiting in this process"}
        assert guard.breaker.state is BreakerState.CLOSED
        assert guard.breaker.stats.failures == 0
        assert guard.stats.timeouts == 0
        assert not recorder.named("opened")
    finally:
        await guard.aclose()
        await limiter.aclose()


# -- 6. one corrupted value affects nothing -----------------------------------------------------


@pytest.mark.parametrize(
    "value", [b"99999999999999999999", b"garbage", b"-5", b"1.5", b"1e300", b"nan"]
)
async def test_a_corrupted_value_is_taken_as_absent_and_fails_nothing(
    redis_server: RedisServer, client: aredis.Redis, value: bytes
) -> None:
    recorder, bus = EventRecorder(), EventBus()
    bus.subscribe(recorder)
    opts = options()
    limiter = RedisLimiter(redis_server.url, RATE, opts, events=bus)
    try:
        await client.set(opts.prefix + "bad", value)
        decisions = await asyncio.gather(*(limiter.decide(k) for k in ("a", "bad", "b", "c")))
        assert [d.allowed for d in decisions] == [True, True, True, True]
        assert (await limiter.decide("bad")).allowed  # its own allowance: 2 per minute
        assert not (await limiter.decide("bad")).allowed
        assert limiter.stats.failures == 0
        assert not recorder.named("round_trip_failed")
    finally:
        await limiter.aclose()


# -- 7. what validation accepts, every limiter serves --------------------------------------------


@pytest.mark.parametrize(
    "rate",
    [
        Rate(1, 35 * 365 * 24 * 3600.0),  # one unit per 35 years
        Rate(2**50, 1.0, burst=2**49),  # one unit per microsecond, a huge burst
        Rate(1, 1.0, burst=2**50 // 1_000_000 - 1),
    ],
    ids=["35-years", "huge-limit-and-burst", "widest-burst"],
)
async def test_the_extreme_rates_validation_accepts_are_served(
    redis_server: RedisServer, rate: Rate
) -> None:
    limiter = RedisLimiter(
        redis_server.url,
        rate,
        RedisLimiterOptions(prefix=f"extreme:{uuid.uuid4().hex}:", key_ttl_margin=315_360_000.0),
    )
    local = LocalLimiter(rate)
    try:
        for cost in (0, 1, rate.largest_cost, rate.largest_cost + 1, 2**80):
            remote, here = await limiter.decide("k", cost=cost), local.decide_now("k", cost=cost)
            assert remote.allowed == here.allowed, cost
            assert (remote.retry_after == math.inf) == (here.retry_after == math.inf), cost
        assert limiter.stats.failures == 0
    finally:
        await limiter.aclose()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Rate(1, 1e300), "Rate.period"),
        (lambda: Rate(1, 1.0, burst=10**30), "Rate.burst"),
        (lambda: Rate(1, 40 * 365 * 24 * 3600.0), "Rate.period"),
        (lambda: RedisLimiterOptions(key_ttl_margin=1e14), "RedisLimiterOptions.key_ttl_margin"),
        (lambda: RedisLimiterOptions(key_ttl_margin=True), "RedisLimiterOptions.key_ttl_margin"),
        (lambda: Rate(1, True), "Rate.period"),  # type: ignore[arg-type]
    ],
)
def test_what_no_limiter_can_serve_is_refused_up_front(build: object, field: str) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        build()  # type: ignore[operator]
