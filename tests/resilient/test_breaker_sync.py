"""Breakers of many processes sharing state through a real redis-server: a transition is
published and followed, a late breaker catches up, no call waits for Redis, and a Redis that is
down never blocks or fails a call (the breaker decides locally and says so)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer, free_port
from resilient.breaker import (
    BreakerOptions,
    BreakerState,
    BreakerSync,
    BreakerSyncOptions,
    CircuitBreaker,
    CircuitOpenError,
)
from resilient.errors import ArgumentTypeError
from resilient.events import EventBus, EventRecorder

pytestmark = pytest.mark.real_server

FAST = BreakerSyncOptions(round_trip_timeout=0.5, retry_interval=0.05)


class Boom(Exception):
    pass


async def fail() -> None:
    raise Boom


async def ok() -> str:
    return "ok"


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    return f"test-{uuid.uuid4().hex[:8]}:"


def process(
    url: str, prefix: str, name: str = "payments", **options: object
) -> tuple[CircuitBreaker, BreakerSync, EventRecorder]:
    """One 'process': its own client, its own sync, its own breaker and events."""
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    sync = BreakerSync(url, BreakerSyncOptions(prefix, 0.5, 0.05))
    settings = {"failure_threshold": 2, "reset_timeout": 30.0, **options}
    breaker = CircuitBreaker(name, BreakerOptions(**settings), sync=sync, events=bus)  # type: ignore[arg-type]
    return breaker, sync, recorder


async def test_two_breakers_on_one_redis_share_their_transitions(
    redis_server: RedisServer, prefix: str
) -> None:
    first, first_sync, _ = process(redis_server.url, prefix)
    second, second_sync, seen = process(redis_server.url, prefix)
    try:
        await asyncio.sleep(0.2)  # both subscribed
        for _ in range(2):
            with pytest.raises(Boom):
                await first.call(fail)
        assert first.state is BreakerState.OPEN
        await eventually(lambda: second.state is BreakerState.OPEN)
        with pytest.raises(CircuitOpenError) as refused:
            await second.call(ok)
        assert 25.0 < refused.value.retry_after <= 30.0
        opened = seen.named("opened")[0]
        assert opened.attributes["reason"] == "followed: ConsecutiveFailures(2) tripped on Boom"
        assert second.stats.trips == 1
        assert second.stats.failures == 0
        second.reset()  # either side may move it: the other follows
        await eventually(lambda: first.state is BreakerState.CLOSED)
        first.isolate()
        await eventually(lambda: second.state is BreakerState.ISOLATED)
        assert seen.named("isolated")[0].attributes["reason"] == "followed: isolated by hand"
        assert first.state is BreakerState.ISOLATED  # its own message is not followed back
    finally:
        await first_sync.aclose()
        await second_sync.aclose()


async def test_a_breaker_made_later_catches_up_with_what_is_left_of_the_open_time(
    redis_server: RedisServer, prefix: str
) -> None:
    first, first_sync, _ = process(redis_server.url, prefix, reset_timeout=30.0)
    try:
        await asyncio.sleep(0.1)
        for _ in range(2):
            with pytest.raises(Boom):
                await first.call(fail)
        tripped = time.monotonic()
        await asyncio.sleep(0.3)  # published
        late, late_sync, _ = process(redis_server.url, prefix, reset_timeout=30.0)
        try:
            await eventually(lambda: late.state is BreakerState.OPEN)
            assert 25.0 < late.retry_after < 29.8  # the time that had passed is deducted
            assert late.retry_after >= 30.0 - (time.monotonic() - tripped) - 0.05  # and no more
        finally:
            await late_sync.aclose()
    finally:
        await first_sync.aclose()


async def test_no_call_makes_a_redis_round_trip(redis_server: RedisServer, prefix: str) -> None:
    breaker, sync, _ = process(redis_server.url, prefix)
    client = aredis.Redis.from_url(redis_server.url)
    try:
        await asyncio.sleep(0.2)
        before = (await client.info("stats"))["total_commands_processed"]
        for _ in range(2000):
            await breaker.call(ok)
        after = (await client.info("stats"))["total_commands_processed"]
        assert after - before <= 2  # the two INFO commands themselves
    finally:
        await client.aclose()
        await sync.aclose()


async def test_redis_down_never_blocks_or_fails_a_call_and_is_said(prefix: str) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    breaker, sync, seen = process(nowhere, prefix)
    try:
        started = time.monotonic()
        for _ in range(2):
            with pytest.raises(Boom):
                await breaker.call(fail)
        with pytest.raises(CircuitOpenError):
            await breaker.call(ok)
        assert time.monotonic() - started < 0.1  # decided locally, at once
        await eventually(lambda: bool(seen.named("sync_lost")))
        lost = seen.named("sync_lost")[0]
        assert lost.attributes["breaker"] == "payments"
        kind, _, message = lost.attributes["error"].partition(": ")
        assert (kind, bool(message)) == ("ConnectionError", True)  # "Type: message"
        assert sync.down
        assert repr(sync) == "BreakerSync(breakers=['payments'], down=True)"
    finally:
        await sync.aclose()


async def test_after_redis_comes_back_the_local_transition_is_published(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    first, first_sync, seen = process(fresh_redis_server.url, prefix)
    second, second_sync, _ = process(fresh_redis_server.url, prefix)
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(fresh_redis_server.kill)
        for _ in range(2):
            with pytest.raises(Boom):
                await first.call(fail)
        assert first.state is BreakerState.OPEN  # locally, while Redis is down
        await eventually(lambda: bool(seen.named("sync_lost")))
        await asyncio.to_thread(fresh_redis_server.start)
        await eventually(lambda: bool(seen.named("sync_restored")))
        await eventually(lambda: second.state is BreakerState.OPEN)
        assert 0 < seen.named("sync_restored")[0].attributes["down_for"] < 60
    finally:
        await first_sync.aclose()
        await second_sync.aclose()


async def test_what_is_not_one_of_ours_is_ignored(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="resilient.breaker")
    breaker, sync, _ = process(redis_server.url, prefix)
    client = aredis.Redis.from_url(redis_server.url)
    try:
        await asyncio.sleep(0.2)
        channel = f"{prefix}transitions"
        for garbage in (
            b"nonsense",
            b"1 2 {not json",
            b'9 1.0 {"breaker": "payments", "state": "melted", "reason": "x", "origin": "o", '
            b'"open_for": 1}',
            b'9 1.0 {"breaker": "payments", "state": "open", "reason": "x", "origin": "o", '
            b'"open_for": -5}',
            b'9 1.0 {"breaker": "payments", "state": "open", "reason": 3, "origin": "o", '
            b'"open_for": 5}',
            b'9 1.0 {"breaker": "payments", "state": "open", "reason": "x", "origin": "o", '
            b'"open_for": true}',
            b'9 1.0 {"breaker": "payments", "state": "open", "reason": "x", "origin": "o", '
            b'"open_for": 1e999}',
            b"\xff\xfe 1 2",
        ):
            await client.publish(channel, garbage)
        await client.publish(
            channel,
            b'10 1.0 {"breaker": "payments", "state": "open", "reason": "far", "origin": "o", '
            b'"open_for": 1e9}',
        )
        await eventually(lambda: breaker.state is BreakerState.OPEN)
        assert breaker.retry_after <= 30.0  # never longer than its own reset timeout
        await client.publish(
            channel,
            b'3 1.0 {"breaker": "payments", "state": "closed", "reason": "old", "origin": "o", '
            b'"open_for": null}',
        )
        await asyncio.sleep(0.2)
        assert breaker.state is BreakerState.OPEN  # an older version is not applied
        ignored = [r for r in caplog.records if r.name == "resilient.breaker"]
        assert len(ignored) == 8  # each piece of garbage, once
        assert ignored[0].getMessage() == (
            "breaker sync: ignored a transition that is not one of ours: b'nonsense' "
            "(not enough values to unpack (expected 3, got 1))"
        )
        why = [record.getMessage().rpartition(" (")[2] for record in ignored]
        assert "open_for must be >= 0, got -5.0)" in why
        assert "reason and origin must be strings)" in why
        assert "not a number: True)" in why  # a bool is no number of seconds
        assert "not a finite number: inf)" in why
    finally:
        await client.aclose()
        await sync.aclose()


async def test_a_followed_open_moves_the_timer_and_is_never_published_again(
    redis_server: RedisServer, prefix: str
) -> None:
    breaker, sync, _ = process(redis_server.url, prefix)
    client = aredis.Redis.from_url(redis_server.url)

    def opened(version: int, open_for: int) -> bytes:
        return (
            b'%d 1.0 {"breaker": "payments", "state": "open", "reason": "x", "origin": "o", '
            b'"open_for": %d}' % (version, open_for)
        )

    try:
        await asyncio.sleep(0.2)
        channel = f"{prefix}transitions"
        await client.publish(channel, opened(1, 20))
        await eventually(lambda: breaker.state is BreakerState.OPEN)
        assert 19.0 < breaker.retry_after <= 20.0
        await client.publish(channel, opened(2, 5))  # already open: only the timer moves
        await eventually(lambda: breaker.retry_after <= 5.0)
        assert breaker.retry_after > 4.0
        await asyncio.sleep(0.2)
        assert await client.get(f"{prefix}payments") is None  # followed, not published back
    finally:
        await client.aclose()
        await sync.aclose()


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(ArgumentTypeError, match=r"^BreakerSync\.redis must be a URL"):
        BreakerSync(3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError) as refused:
        BreakerSync("redis://127.0.0.1:1/0", {"prefix": "x"})  # type: ignore[arg-type]
    assert (
        str(refused.value)
        == "BreakerSync.options must be a BreakerSyncOptions, got {'prefix': 'x'}"
    )
    sync = BreakerSync("redis://127.0.0.1:1/0", FAST)
    CircuitBreaker("one", sync=sync)
    with pytest.raises(ValueError, match=r"^BreakerSync already shares") as twice:
        CircuitBreaker("one", sync=sync)
    assert str(twice.value) == "BreakerSync already shares a breaker named 'one'"
    assert repr(sync) == "BreakerSync(breakers=['one'], down=False)"


async def test_a_sync_never_started_closes_cleanly() -> None:
    sync = BreakerSync("redis://127.0.0.1:1/0", FAST)
    await sync.aclose()
    assert not sync.down


async def test_closing_a_sync_closes_the_connections_it_opened(
    redis_server: RedisServer, prefix: str
) -> None:
    client = aredis.Redis.from_url(redis_server.url)
    try:
        before = len(await client.client_list())
        breaker, sync, _ = process(redis_server.url, prefix)
        await asyncio.sleep(0.2)  # subscribed
        for _ in range(2):
            with pytest.raises(Boom):
                await breaker.call(fail)
        await asyncio.sleep(0.2)  # published
        opened = len(await client.client_list())
        assert opened > before
        breaker.reset()
        for _ in range(2):
            with pytest.raises(Boom):
                await breaker.call(fail)
        await asyncio.sleep(0.2)
        assert len(await client.client_list()) == opened  # more transitions, no more tasks
        await sync.aclose()
        breaker.reset()  # after aclose: not published
        await asyncio.sleep(0.2)
        assert len(await client.client_list()) == before
        last = await client.get(f"{prefix}payments")
        assert b'"state": "open"' in last
        written = {key.decode() for key in await client.keys(f"*{prefix}*")}
        assert written == {f"{prefix}payments", f"{prefix}payments:version"}  # under the prefix
    finally:
        await client.aclose()


async def test_a_transition_numbered_as_one_applied_is_ignored_and_open_for_zero_is_followed(
    redis_server: RedisServer, prefix: str
) -> None:
    breaker, sync, seen = process(redis_server.url, prefix)
    client = aredis.Redis.from_url(redis_server.url)

    def transition(version: int, state: str, open_for: str) -> bytes:
        return (
            b'%d 1.0 {"breaker": "payments", "state": "%s", "reason": "x", "origin": "o", '
            b'"open_for": %s}' % (version, state.encode(), open_for.encode())
        )

    try:
        await asyncio.sleep(0.2)
        channel = f"{prefix}transitions"
        await client.publish(channel, transition(9, "open", "20"))
        await eventually(lambda: breaker.state is BreakerState.OPEN)
        await client.publish(channel, transition(9, "closed", "null"))  # the same number again
        await client.publish(channel, transition(10, "isolated", "null"))
        await eventually(lambda: breaker.state is BreakerState.ISOLATED)
        assert [e.name for e in seen.events] == ["opened", "isolated"]  # never closed
        await client.publish(channel, transition(11, "open", "0"))  # probes are due now
        await eventually(lambda: len(seen.events) == 3)
        assert seen.events[2].name == "opened"
        assert breaker.retry_after == 0.0
    finally:
        await client.aclose()
        await sync.aclose()
