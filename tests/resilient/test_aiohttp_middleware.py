"""The aiohttp middleware on a real loopback server: 429 only for a real over-limit decision."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from resilient.aiohttp import DECISION_KEY, header_key, rate_limit_middleware
from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.ratelimit import (
    Decision,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    Limiter,
    LocalLimiter,
    Rate,
)

RATE = Rate(2, 1.0)  # 1 at once, then 1 every 0.5 s


class DownLimiter:
    """A primary whose store is down: every decision raises."""

    def __init__(self) -> None:
        self.calls = 0

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        self.calls += 1
        raise OSError("connection refused")


async def show_decision(request: web.Request) -> web.Response:
    decision = request.get(DECISION_KEY)
    if decision is None:
        return web.json_response({"decision": None})
    return web.json_response(
        {"source": decision.source.value, "reason": decision.reason, "allowed": decision.allowed}
    )


@asynccontextmanager
async def serve(middleware: Any) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[middleware])
    app.router.add_get("/", show_decision)
    app.router.add_get("/health", show_decision)
    app.router.add_get("/items/{id}", show_decision)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def guard_over_down_primary(clock: VirtualClock, mode: GuardMode) -> FailOpenGuard:
    fallback = LocalLimiter(RATE, clock=clock) if mode is GuardMode.FALLBACK else None
    return FailOpenGuard(
        DownLimiter(),
        GuardOptions(mode=mode),
        fallback=fallback,
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )


async def test_allowed_requests_reach_the_handler_with_their_decision() -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())
    async with serve(rate_limit_middleware(limiter)) as client:
        response = await client.get("/")
        assert response.status == 200
        assert await response.json() == {"source": "primary", "reason": "", "allowed": True}
        assert "Retry-After" not in response.headers


async def test_a_real_denial_is_429_with_retry_and_ratelimit_headers() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(RATE, clock=clock)
    async with serve(rate_limit_middleware(limiter)) as client:
        assert (await client.get("/")).status == 200
        clock.advance(0.1)
        denied = await client.get("/")
        assert denied.status == 429
        assert denied.headers["Retry-After"] == "1"  # 0.4 s, rounded up
        assert denied.headers["RateLimit-Limit"] == "2"
        assert denied.headers["RateLimit-Remaining"] == "0"
        assert denied.headers["RateLimit-Reset"] == "1"
        clock.advance(0.4)
        assert (await client.get("/")).status == 200


async def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(1, 2.5), clock=clock)
    async with serve(rate_limit_middleware(limiter, rate=Rate(1, 2.5))) as client:
        await client.get("/")
        denied = await client.get("/")
        assert denied.status == 429
        assert denied.headers["Retry-After"] == "3"
        assert denied.headers["RateLimit-Limit"] == "1"


async def test_a_degraded_decision_that_allows_is_never_a_429() -> None:
    clock = VirtualClock()
    guard = guard_over_down_primary(clock, GuardMode.FALLBACK)
    async with serve(rate_limit_middleware(guard, key=header_key("X-Api-Key"))) as client:
        reasons = []
        for user in range(20):
            response = await client.get("/", headers={"X-Api-Key": f"user-{user}"})
            assert response.status == 200
            body = await response.json()
            assert body["source"] == "fallback"
            reasons.append(body["reason"])
        # Five faults open the guard's breaker; then the primary is not even asked.
        assert reasons == ["primary unavailable: OSError"] * 5 + ["breaker open"] * 15


async def test_the_fallback_still_answers_429_for_a_key_over_its_share() -> None:
    clock = VirtualClock()
    guard = guard_over_down_primary(clock, GuardMode.FALLBACK)
    async with serve(rate_limit_middleware(guard, key=header_key("X-Api-Key"))) as client:
        statuses = [
            (await client.get("/", headers={"X-Api-Key": "abuser"})).status for _ in range(3)
        ]
        assert statuses == [200, 429, 429]


async def test_pass_through_lets_everything_through() -> None:
    guard = guard_over_down_primary(VirtualClock(), GuardMode.PASS_THROUGH)
    async with serve(rate_limit_middleware(guard)) as client:
        for _ in range(10):
            response = await client.get("/")
            assert response.status == 200
            assert (await response.json())["source"] == "pass_through"


async def test_fail_closed_answers_503_never_429() -> None:
    guard = guard_over_down_primary(VirtualClock(), GuardMode.FAIL_CLOSED)
    async with serve(rate_limit_middleware(guard)) as client:
        response = await client.get("/")
        assert response.status == 503
        assert "Retry-After" not in response.headers
        assert "RateLimit-Remaining" not in response.headers


@pytest.mark.parametrize(
    "exempt",
    [
        ["/health", "/items/{id}"],
        lambda request: request.path != "/",
    ],
)
async def test_exempt_routes_are_neither_counted_nor_limited(
    exempt: list[str] | Callable[[web.Request], bool],
) -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())
    async with serve(rate_limit_middleware(limiter, exempt=exempt)) as client:
        for path in ["/health", "/items/7", "/health", "/items/8"]:
            response = await client.get(path)
            assert response.status == 200
            assert await response.json() == {"decision": None}
        assert len(limiter) == 0
        assert (await client.get("/")).status == 200
        assert (await client.get("/")).status == 429


async def test_keys_from_a_header_are_limited_separately() -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())
    async with serve(rate_limit_middleware(limiter, key=header_key("X-Api-Key"))) as client:
        assert (await client.get("/", headers={"X-Api-Key": "a"})).status == 200
        assert (await client.get("/", headers={"X-Api-Key": "b"})).status == 200
        assert (await client.get("/", headers={"X-Api-Key": "a"})).status == 429
        # No header: the client's address is the key.
        assert (await client.get("/")).status == 200
        assert (await client.get("/")).status == 429


async def test_cost_per_request() -> None:
    limiter: Limiter = LocalLimiter(Rate(10, 1.0, burst=9), clock=VirtualClock())

    def cost(request: web.Request) -> int:
        return 6 if request.path.startswith("/items") else 1

    async with serve(rate_limit_middleware(limiter, cost=cost)) as client:
        assert (await client.get("/items/1")).status == 200
        assert (await client.get("/items/2")).status == 429
        assert (await client.get("/")).status == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost": -1}, "cost must be an int >= 0"),
        ({"exempt": ["health"]}, "exempt paths must start with '/'"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())
    with pytest.raises(ValueError, match=message):
        rate_limit_middleware(limiter, **kwargs)


async def test_a_request_no_wait_can_allow_is_429_without_retry_after_and_says_why() -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())  # the largest request: 1 unit
    async with serve(rate_limit_middleware(limiter, cost=5)) as client:
        response = await client.get("/")
        assert response.status == 429
        assert "Retry-After" not in response.headers  # waiting would not help
        assert response.headers["RateLimit-Limit"] == "2"
        assert "cost 5 exceeds the largest request this rate ever allows (1)" in (
            await response.text()
        )


# -- the exact answers and refusals (mutation survivors) ----------------------------------------


def test_a_request_without_an_address_is_keyed_unknown() -> None:
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from resilient.aiohttp import remote_address

    transport = mock.Mock()
    transport.get_extra_info.return_value = None  # no peer name: aiohttp's remote is None
    assert remote_address(make_mocked_request("GET", "/", transport=transport)) == "unknown"
    transport.get_extra_info.return_value = ("10.0.0.7", 5000)
    assert remote_address(make_mocked_request("GET", "/", transport=transport)) == "10.0.0.7"


async def test_the_answers_in_exact_words() -> None:
    clock = VirtualClock()
    async with serve(rate_limit_middleware(LocalLimiter(RATE, clock=clock))) as client:
        await client.get("/")
        denied = await client.get("/")
        assert (denied.status, await denied.text()) == (429, "Too Many Requests")
    guard = guard_over_down_primary(VirtualClock(), GuardMode.FAIL_CLOSED)
    async with serve(rate_limit_middleware(guard)) as client:
        unavailable = await client.get("/")
        assert (unavailable.status, await unavailable.text()) == (
            503,
            "Service Unavailable: rate limiter unavailable",
        )
    async with serve(rate_limit_middleware(LocalLimiter(RATE, clock=clock), cost=5)) as client:
        never = await client.get("/")
        assert await never.text() == (
            "Too Many Requests: cost 5 exceeds the largest request this rate ever allows (1)"
        )
        assert never.headers["RateLimit-Reset"] == "0"  # a fresh key: nothing to reset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost": -1}, "rate_limit_middleware.cost must be an int >= 0, got -1"),
        ({"cost": True}, "rate_limit_middleware.cost must be an int >= 0, got True"),
        (
            {"exempt": ["health"]},
            "rate_limit_middleware.exempt paths must start with '/', got 'health'",
        ),
    ],
)
def test_bad_arguments_in_exact_words(kwargs: dict[str, Any], message: str) -> None:
    limiter = LocalLimiter(RATE, clock=VirtualClock())
    with pytest.raises(ValueError) as raised:  # noqa: PT011 - the exact words are checked below
        rate_limit_middleware(limiter, **kwargs)
    assert str(raised.value) == message


async def test_a_cost_of_zero_reads_without_counting() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(RATE, clock=clock)
    async with serve(rate_limit_middleware(limiter, cost=0)) as client:
        for _ in range(5):
            assert (await client.get("/")).status == 200
    assert len(limiter) == 0
