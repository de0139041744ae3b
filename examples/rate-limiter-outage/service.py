"""A rate-limited aiohttp service whose limiter fails open: Redis trouble never becomes a 429.

Every request is limited per API key (header ``X-Api-Key``) by a global GCRA limit kept in
Redis (:class:`~resilient.ratelimit.RedisLimiter`), asked through a
:class:`~resilient.ratelimit.FailOpenGuard`: when Redis is slow (over the 20 ms budget),
black-holed, resetting or gone, the guard answers from this instance's share of the limit
(a :class:`~resilient.ratelimit.LocalLimiter`), so an abusive key is still limited and nobody
else is refused; after five faults in a row its breaker stops asking Redis at all, and probes
it once a second until it answers again. A 429 therefore always means a real over-limit
decision. Each answer names who decided in the ``X-RateLimit-Source`` header. ``/healthz`` is
not limited (nor counted): a health check must not spend anybody's allowance.

Run it (a redis-server on localhost:6379)::

    python examples/rate-limiter-outage/service.py --redis-url redis://127.0.0.1:6379/0
    curl -H 'X-Api-Key: alice' http://127.0.0.1:8080/

The ``rate-limiter-outage`` chaos scenario builds its guarded arm with :func:`build_app` from
this file, so what the scenario proves is exactly this code.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from resilient.aiohttp import DECISION_KEY, header_key, rate_limit_middleware
from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.ratelimit import (
    FailOpenGuard,
    GuardOptions,
    Limiter,
    LocalLimiter,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
)

RATE = Rate(limit=25, period=1.0, burst=2)
"""Every key's limit: 25 requests per second, and 2 more at once."""

GUARD_OPTIONS = GuardOptions(timeout=0.020)
"""Ask Redis within 20 ms; past that (or on any fault) decide from the local share."""

BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=1.0)
"""Stop asking Redis after 5 faults in a row; let one probe through every second."""

REDIS_OPTIONS = RedisLimiterOptions(round_trip_timeout=0.25)
"""Drop a Redis connection whose round trip hangs for 250 ms, so a probe finds a fresh one."""

API_KEY_HEADER = "X-Api-Key"
"""The header that names the caller; requests without it are limited by client address."""

HEALTH_PATH = "/healthz"
"""The health route: exempt from the limit, otherwise served like every other route."""

SOURCE_HEADER = "X-RateLimit-Source"
"""Response header naming who decided: ``primary``, ``fallback`` or ``pass_through``."""

GUARD: web.AppKey[FailOpenGuard] = web.AppKey("guard", FailOpenGuard)
"""Where :func:`build_app` keeps its guard (for gauges and health pages)."""


def build_app(
    redis_url: str,
    *,
    rate: Rate = RATE,
    instances: int = 1,
    clock: Clock = SYSTEM_CLOCK,
    events: EventBus = DEFAULT_EVENTS,
) -> web.Application:
    """The guarded service: :func:`service_app` limited by a fail-open guard over Redis.

    ``instances``: how many copies of the service share the limit; while Redis cannot answer,
    each limits a key to ``rate.per_share(instances)``.
    """
    redis_limiter = RedisLimiter(redis_url, rate, options=REDIS_OPTIONS, clock=clock, events=events)
    guard = FailOpenGuard(
        redis_limiter,
        dataclasses.replace(GUARD_OPTIONS, instances=instances),
        fallback=LocalLimiter(rate.per_share(instances), clock=clock, events=events),
        breaker=CircuitBreaker("rate-limiter", BREAKER_OPTIONS, clock=clock, events=events),
        clock=clock,
        events=events,
    )
    app = service_app(guard, close=(guard.aclose, redis_limiter.aclose))
    app[GUARD] = guard
    return app


def service_app(
    limiter: Limiter, *, close: Sequence[Callable[[], Awaitable[None]]] = ()
) -> web.Application:
    """The service itself, limited by ``limiter`` per API key; ``close`` runs at cleanup."""
    app = web.Application(
        middlewares=[
            rate_limit_middleware(limiter, key=header_key(API_KEY_HEADER), exempt=(HEALTH_PATH,))
        ]
    )
    app.router.add_get("/", answer)
    app.router.add_get(HEALTH_PATH, health)

    async def close_all(app: web.Application) -> None:
        for step in close:
            await step()

    app.on_cleanup.append(close_all)
    return app


async def answer(request: web.Request) -> web.Response:
    """The service's work (here, a constant), with who let the request through."""
    decision = request.get(DECISION_KEY)
    source = decision.source.value if decision is not None else "exempt"
    return web.Response(text="ok\n", headers={SOURCE_HEADER: source})


async def health(request: web.Request) -> web.Response:
    """The service is up (it answers; the limiter is not asked)."""
    return web.Response(text="ok\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the guarded service: ``--redis-url URL [--host H] [--port P] [--instances N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", required=True, help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--instances", type=int, default=1, help="copies of the service sharing the limit"
    )
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error(f"--instances must be >= 1, got {args.instances}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = build_app(args.redis_url, instances=args.instances)
    web.run_app(app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
