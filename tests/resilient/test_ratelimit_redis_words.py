"""RedisLimiter's small print against a real redis-server: a fresh limiter's counters and repr,
its refusals in exact words, what a closed limiter and a second event loop get, how faults are
worded, counted and reported as events, and batches cut at ``max_batch``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis

import resilient.ratelimit._redis as redis_limiter_module
from chaos.servers import RedisServer, free_port
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.events import EventBus, EventRecorder, Severity
from resilient.ratelimit import (
    DecisionSource,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
    RedisLimiterStats,
    RedisLimiterUnavailable,
)
from resilient.ratelimit._script import SCRIPT_SHA
from resilient.ratelimit._types import store_silence

pytestmark = pytest.mark.real_server

RATE = Rate(10, 1.0)


@pytest.fixture
def options() -> RedisLimiterOptions:
    return RedisLimiterOptions(prefix=f"words:{uuid.uuid4().hex}:")


@pytest.fixture
def recorded() -> tuple[EventBus, EventRecorder]:
    bus, recorder = EventBus(), EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def test_a_fresh_limiter_has_counted_nothing_says_what_it_is_and_may_wait(
    options: RedisLimiterOptions,
) -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", RATE, options)
    assert RedisLimiter.never_waits is False
    assert limiter.stats == RedisLimiterStats(0, 0, 0, 0)
    assert dataclasses.astuple(limiter.stats) == (0, 0, 0, 0)
    assert not hasattr(limiter.stats, "__dict__")
    assert limiter.pending == 0
    assert (limiter.rate, limiter.options) == (RATE, options)
    assert repr(limiter) == (
        f"RedisLimiter(rate=10/1s, prefix={options.prefix!r}, time_source='server')"
    )


def test_a_keys_rate_comes_from_the_mapping_or_the_function_else_the_default() -> None:
    slow = Rate(1, 60.0)
    mapped = RedisLimiter("redis://127.0.0.1:1/0", RATE, rates={"slow": slow})
    assert (mapped.rate_for("slow"), mapped.rate_for("other")) == (slow, RATE)
    computed = RedisLimiter(
        "redis://127.0.0.1:1/0", RATE, rates=lambda key: slow if key.startswith("s") else None
    )
    assert (computed.rate_for("sx"), computed.rate_for("x")) == (slow, RATE)


_URL = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"redis_or_url": 5}, "RedisLimiter.redis_or_url must be a redis.asyncio.Redis or a URL, "
         "got 5"),
        ({"rate": "10/s"}, "RedisLimiter.rate must be a Rate, got '10/s'"),
        ({"options": {}}, "RedisLimiter.options must be a RedisLimiterOptions, got {}"),
        ({"rates": 7}, "RedisLimiter.rates must be a mapping or a callable, got 7"),
    ],
)  # fmt: skip
def test_bad_arguments_in_exact_words(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentTypeError) as raised:
        RedisLimiter(**{"redis_or_url": _URL, "rate": RATE, **arguments})
    assert str(raised.value) == message


async def test_bad_decide_arguments_in_exact_words(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    async with RedisLimiter(redis_server.url, RATE, options) as limiter:
        with pytest.raises(ArgumentTypeError) as key:
            await limiter.decide(["k"])  # type: ignore[arg-type]
        assert str(key.value) == "RedisLimiter.decide(key) must be a str, got ['k']"
        with pytest.raises(ArgumentTypeError) as rate:
            await limiter.decide("k", rate="10/s")  # type: ignore[arg-type]
        assert str(rate.value) == "RedisLimiter.decide(rate) must be a Rate, got '10/s'"
        with pytest.raises(ArgumentValueError) as cost:
            await limiter.decide("k", cost=-1)
        assert str(cost.value) == "RedisLimiter.decide(cost) must be an int >= 0, got -1"
        assert (limiter.pending, limiter.stats.round_trips) == (0, 0)


async def test_callers_queued_behind_a_round_trip_are_told_the_limiter_closed(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    limiter = RedisLimiter(redis_server.url, RATE, options)
    await limiter.decide("warm-up")
    admin = aredis.Redis.from_url(redis_server.url)
    await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # type: ignore[no-untyped-call]
    try:
        in_flight = asyncio.create_task(limiter.decide("sent"))
        await asyncio.sleep(0.05)  # its round trip waits on the paused Redis
        queued = [asyncio.create_task(limiter.decide(f"queued{n}")) for n in range(2)]
        await asyncio.sleep(0.01)
        assert limiter.pending == 2  # behind the round trip, not sent yet
        await limiter.aclose()
        results = await asyncio.gather(in_flight, *queued, return_exceptions=True)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        await admin.aclose()
    assert [str(result) for result in results] == ["RedisLimiter is closed"] * 3
    assert limiter.stats.failures == 3


async def test_a_closed_limiter_refuses_and_its_waiting_callers_are_told(
    redis_server: RedisServer, client: aredis.Redis, options: RedisLimiterOptions
) -> None:
    limiter = RedisLimiter(redis_server.url, RATE, options)
    await limiter.decide("warm-up")
    admin = aredis.Redis.from_url(redis_server.url)
    await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # type: ignore[no-untyped-call]
    try:
        waiting = [asyncio.create_task(limiter.decide(f"k{n}")) for n in range(3)]
        await asyncio.sleep(0.05)
        await limiter.aclose()
        results = await asyncio.gather(*waiting, return_exceptions=True)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        await admin.aclose()
    assert [str(result) for result in results] == ["RedisLimiter is closed"] * 3
    assert all(isinstance(result, RedisLimiterUnavailable) for result in results)
    assert limiter.stats.failures == 3
    with pytest.raises(RedisLimiterUnavailable, match=r"^RedisLimiter is closed$"):
        await limiter.decide("k")
    assert limiter.stats.failures == 3  # refused before anything was queued
    assert limiter.pending == 0
    assert await client.ping()  # the client it made is closed, not the server


def test_a_limiter_serves_the_one_event_loop_it_first_ran_in(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    limiter = RedisLimiter(redis_server.url, RATE, options)
    decision = asyncio.run(limiter.decide("k"))  # that loop is gone, its flusher too
    assert (decision.allowed, decision.source, decision.reason) == (
        True,
        DecisionSource.PRIMARY,
        "",
    )
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            asyncio.run(limiter.decide("k"))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(30)
    assert [str(error) for error in errors] == [
        "a RedisLimiter serves the one event loop it first ran in"
    ]
    assert isinstance(errors[0], RuntimeError)


async def test_a_second_loop_is_refused_while_the_flusher_of_the_first_runs(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    async with RedisLimiter(redis_server.url, RATE, options) as limiter:
        assert (await limiter.decide("k")).allowed
        with pytest.raises(RuntimeError) as raised:
            await asyncio.to_thread(asyncio.run, limiter.decide("k"))
        assert str(raised.value) == "a RedisLimiter serves the one event loop it first ran in"
        assert (await limiter.decide("other")).allowed  # its own loop is still served


async def test_nothing_listening_is_a_round_trip_failure_worded_counted_and_reported(
    recorded: tuple[EventBus, EventRecorder],
) -> None:
    bus, recorder = recorded
    port = free_port()
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", RATE, events=bus)
    try:
        results = await asyncio.gather(
            *(limiter.decide(f"k{n}") for n in range(3)), return_exceptions=True
        )
    finally:
        await limiter.aclose()
    messages = {str(result) for result in results}
    (message,) = messages
    assert message.startswith("Redis round trip failed: ConnectionError: ")
    assert f"127.0.0.1:{port}" in message
    assert all(isinstance(r.__cause__, Exception) for r in results if isinstance(r, Exception))
    assert limiter.stats.failures == 3
    assert limiter.stats.decisions == 0
    (event,) = recorder.named("round_trip_failed")
    assert (event.source, event.severity) == ("ratelimit.redis", Severity.WARNING)
    assert event.attributes["reason"] == message.removeprefix("Redis round trip failed: ")
    assert event.attributes["decisions"] == 3


async def test_a_round_trip_past_its_timeout_says_timeout(
    redis_server: RedisServer, recorded: tuple[EventBus, EventRecorder]
) -> None:
    bus, recorder = recorded
    options = RedisLimiterOptions(prefix=f"words:{uuid.uuid4().hex}:", round_trip_timeout=0.05)
    limiter = RedisLimiter(redis_server.url, RATE, options, events=bus)
    admin = aredis.Redis.from_url(redis_server.url)
    try:
        await limiter.decide("warm-up")
        await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # type: ignore[no-untyped-call]
        with pytest.raises(RedisLimiterUnavailable) as raised:
            await limiter.decide("k")
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        await admin.aclose()
        await limiter.aclose()
    assert str(raised.value) == "Redis round trip failed: timeout"
    assert isinstance(raised.value.__cause__, TimeoutError)
    (event,) = recorder.named("round_trip_failed")
    assert (event.attributes["reason"], event.attributes["decisions"]) == ("timeout", 1)


async def test_an_error_reply_fails_its_decision_only_in_redis_words(
    redis_server: RedisServer, client: aredis.Redis, options: RedisLimiterOptions
) -> None:
    await client.rpush(options.prefix + "a-list", "x")  # WRONGTYPE inside the script
    async with RedisLimiter(redis_server.url, RATE, options) as limiter:
        bad, good = await asyncio.gather(
            limiter.decide("a-list"), limiter.decide("fine"), return_exceptions=True
        )
        assert isinstance(bad, RedisLimiterUnavailable)
        assert str(bad).startswith("Redis refused the decision: ")
        assert "WRONGTYPE" in str(bad)
        assert isinstance(bad.__cause__, aredis.ResponseError)
        assert str(bad) == f"Redis refused the decision: {bad.__cause__}"
        assert not isinstance(good, BaseException)
        assert good.allowed
        assert (limiter.stats.failures, limiter.stats.decisions) == (1, 1)
        assert limiter.stats.round_trips == 1  # one pipeline for both
        with pytest.raises(RedisLimiterUnavailable):
            await limiter.decide("a-list")
        assert (limiter.stats.failures, limiter.stats.decisions) == (2, 1)  # each refusal counts


async def test_the_flusher_task_is_named_after_its_limiter(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    async with RedisLimiter(redis_server.url, RATE, options) as limiter:
        await limiter.decide("k")
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert f"{limiter!r}.flusher" in names  # what asyncio's debug output shows for it


async def test_a_batch_is_cut_at_max_batch(redis_server: RedisServer) -> None:
    options = RedisLimiterOptions(prefix=f"words:{uuid.uuid4().hex}:", max_batch=2)
    async with RedisLimiter(redis_server.url, Rate(100, 1.0, burst=50), options) as limiter:
        await limiter.decide("warm-up")
        decisions = await asyncio.gather(*(limiter.decide(f"k{n}") for n in range(5)))
        assert all(decision.allowed for decision in decisions)
        # the first caller goes at once, then the four queued behind it in twos
        assert limiter.stats.round_trips == 1 + 3
        assert limiter.stats.decisions == 6


async def _clients(admin: aredis.Redis) -> int:
    info = await admin.info("clients")
    return int(info["connected_clients"])


async def test_a_client_made_from_a_url_is_the_limiters_and_closed_with_it(
    fresh_redis_server: RedisServer,
) -> None:
    admin = aredis.Redis.from_url(fresh_redis_server.url)
    try:
        alone = await _clients(admin)
        limiter = RedisLimiter(fresh_redis_server.url, RATE)
        await limiter.decide("k")
        assert await _clients(admin) == alone + 1
        await limiter.aclose()
        for _ in range(100):  # the server notices the close within a few ms
            if await _clients(admin) == alone:
                break
            await asyncio.sleep(0.01)
        assert await _clients(admin) == alone
    finally:
        await admin.aclose()


async def test_a_client_passed_in_stays_the_callers_with_every_connection_it_lent(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await held.connect()
        limiter = RedisLimiter(client, RATE, options)
        await limiter.decide("k")
        await limiter.aclose()
        assert held.is_connected  # the limiter closed neither the client nor its pool
    finally:
        await client.connection_pool.release(held)
        await client.aclose()


async def test_a_cancelled_caller_carries_how_long_redis_has_been_silent(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    """On the limiter's clock, from the moment the round trip still unanswered was sent: what a
    guard reads to tell a slow Redis from time spent in this process."""
    clock = VirtualClock(start=100.0)
    limiter = RedisLimiter(redis_server.url, RATE, options, clock=clock)
    admin = aredis.Redis.from_url(redis_server.url)
    try:
        await limiter.decide("warm-up")
        await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # type: ignore[no-untyped-call]
        sent = asyncio.create_task(limiter.decide("sent"))
        await asyncio.sleep(0.05)  # its round trip is out, unanswered
        clock.advance(0.25)
        queued = asyncio.create_task(limiter.decide("queued"))  # behind the one in flight
        await asyncio.sleep(0)
        clock.advance(0.5)
        silences = []
        for task in (sent, queued):
            task.cancel()
            try:
                await task
            except asyncio.CancelledError as cancelled:
                silences.append(store_silence(cancelled))
        assert silences == [0.75, 0.75]
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        await admin.aclose()
        await limiter.aclose()


async def test_a_caller_cancelled_between_round_trips_carries_no_silence(
    redis_server: RedisServer,
) -> None:
    """Cancelled when no round trip is in flight (its request never left this process), a
    caller notes 0 s: Redis was not silent, the time went elsewhere."""
    options = RedisLimiterOptions(prefix=f"words:{uuid.uuid4().hex}:", max_batch=1)
    clock = VirtualClock(start=100.0)
    seen: list[float | None] = []
    async with RedisLimiter(redis_server.url, RATE, options, clock=clock) as limiter:

        async def second() -> None:
            try:
                await limiter.decide("b")
            except asyncio.CancelledError as cancelled:
                seen.append(store_silence(cancelled))
                raise

        async def first() -> None:
            await limiter.decide("a")  # sent alone (max_batch 1), "b" waits for the next
            clock.advance(5.0)
            waiting.cancel()  # before the flusher takes "b": nothing is in flight

        answered = asyncio.create_task(first())
        waiting = asyncio.create_task(second())
        await asyncio.gather(answered, waiting, return_exceptions=True)
        assert waiting.cancelled()
        assert seen == [0.0]
        assert limiter.stats.round_trips == 1
        assert (await limiter.decide("c")).allowed  # and the flusher goes on


@pytest.mark.parametrize("cost", [1, 63, 64, 65, 250])
async def test_every_cost_is_sent_as_the_number_it_is(
    redis_server: RedisServer, options: RedisLimiterOptions, cost: int
) -> None:
    """Costs below 64 go as prepacked arguments, larger ones packed on the way."""
    async with RedisLimiter(redis_server.url, Rate(100, 1.0, burst=299), options) as limiter:
        first = await limiter.decide("k", cost=cost)
        assert (first.allowed, first.remaining) == (True, 300 - cost)


async def test_a_client_that_decodes_responses_serves_as_well(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    client = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with RedisLimiter(client, RATE, options) as limiter:
            decision = await limiter.decide("k")
            assert (decision.allowed, decision.remaining) == (True, 0)
            assert limiter.stats.script_loads == 1
    finally:
        await client.aclose()


async def test_a_script_load_answering_another_sha1_is_a_failed_round_trip(
    redis_server: RedisServer, options: RedisLimiterOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_limiter_module, "SCRIPT_SHA", b"0" * 40)
    async with RedisLimiter(redis_server.url, RATE, options) as limiter:
        with pytest.raises(RedisLimiterUnavailable) as raised:
            await limiter.decide("k")
    assert str(raised.value) == (
        "Redis round trip failed: RedisLimiterUnavailable: "
        f"SCRIPT LOAD answered {SCRIPT_SHA!r}, not the script's SHA1"
    )


async def test_a_caller_cancelled_before_anything_was_sent_carries_no_silence(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    clock = VirtualClock(start=100.0)
    seen: list[float | None] = []
    async with RedisLimiter(redis_server.url, RATE, options, clock=clock) as limiter:

        async def caller() -> None:
            try:
                await limiter.decide("k")
            except asyncio.CancelledError as cancelled:
                seen.append(store_silence(cancelled))
                raise

        task = asyncio.create_task(caller())
        await asyncio.sleep(0)  # queued, and the flusher made, but nothing sent yet
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert (seen, limiter.stats.round_trips, limiter.pending) == ([0.0], 0, 0)
        assert (await limiter.decide("k")).allowed


def test_a_fault_is_described_by_its_type_and_words_a_bare_timeout_as_timeout() -> None:
    describe = redis_limiter_module._describe
    assert describe(TimeoutError()) == "timeout"
    assert describe(TimeoutError("read 3 of 4 replies")) == "TimeoutError: read 3 of 4 replies"
    assert describe(ConnectionResetError()) == "ConnectionResetError: "
    assert describe(OSError(5, "I/O error")) == "OSError: [Errno 5] I/O error"


async def test_a_caller_queued_before_the_flusher_first_ran_is_told_the_limiter_closed(
    redis_server: RedisServer, options: RedisLimiterOptions
) -> None:
    limiter = RedisLimiter(redis_server.url, RATE, options)
    queued = asyncio.create_task(limiter.decide("k"))
    await asyncio.sleep(0)  # decide has queued it and made the flusher, which has not run yet
    await limiter.aclose()
    with pytest.raises(RedisLimiterUnavailable) as raised:
        await queued
    assert str(raised.value) == "RedisLimiter is closed"
    assert (limiter.stats.failures, limiter.stats.round_trips, limiter.pending) == (1, 0, 0)
