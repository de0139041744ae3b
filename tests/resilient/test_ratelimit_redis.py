"""RedisLimiter on a real redis-server: the GCRA formula, the script, time, batching, faults."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis as aredis_module
import redis.asyncio as aredis
import trustme

import resilient.ratelimit._redis as redis_limiter_module
from chaos.servers import RedisServer
from resilient.clock import VirtualClock
from resilient.errors import ConfigurationError
from resilient.events import EventBus, EventRecorder, Severity
from resilient.ratelimit import (
    DEFAULT_PREFIX,
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardOptions,
    LimiterUnavailable,
    LocalLimiter,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
    RedisLimiterUnavailable,
)
from resilient.ratelimit._gcra import NEVER, gcra
from resilient.ratelimit._redis import GCRA_SCRIPT
from resilient.ratelimit._resp import open_streams

pytestmark = pytest.mark.real_server

LimiterFactory = Callable[..., Awaitable[RedisLimiter]]


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def make_limiter(client: aredis.Redis) -> AsyncIterator[LimiterFactory]:
    """Limiters on the session's Redis, each under a prefix of its own test; all closed after."""
    made: list[RedisLimiter] = []
    prefix = f"test:{uuid.uuid4().hex}:"

    async def make(rate: Rate, **kwargs: object) -> RedisLimiter:
        options = kwargs.pop("options", RedisLimiterOptions())
        assert isinstance(options, RedisLimiterOptions)
        if options.prefix == DEFAULT_PREFIX:
            options = dataclasses.replace(options, prefix=prefix)
        redis = kwargs.pop("redis", client)
        limiter = RedisLimiter(redis, rate, options, **kwargs)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def expected_decision(
    state: dict[str, int], key: str, now_us: int, rate: Rate, cost: int
) -> tuple[bool, int, float, float]:
    """What ``_gcra.gcra`` says, with keys expiring at their reset time as Redis expires them."""
    result = gcra(state.get(key), now_us, rate.emission_us, rate.tolerance_us, cost)
    if result.allowed and cost > 0:
        state[key] = result.new_tat_us
    never = result.retry_after_us == NEVER
    return (
        result.allowed,
        result.remaining,
        math.inf if never else result.retry_after_us / 1_000_000,
        result.reset_after_us / 1_000_000,
    )


def fields(decision: Decision) -> tuple[bool, int, float, float]:
    return (decision.allowed, decision.remaining, decision.retry_after, decision.reset_after)


# -- the formula -------------------------------------------------------------------------------


async def test_decisions_equal_the_gcra_formula_step_by_step(make_limiter: LimiterFactory) -> None:
    clock = VirtualClock(start=1000.0)
    rates = {"slow": Rate(2, 1.0), "bursty": Rate(10, 1.0, burst=5), "odd": Rate(7, 3.0, burst=1)}
    limiter = await make_limiter(
        Rate(5, 1.0, burst=2),
        rates=rates,
        clock=clock,
        options=RedisLimiterOptions(time_source="clock", key_ttl_margin=3600),
    )
    rng = random.Random(4)
    state: dict[str, int] = {}
    keys = ["slow", "bursty", "odd", "default"]
    for _ in range(400):
        clock.advance(rng.choice([0, 0, 0.001, 0.05, 0.2, 0.9, 3.0]))
        key = rng.choice(keys)
        cost = rng.choice([0, 1, 1, 1, 2, 3, 9])
        rate = rates.get(key, limiter.rate)
        now_us = int(clock.monotonic() * 1_000_000)
        decision = await limiter.decide(key, cost=cost)
        assert decision.source is DecisionSource.PRIMARY
        assert fields(decision) == expected_decision(state, key, now_us, rate, cost), (key, cost)


async def test_rate_given_per_call_overrides_per_key_rates(make_limiter: LimiterFactory) -> None:
    clock = VirtualClock(start=50.0)
    limiter = await make_limiter(
        Rate(100, 1.0),
        rates=lambda key: Rate(1, 60.0),
        clock=clock,
        options=RedisLimiterOptions(time_source="clock"),
    )
    assert limiter.rate_for("anything") == Rate(1, 60.0)
    assert (await limiter.decide("k")).allowed
    assert not (await limiter.decide("k")).allowed
    assert (await limiter.decide("k2", rate=Rate(3, 1.0, burst=2))).remaining == 2


async def test_cost_above_the_burst_is_denied_without_touching_the_key(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    limiter = await make_limiter(Rate(5, 1.0, burst=1))
    for cost in (3, 7, 2**60):
        decision = await limiter.decide("big", cost=cost)
        assert not decision.allowed
        assert decision.retry_after == math.inf
        assert (
            decision.reason == f"cost {cost} exceeds the largest request this rate ever allows (2)"
        )
    assert await client.exists(limiter.options.prefix + "big") == 0
    assert (await limiter.decide("big", cost=2)).allowed


# -- time ----------------------------------------------------------------------------------------


async def test_server_time_makes_limiters_with_skewed_clocks_share_one_limit(
    make_limiter: LimiterFactory,
) -> None:
    rate = Rate(1, 60.0, burst=4)
    prefix = f"skew:{uuid.uuid4().hex}:"
    options = RedisLimiterOptions(prefix=prefix)
    early = await make_limiter(rate, options=options, clock=VirtualClock(start=0.0))
    late = await make_limiter(rate, options=options, clock=VirtualClock(start=7 * 60.0))
    outcomes = [await (early if i % 2 else late).decide("shared") for i in range(8)]
    assert [d.allowed for d in outcomes] == [True] * 5 + [False] * 3
    # Both read the same TAT from the same server clock: their views of the key agree.
    assert abs(outcomes[-1].reset_after - outcomes[-2].reset_after) < 1.0


async def test_clock_time_source_sends_the_injected_clock(make_limiter: LimiterFactory) -> None:
    clock = VirtualClock(start=10.0)
    limiter = await make_limiter(
        Rate(1, 10.0), options=RedisLimiterOptions(time_source="clock"), clock=clock
    )
    assert (await limiter.decide("k")).allowed
    denied = await limiter.decide("k")
    assert (denied.allowed, denied.retry_after) == (False, 10.0)
    clock.advance(10.0)
    assert (await limiter.decide("k")).allowed


async def test_four_guards_sharing_one_redis_enforce_one_global_limit(
    redis_server: RedisServer,
) -> None:
    # Four guarded instances (each its own client and connection) offer twice the global rate
    # for 5 s of shared virtual time; together they allow what one limiter would, within 5%.
    clock = VirtualClock(start=100.0)
    rate = Rate(200, 1.0, burst=10)
    prefix = f"global:{uuid.uuid4().hex}:"
    limiters = [
        RedisLimiter(
            redis_server.url,
            rate,
            RedisLimiterOptions(prefix=prefix, time_source="clock", key_ttl_margin=3600),
            clock=clock,
        )
        for _ in range(4)
    ]
    guards = [
        FailOpenGuard(
            limiter,
            GuardOptions(instances=4),
            fallback=LocalLimiter(rate.per_share(4), clock=clock),
            clock=clock,
        )
        for limiter in limiters
    ]
    decisions: list[Decision] = []
    try:
        for _ in range(500):  # every 10 ms each instance asks once: 400/s offered
            decisions += await asyncio.gather(*(guard.decide("tenant") for guard in guards))
            clock.advance(0.01)
    finally:
        for guard, limiter in zip(guards, limiters, strict=True):
            await guard.aclose()
            await limiter.aclose()
    assert {d.source for d in decisions} == {DecisionSource.PRIMARY}
    allowed = sum(d.allowed for d in decisions)
    expected = 200 * 5 + 10
    assert abs(allowed - expected) <= 0.05 * expected, allowed
    assert sum(limiter.stats.round_trips for limiter in limiters) <= 4 * 500 + 4


# -- keys, script, connections --------------------------------------------------------------------


async def test_key_is_prefixed_holds_the_tat_and_expires_at_reset(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    clock = VirtualClock(start=20.0)
    limiter = await make_limiter(
        Rate(10, 1.0, burst=4),
        options=RedisLimiterOptions(prefix="custom:prefix:", time_source="clock"),
        clock=clock,
    )
    await client.delete("custom:prefix:user-1")
    decision = await limiter.decide("user-1", cost=3)
    stored = await client.get("custom:prefix:user-1")
    assert stored == b"%d" % (20_000_000 + 3 * 100_000)
    ttl_ms = await client.pttl("custom:prefix:user-1")
    assert 0 < ttl_ms <= round(decision.reset_after * 1000) == 300
    assert await client.exists("user-1") == 0
    for _ in range(100):  # an idle key vanishes by itself once its reset time has passed
        if not await client.exists("custom:prefix:user-1"):
            break
        await asyncio.sleep(0.01)
    assert await client.exists("custom:prefix:user-1") == 0


async def test_key_ttl_margin_extends_the_expiry(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    limiter = await make_limiter(Rate(10, 1.0), options=RedisLimiterOptions(key_ttl_margin=60))
    await limiter.decide("k")
    assert 60_000 < await client.pttl(limiter.options.prefix + "k") <= 60_100


async def test_script_is_reloaded_after_script_flush(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    limiter = await make_limiter(Rate(100, 3600.0, burst=99), events=bus)
    assert (await limiter.decide("k")).allowed
    assert limiter.stats.script_loads == 1
    round_trips = limiter.stats.round_trips
    await client.script_flush()
    results = await asyncio.gather(*(limiter.decide(f"k{i}") for i in range(10)))
    assert all(d.allowed for d in results)
    assert limiter.stats.script_loads == 2
    # One pipeline for the ten, one more for the reload (and the ten sent again after it):
    # stats.round_trips counts both, as its docstring says.
    assert limiter.stats.round_trips - round_trips == 2
    assert [e.attributes["reason"] for e in recorder.named("script_reloaded")] == ["NOSCRIPT"]
    assert (await limiter.decide("k")).remaining == 98


async def test_url_with_password_and_database(fresh_redis_server: RedisServer) -> None:
    admin = aredis.Redis.from_url(fresh_redis_server.url)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    host, port = fresh_redis_server.host, fresh_redis_server.port
    limiter = RedisLimiter(
        f"redis://:s3cret@{host}:{port}/3", Rate(10, 1.0), RedisLimiterOptions(prefix="p:")
    )
    assert (await limiter.decide("k")).allowed
    await limiter.aclose()
    check = aredis.Redis(host=host, port=port, password="s3cret", db=3)
    assert await check.exists("p:k") == 1
    other_db = aredis.Redis(host=host, port=port, password="s3cret", db=0)
    assert await other_db.exists("p:k") == 0
    await check.aclose()
    await other_db.aclose()
    with pytest.raises(RedisLimiterUnavailable):
        await limiter.decide("k")


async def test_tls_url_verifies_the_server_and_decides(
    redis_server: RedisServer, client: aredis.Redis, tmp_path: Path
) -> None:
    # The bundled redis-server has no TLS: a TLS terminator on loopback stands in front of it.
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    prefix = f"tls:{uuid.uuid4().hex}:"
    async with _tls_terminator(redis_server, server_context) as port:
        trusted = RedisLimiter(
            f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_file}",
            Rate(1, 60.0),  # the key outlives the test (a faster rate's key expired in 0.1 s)
            RedisLimiterOptions(prefix=prefix),
        )
        assert (await trusted.decide("k")).allowed
        await trusted.aclose()
        untrusted = RedisLimiter(
            f"rediss://127.0.0.1:{port}/0",
            Rate(10, 1.0),
            options=RedisLimiterOptions(prefix=prefix, round_trip_timeout=2.0),
        )
        with pytest.raises(RedisLimiterUnavailable):  # a certificate nobody vouches for
            await untrusted.decide("k")
        await untrusted.aclose()
    assert await client.exists(prefix + "k") == 1


async def test_a_passed_client_stays_open_and_gets_its_connection_back(
    redis_server: RedisServer,
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    pool = client.connection_pool
    limiter = RedisLimiter(
        client, Rate(10, 1.0), RedisLimiterOptions(prefix=f"own:{uuid.uuid4().hex}:")
    )
    await limiter.decide("k")
    assert len(pool._in_use_connections) == 1
    await limiter.aclose()
    assert len(pool._in_use_connections) == 0
    assert await client.ping()
    await client.aclose()


# -- batching and cancellation -----------------------------------------------------------------


async def test_concurrent_callers_share_round_trips(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    limiter = await make_limiter(Rate(1000, 1.0, burst=100))
    await limiter.decide("warm-up")
    before = await _evalsha_calls(client)
    round_trips = limiter.stats.round_trips
    decisions = await asyncio.gather(*(limiter.decide(f"k{i % 8}") for i in range(64)))
    assert all(d.allowed for d in decisions)
    assert limiter.stats.round_trips - round_trips <= 2
    assert await _evalsha_calls(client) - before == 64


async def test_sequential_callers_get_one_round_trip_each(make_limiter: LimiterFactory) -> None:
    limiter = await make_limiter(Rate(1000, 1.0))
    for _ in range(20):
        await limiter.decide("k")
    assert limiter.stats.round_trips == 20
    assert limiter.stats.decisions == 20


async def test_cancelled_callers_leak_no_connection_and_no_batch_slot(
    make_limiter: LimiterFactory, client: aredis.Redis, redis_server: RedisServer
) -> None:
    limiter = await make_limiter(Rate(1000, 1.0, burst=999))
    await limiter.decide("warm-up")
    pool = client.connection_pool
    in_use = len(pool._in_use_connections)
    admin = aredis.Redis.from_url(redis_server.url)
    # Redis holds every other client's commands for 0.5 s: the next round trip hangs.
    await admin.execute_command("CLIENT", "PAUSE", 500, "ALL")  # type: ignore[no-untyped-call]
    try:
        tasks = [asyncio.create_task(limiter.decide(f"k{i}")) for i in range(64)]
        await asyncio.sleep(0.05)
        stuck = [asyncio.create_task(limiter.decide(f"late{i}")) for i in range(16)]
        await asyncio.sleep(0)
        assert limiter.pending == 16  # queued behind the round trip in flight
        for task in tasks + stuck:
            task.cancel()
        await asyncio.gather(*tasks, *stuck, return_exceptions=True)
        assert all(task.cancelled() for task in tasks + stuck)
        assert limiter.pending == 0
        assert len(limiter._pending) == 0
        assert len(pool._in_use_connections) == in_use
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        await admin.aclose()
    decision = await limiter.decide("after")  # the flusher survived and replies stay in order
    assert (decision.allowed, decision.remaining) == (True, 999)
    assert len(pool._in_use_connections) == in_use


# -- faults raise, never deny -------------------------------------------------------------------


async def test_nothing_listening_raises_unavailable() -> None:
    from chaos.servers import free_port

    limiter = RedisLimiter(
        f"redis://127.0.0.1:{free_port()}/0",
        Rate(10, 1.0),
        options=RedisLimiterOptions(round_trip_timeout=0.5),
    )
    with pytest.raises(RedisLimiterUnavailable) as raised:
        await limiter.decide("k")
    assert isinstance(raised.value, LimiterUnavailable)
    assert isinstance(raised.value, ConnectionError)
    await limiter.aclose()


async def test_redis_killed_raises_then_recovers_after_restart(
    fresh_redis_server: RedisServer,
) -> None:
    limiter = RedisLimiter(
        fresh_redis_server.url,
        Rate(100, 1.0, burst=99),
        options=RedisLimiterOptions(round_trip_timeout=0.5),
    )
    assert (await limiter.decide("k")).allowed
    await asyncio.to_thread(fresh_redis_server.kill)
    with pytest.raises(RedisLimiterUnavailable):
        await limiter.decide("k")
    await asyncio.to_thread(fresh_redis_server.start)
    decision = await limiter.decide("k")  # reconnects; the fresh server needs the script again
    assert (decision.allowed, decision.remaining) == (True, 99)
    assert limiter.stats.script_loads == 2
    await limiter.aclose()


async def test_error_reply_raises_unavailable(
    make_limiter: LimiterFactory, client: aredis.Redis
) -> None:
    limiter = await make_limiter(Rate(10, 1.0))
    await client.rpush(limiter.options.prefix + "a-list", "x")  # WRONGTYPE inside the script
    with pytest.raises(RedisLimiterUnavailable):
        await limiter.decide("a-list")
    assert (await limiter.decide("fine")).allowed


GARBAGE = [
    pytest.param(b"+OK\r\n", id="status"),
    pytest.param(b"$5\r\nhello\r\n", id="bulk"),
    pytest.param(b"*4\r\n:7\r\n:0\r\n:0\r\n:0\r\n", id="bad-flag"),
    pytest.param(b"*3\r\n:1\r\n:1\r\n:1\r\n", id="short-array"),
    pytest.param(b"*4\r\n:1\r\n:x\r\n:0\r\n:0\r\n", id="not-a-number"),
    pytest.param(b"*4\r\n:1\r\n:2\r\n:0\r\n:100\r\n+extra\r\n", id="trailing-bytes"),
    pytest.param(b"*4\r\n:1\r\n", id="cut-off"),
]


@pytest.mark.parametrize("reply", GARBAGE)
async def test_protocol_garbage_raises_unavailable(reply: bytes) -> None:
    async with _fake_redis(lambda: reply) as url:
        limiter = RedisLimiter(
            url, Rate(10, 1.0), options=RedisLimiterOptions(round_trip_timeout=0.5)
        )
        with pytest.raises(RedisLimiterUnavailable):
            await limiter.decide("k")
        await limiter.aclose()


async def test_a_reply_arriving_byte_by_byte_is_read_whole() -> None:
    reply = b"*4\r\n:1\r\n:4\r\n:0\r\n:100000\r\n"
    async with _fake_redis(lambda: reply, byte_by_byte=True) as url:
        limiter = RedisLimiter(url, Rate(10, 1.0))
        decision = await limiter.decide("k")
        assert fields(decision) == (True, 4, 0.0, 0.1)
        await limiter.aclose()


# -- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"round_trip_timeout": 0}, "round_trip_timeout"),
        ({"round_trip_timeout": float("inf")}, "round_trip_timeout"),
        ({"max_batch": 0}, "max_batch"),
        ({"key_ttl_margin": -1}, "key_ttl_margin"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RedisLimiterOptions(**kwargs)  # type: ignore[arg-type]


def test_options_of_the_wrong_type_name_the_field() -> None:
    with pytest.raises(TypeError, match=r"RedisLimiterOptions\.max_batch"):
        RedisLimiterOptions(max_batch=1.5)  # type: ignore[arg-type]


async def test_bad_arguments_name_the_field(make_limiter: LimiterFactory) -> None:
    with pytest.raises(ValueError, match="time_source"):
        RedisLimiterOptions(time_source="wall")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rate"):
        RedisLimiter("redis://127.0.0.1:1/0", 5)  # type: ignore[arg-type]
    limiter = await make_limiter(Rate(1, 1.0))
    with pytest.raises(ValueError, match="cost"):
        await limiter.decide("k", cost=-1)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="cost"):
            await limiter.decide("k", cost=bad)  # type: ignore[arg-type]
    assert limiter.pending == 0


def test_the_script_touches_only_the_key_it_is_given() -> None:
    # Redis Cluster safety: the script names no key but KEYS[1].
    assert "KEYS[1]" in GCRA_SCRIPT
    assert "KEYS[2]" not in GCRA_SCRIPT
    assert GCRA_SCRIPT.count("redis.call(") == 3  # TIME, GET, SET


# -- helpers -------------------------------------------------------------------------------------


async def _evalsha_calls(client: aredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@contextlib.asynccontextmanager
async def _fake_redis(
    reply_to_evalsha: Callable[[], bytes], *, byte_by_byte: bool = False
) -> AsyncIterator[str]:
    """A loopback server that speaks enough RESP for a handshake and SCRIPT LOAD, then answers
    every EVALSHA with ``reply_to_evalsha()``."""
    from resilient.ratelimit._script import SCRIPT_SHA as _SCRIPT_SHA

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                header = await reader.readline()
                if not header:
                    return
                args = []
                for _ in range(int(header[1:])):
                    size = int((await reader.readline())[1:])
                    args.append((await reader.readexactly(size + 2))[:-2])
                name = args[0].upper()
                if name == b"SCRIPT":
                    out = b"$40\r\n" + _SCRIPT_SHA + b"\r\n"
                elif name == b"EVALSHA":
                    out = reply_to_evalsha()
                else:
                    out = b"+OK\r\n"
                if byte_by_byte and name == b"EVALSHA":
                    for i in range(len(out)):
                        writer.write(out[i : i + 1])
                        await writer.drain()
                        await asyncio.sleep(0.001)
                else:
                    writer.write(out)
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def _tls_terminator(redis_server: RedisServer, context: ssl.SSLContext) -> AsyncIterator[int]:
    """A loopback TLS server relaying every connection, in the clear, to ``redis_server``."""
    pumps: set[asyncio.Task[None]] = set()

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            sink.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            redis_server.host, redis_server.port
        )
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(pump(source, sink))
            pumps.add(task)
            task.add_done_callback(pumps.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(pumps):
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await server.wait_closed()


# -- the private fast path fails loudly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "error"),
    [
        (object(), ConfigurationError),
        (SimpleNamespace(_reader=None), ConfigurationError),
        (SimpleNamespace(_reader="r", _writer="w"), ConfigurationError),
        (SimpleNamespace(_reader=None, _writer=None), ConnectionError),
    ],
    ids=["no-attributes", "no-writer", "not-streams", "not-connected"],
)
def test_the_streams_redis_py_keeps_privately_are_checked(
    connection: object, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        open_streams(connection)
    assert not isinstance(raised.value, LimiterUnavailable)
    if error is ConfigurationError:
        assert f"redis-py {aredis_module.__version__}" in str(raised.value)


async def test_an_unsupported_redis_py_is_a_configuration_error_not_an_outage(
    make_limiter: LimiterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def renamed(connection: object) -> object:
        return open_streams(SimpleNamespace())  # as if redis-py renamed _reader and _writer

    monkeypatch.setattr(redis_limiter_module, "open_streams", renamed)
    recorder, bus = EventRecorder(), EventBus()
    bus.subscribe(recorder)
    limiter = await make_limiter(Rate(10, 1.0), events=bus)
    with pytest.raises(ConfigurationError, match="has no _reader or _writer"):
        await limiter.decide("k")
    (event,) = recorder.named("client_unsupported")
    assert event.severity is Severity.ERROR
    assert limiter.stats.failures == 1  # a decision that raised, counted once
    with pytest.raises(ConfigurationError):
        await limiter.decide("k")
    assert limiter.stats.failures == 2
    assert len(recorder.named("client_unsupported")) == 2
    guard = FailOpenGuard(limiter, fallback=LocalLimiter(Rate(10, 1.0)), events=bus)
    decision = await guard.decide("k")
    assert (decision.source, decision.reason) == (
        DecisionSource.FALLBACK,
        "primary error: ConfigurationError",
    )
    assert len(recorder.named("client_unsupported")) == 3  # loud every time, not once
    await guard.aclose()
