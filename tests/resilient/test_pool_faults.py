"""BoundedPool and its gate against a real TCP server behind the embedded proxy, under faults:
broken connections are discarded and replaced at the gated pace, never faster, a reconnect
loop trips the gate, and the pool serves again once the fault is gone. Real time, kept short;
every loop is bounded in count and in time.

Also aiohttp's connector, against a real server, opens its connections through the gate (for
redis-py's pool, see ``test_redis_adapter.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from chaos.pytest_plugin import ProxyFactory
from chaos.toxiproxy.control import ToxiproxyControl
from resilient.aiohttp import GatedConnector
from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.errors import ConfigurationError, ConnectRefusedError, PoolTimeoutError
from resilient.events import EventBus
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions, shared_gate
from resilient.ratelimit import Rate

pytestmark = [pytest.mark.real_server, pytest.mark.chaos]

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

RATE = Rate(20, 1.0)
"""20 connects a second, none at once beyond that: one every 50 ms."""
GATE = GateOptions(
    connect_rate=RATE,
    backoff_initial=0.05,
    backoff_max=0.2,
    failures=(OSError, asyncio.IncompleteReadError),
)


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def gate_for(name: str, options: GateOptions = GATE) -> ConnectGate:
    """A gate whose breaker probes again after 0.3 s (30 s by default), so that a test sees
    it trip and recover within its bounds."""
    breaker_options = BreakerOptions(failure_threshold=5, reset_timeout=0.3)
    breaker = CircuitBreaker(f"connect {name}", breaker_options, events=quiet())
    return ConnectGate(name, options, breaker=breaker, events=quiet())


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A line echo server on a free loopback port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def stream_pool(port: int, gate: ConnectGate, **options: object) -> BoundedPool[Stream]:
    async def connect() -> Stream:
        return await asyncio.open_connection("127.0.0.1", port)

    async def close(stream: Stream) -> None:
        stream[1].close()
        with contextlib.suppress(OSError):
            await stream[1].wait_closed()

    pool_options = PoolOptions(**options)  # type: ignore[arg-type]
    return BoundedPool(connect, close, pool_options, gate=gate, events=quiet())


async def use(pool: BoundedPool[Stream]) -> None:
    async with pool.acquire() as (reader, writer):
        writer.write(b"ping\n")
        async with asyncio.timeout(0.2):
            assert await reader.readuntil(b"\n") == b"ping\n"


async def hammer(pool: BoundedPool[Stream], seconds: float, callers: int = 8) -> dict[str, int]:
    """``callers`` tasks using the pool in a loop for ``seconds`` (each use at most 0.2 s):
    how each use ended, by exception name."""
    ends: dict[str, int] = {}
    stop = time.monotonic() + seconds

    async def caller() -> None:
        for _ in range(10_000):
            if time.monotonic() >= stop:
                return
            try:
                await use(pool)
                name = "ok"
            except Exception as error:
                name = type(error).__name__
                await asyncio.sleep(0.005)
            ends[name] = ends.get(name, 0) + 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return ends


@pytest.mark.parametrize(
    ("toxic", "attributes"),
    [
        ("reset_peer", {"timeout": 0}),
        ("limit_data", {"bytes": 3}),
        ("timeout", {"timeout": 0}),
    ],
)
async def test_broken_connections_are_replaced_at_the_gated_pace_never_faster(
    toxiproxy: ToxiproxyControl,
    toxiproxy_proxy: ProxyFactory,
    echo_port: int,
    toxic: str,
    attributes: dict[str, int],
) -> None:
    proxy = await toxiproxy_proxy(upstream=f"127.0.0.1:{echo_port}")
    gate = gate_for(f"echo-{toxic}")
    pool = stream_pool(proxy.listen_port, gate, max_size=4, acquire_timeout=0.5)
    try:
        assert set(await hammer(pool, 0.3)) == {"ok"}
        opened = gate.stats.attempts
        assert opened <= 4
        await toxiproxy.add_toxic(proxy.name, toxic, attributes=attributes)
        started = time.monotonic()
        ends = await hammer(pool, 1.0)
        elapsed = time.monotonic() - started
        attempts = gate.stats.attempts - opened
        assert ends.get("ok", 0) == 0, ends
        assert pool.stats.discarded >= 1
        # never faster than the gate: one connect per 50 ms at most, plus the first
        assert attempts <= RATE.limit * elapsed + 1, (attempts, elapsed)
        assert pool.stats.open + pool.stats.connecting <= 4
        assert gate.stats.churned + gate.stats.failures >= 1
        await toxiproxy.remove_toxic(proxy.name, f"{toxic}_downstream")
        for _ in range(100):  # the pool serves again within a few seconds (bounded)
            with contextlib.suppress(Exception):
                await use(pool)
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the pool did not recover after {toxic}: {pool.stats}, {gate!r}")
    finally:
        await pool.aclose()
        await gate.aclose()


async def test_a_reconnect_loop_trips_the_gate_and_a_disabled_proxy_backs_it_off(
    toxiproxy: ToxiproxyControl, toxiproxy_proxy: ProxyFactory, echo_port: int
) -> None:
    proxy = await toxiproxy_proxy(upstream=f"127.0.0.1:{echo_port}")
    gate = gate_for("echo-loop")
    pool = stream_pool(proxy.listen_port, gate, max_size=2, acquire_timeout=0.5)
    try:
        await toxiproxy.add_toxic(proxy.name, "reset_peer", attributes={"timeout": 0})
        ends = await hammer(pool, 1.5, callers=4)
        assert gate.stats.churned >= 5
        assert gate.breaker.state.value == "open"  # five lost in a row: the gate stopped
        assert ends.get("ConnectRefusedError", 0) >= 1, ends
        await toxiproxy.remove_toxic(proxy.name, "reset_peer_downstream")
        await toxiproxy.disable(proxy.name)
        fresh = gate_for("echo-disabled")
        refused = stream_pool(proxy.listen_port, fresh, max_size=2, acquire_timeout=0.3)
        try:
            started = time.monotonic()
            await hammer(refused, 1.0, callers=4)
            elapsed = time.monotonic() - started
            # backoff 50 ms, x1.6, at most 200 ms (+-20%): a handful of attempts, never a storm
            assert 2 <= fresh.stats.failures <= 5 + elapsed / 0.16, fresh.stats
        finally:
            await refused.aclose()
            await fresh.aclose()
    finally:
        await pool.aclose()
        await gate.aclose()


async def test_a_pool_waiting_on_a_down_destination_times_out_with_a_clear_error(
    toxiproxy: ToxiproxyControl, toxiproxy_proxy: ProxyFactory, echo_port: int
) -> None:
    proxy = await toxiproxy_proxy(upstream=f"127.0.0.1:{echo_port}", enabled=False)
    slow = GateOptions(backoff_initial=5.0, backoff_max=5.0)
    gate = gate_for("echo-down", slow)
    pool = stream_pool(proxy.listen_port, gate, acquire_timeout=0.5)
    try:
        with pytest.raises(ConnectionRefusedError):
            await use(pool)
        with pytest.raises(ConnectRefusedError, match="backoff after 1 failures"):
            await use(pool)
        assert pool.stats.gated == 1
    finally:
        await pool.aclose()
        await gate.aclose()


# -- the adapters --------------------------------------------------------------------------------


async def test_aiohttps_connections_pass_the_gate() -> None:
    connections: set[object] = set()

    async def hello(request: web.Request) -> web.Response:
        connections.add(request.transport)
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    options = GateOptions(connect_rate=RATE)
    try:
        connector = GatedConnector(options, force_close=True, events=quiet())
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.monotonic()

            async def get() -> str:
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    return await response.text()

            assert await asyncio.gather(*(get() for _ in range(10))) == ["hello"] * 10
            elapsed = time.monotonic() - started
        gate = shared_gate(f"127.0.0.1:{port}", options)
        assert gate.stats.attempts == gate.stats.connects == 10
        assert len(connections) == 10  # force_close: a new connection per request
        assert elapsed >= 9 / RATE.limit * 0.95  # 10 connects at 20/s take 0.45 s at least
    finally:
        await runner.cleanup()


def test_a_pool_timeout_is_a_timeout_error() -> None:
    assert issubclass(PoolTimeoutError, TimeoutError)


def test_an_aiohttp_whose_create_connection_changed_is_refused_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resilient.aiohttp as adapter

    async def changed(self: object, req: object, traces: object) -> None:
        return None

    monkeypatch.setattr(aiohttp.TCPConnector, "_create_connection", changed)
    with pytest.raises(ConfigurationError, match=r"this aiohttp is not supported"):
        adapter._check_aiohttp()
