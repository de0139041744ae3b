"""Pool and gate benchmark: what :class:`~resilient.pool.BoundedPool` costs to lend an idle
connection, against aiohttp's connector and redis-py's ``BlockingConnectionPool`` in the same
run; what :class:`~resilient.pool.ConnectGate` costs per admitted connect, and how exactly it
keeps its rate.

Run: ``.venv/bin/python bench/bench_pool.py`` (``--quick`` for a short run).

Acquire and release of one idle connection, N times in a row, on one event loop:

- ``BoundedPool``: ``async with pool.acquire()``, the pool holding one idle connection (an
  object: the pool never touches it) and a ``check_after_idle`` longer than the run, as the
  peers check nothing either;
- ``aiohttp.TCPConnector``: ``connect(request)`` and ``release()`` of its one idle keep-alive
  connection to a local aiohttp server;
- ``redis.asyncio.BlockingConnectionPool``: ``get_connection()`` and ``release()`` of its one
  idle connection to a local ``redis-server`` (redis-py looks at the socket on each get: that
  is its work, and it is counted).

Rounds are interleaved (each round runs each contender once, in a rotating order): the figure
of each is the median of its rounds, with the spread beside it. Target: ``BoundedPool`` no
slower than the faster peer (the ratio is taken round by round; its median is judged).

The gate: ``await gate.connect(open)`` of an ``open`` that returns at once, with a rate that
never holds it up, minus ``await open()`` alone: its cost per admitted connect. Its accuracy:
200 callers connecting in a loop for 10 s of virtual time through a gate of 50/s (burst 5):
attempts a second within 5% of the rate (and never above ``limit + burst`` in any second).

The exit status is 1 when a target fails.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import redis.asyncio as aredis
from _figures import Figure, run_size
from aiohttp import web
from yarl import URL

from chaos.servers import RedisServer
from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions
from resilient.ratelimit import Rate

FREE = GateOptions(connect_rate=Rate(10**6, 1.0, burst=10**5), max_connecting=10**6)
"""A gate that never holds a connect up: what is measured is its own cost."""
ACCURACY_RATE = Rate(50, 1.0, burst=5)
ACCURACY_SECONDS = 10.0
TARGET_ACCURACY = 0.05


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


Contender = Callable[[int], Awaitable[float]]


async def bounded_pool() -> tuple[Contender, Callable[[], Awaitable[None]]]:
    async def connect() -> object:
        return object()

    async def close(connection: object) -> None:
        return None

    options = PoolOptions(max_size=1, check_after_idle=10**9, housekeeping=10**6)
    pool: BoundedPool[object] = BoundedPool(
        connect, close, options, gate=ConnectGate("bench", FREE, events=quiet()), events=quiet()
    )
    async with pool.acquire():
        pass

    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            async with pool.acquire():
                pass
        return time.perf_counter() - started

    return run, pool.aclose


async def aiohttp_connector() -> tuple[Contender, Callable[[], Awaitable[None]]]:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="x")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = URL(f"http://127.0.0.1:{runner.addresses[0][1]}/")
    connector = aiohttp.TCPConnector()
    session = aiohttp.ClientSession(connector=connector, connector_owner=False)
    async with session.get(url) as response:  # one keep-alive connection, now idle
        await response.read()
    request = aiohttp.ClientRequest("GET", url, loop=asyncio.get_running_loop())
    timeout = aiohttp.ClientTimeout()

    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            connection = await connector.connect(request, [], timeout)
            connection.release()
        return time.perf_counter() - started

    async def close() -> None:
        await session.close()
        await connector.close()
        await runner.cleanup()

    return run, close


async def redis_blocking_pool(
    server: RedisServer,
) -> tuple[Contender, Callable[[], Awaitable[None]]]:
    pool = aredis.BlockingConnectionPool.from_url(server.url, max_connections=1)
    connection = await pool.get_connection()
    await pool.release(connection)

    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            connection = await pool.get_connection()
            await pool.release(connection)
        return time.perf_counter() - started

    return run, pool.aclose


async def measure_lending(count: int, rounds: int, server: RedisServer) -> dict[str, Figure]:
    made = [
        ("BoundedPool", await bounded_pool()),
        ("aiohttp.TCPConnector", await aiohttp_connector()),
        ("redis BlockingConnectionPool", await redis_blocking_pool(server)),
    ]
    figures = {name: Figure(name, []) for name, _ in made}
    try:
        for _, (run, _close) in made:
            await run(min(count, 2000))  # warm up
        for round_ in range(rounds):
            shift = round_ % len(made)
            for name, (run, _close) in made[shift:] + made[:shift]:
                gc.collect()
                figures[name].rounds.append(await run(count) / count * 1e6)
    finally:
        for _, (_run, close) in made:
            await close()
    return figures


async def gate_cost(count: int, rounds: int) -> Figure:
    """Microseconds a connect through a gate that holds nothing up costs over a bare await."""

    async def open_connection() -> None:
        return None

    gate = ConnectGate("bench", FREE, events=quiet())
    figure = Figure("ConnectGate per admitted connect", [])
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        for _ in range(count):
            await open_connection()
        bare = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(count):
            await gate.connect(open_connection)
        gated = time.perf_counter() - started
        figure.rounds.append((gated - bare) / count * 1e6)
    return figure


async def gate_accuracy() -> tuple[float, int]:
    """Attempts a second through a 50/s gate over 10 s of virtual time, and the most in any
    one second."""
    clock = VirtualClock(autojump=True)
    options = GateOptions(connect_rate=ACCURACY_RATE, max_connecting=1000)
    gate = ConnectGate("accuracy", options, clock=clock, events=quiet())
    starts: list[float] = []

    async def open_connection() -> None:
        starts.append(clock.monotonic())

    async def caller() -> None:
        while clock.monotonic() < ACCURACY_SECONDS:
            await gate.connect(open_connection)

    await asyncio.gather(*(caller() for _ in range(200)))
    inside = [t for t in starts if t < ACCURACY_SECONDS]
    most = max(sum(1 for t in inside if s <= t < s + 1.0) for s in inside)
    return len(inside) / ACCURACY_SECONDS, most


def report(
    lending: dict[str, Figure], cost: Figure, accuracy: tuple[float, int], count: int, rounds: int
) -> int:
    print(f"pool benchmark: {count:,} acquire+release per round, {rounds} rounds")
    print(f"{'contender':32} {'us/op':>7} {'spread':>11}   {'x faster peer (per round)':>26}")
    ours = lending["BoundedPool"]
    peers = [figure for name, figure in lending.items() if name != "BoundedPool"]
    faster = [min(values) for values in zip(*(peer.rounds for peer in peers), strict=True)]
    for figure in lending.values():
        print(f"{figure.name:32} {figure.median:7.2f} {figure.spread:>11}")
    ratios = [mine / theirs for mine, theirs in zip(ours.rounds, faster, strict=True)]
    ratio = statistics.median(ratios)
    lending_ok = ratio <= 1.0
    print(
        f"{'BoundedPool / faster peer':32} {ratio:7.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        f"   <= 1x {'PASS' if lending_ok else 'FAIL'}"
    )
    print(f"{cost.name:32} {cost.median:7.2f} {cost.spread:>11}   (shown)")
    per_second, most = accuracy
    error = abs(per_second - ACCURACY_RATE.limit) / ACCURACY_RATE.limit
    ceiling = ACCURACY_RATE.limit + ACCURACY_RATE.burst
    accuracy_ok = error <= TARGET_ACCURACY and most <= ceiling
    print(
        f"{'ConnectGate accuracy (virtual)':32} {per_second:7.2f}/s for {ACCURACY_RATE}, "
        f"off by {error:.1%}, at most {most} in a second (<= {ceiling})   <= 5% "
        f"{'PASS' if accuracy_ok else 'FAIL'}"
    )
    return 0 if lending_ok and accuracy_ok else 1


def main() -> int:
    count, rounds = run_size(__doc__, "operations", 50_000, 7, quick=5_000)

    async def run() -> int:
        with RedisServer() as server:
            lending = await measure_lending(count, rounds, server)
        cost = await gate_cost(count, rounds)
        accuracy = await gate_accuracy()
        return report(lending, cost, accuracy, count, rounds)

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
