"""Probes of a scenario's dependencies taken beside the guard, for its premises.

A premise (:class:`chaos.scenario.Premise`) is about the environment, not the guard, so what
it measures must bypass the guard: :func:`probe_redis` registers a gauge that opens a new
redis-py connection through the dependency's proxy and times a PING, the reconnection a
breaker's probe makes after a fault, on the arm's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import redis.asyncio

from chaos.scenario import ArmContext

__all__ = ["ROUND_TRIP_GAUGE", "probe_redis"]

ROUND_TRIP_GAUGE = "redis_round_trip"
"""The gauge :func:`probe_redis` registers: seconds for a new connection to answer PING."""


def probe_redis(ctx: ArmContext, name: str, *, cap: float) -> None:
    """Register :data:`ROUND_TRIP_GAUGE` on ``ctx``: each sample opens a new connection to
    the Redis server or proxy ``name`` and times a PING. A sample that has no answer within
    ``cap`` seconds (or none at all: a fault is on) reads ``cap``; keep ``cap`` under the
    scenario's gauge interval, so that a slow sample is still a sample."""
    url = ctx.url(name, scheme="redis", path="0")
    ctx.gauge(ROUND_TRIP_GAUGE, functools.partial(_fresh_round_trip, url, cap))


async def _fresh_round_trip(url: str, cap: float) -> float:
    started = time.monotonic()
    client = redis.asyncio.Redis.from_url(url, single_connection_client=True)
    try:
        async with asyncio.timeout(cap):
            await client.ping()
        return time.monotonic() - started
    except (TimeoutError, OSError, redis.RedisError):
        return cap
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(cap):
                await client.aclose()
