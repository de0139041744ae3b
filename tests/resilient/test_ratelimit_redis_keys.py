"""What RedisLimiter writes into a real Redis: each key's name (as it is up to 64 bytes, a
digest beyond), lone surrogates stored as their own bytes, and the range of clock times it
sends (what Lua's doubles hold exactly). The formula itself is ``test_ratelimit_redis.py``'s.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer
from resilient.clock import VirtualClock
from resilient.errors import ArgumentValueError
from resilient.ratelimit import Rate, RedisLimiter, RedisLimiterOptions
from resilient.ratelimit._script import MAX_EXACT_US, stored_key

pytestmark = pytest.mark.real_server

RATE = Rate(10, 1.0, burst=4)


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


@pytest.fixture
def prefix() -> str:
    return f"keys:{uuid.uuid4().hex}:"


async def names_after(
    redis_server: RedisServer, client: aredis.Redis, prefix: str, key: str
) -> list[bytes]:
    """The names in Redis under ``prefix`` after one decision for ``key``."""
    async with RedisLimiter(redis_server.url, RATE, RedisLimiterOptions(prefix=prefix)) as limiter:
        assert (await limiter.decide(key)).allowed
    pattern = prefix.encode("utf-8", "surrogatepass") + b"*"
    return sorted(name for name in await client.keys(pattern) if isinstance(name, bytes))


def digest(key: bytes) -> bytes:
    return b"~" + hashlib.blake2b(key, digest_size=16).hexdigest().encode()


@pytest.mark.parametrize(
    ("key", "name"),
    [
        pytest.param("k" * 64, b"k" * 64, id="64-bytes-as-they-are"),
        pytest.param("é" * 32, "é".encode() * 32, id="64-utf8-bytes-as-they-are"),
        pytest.param("k" * 65, digest(b"k" * 65), id="65-bytes-digested"),
        pytest.param("é" * 33, digest("é".encode() * 33), id="66-utf8-bytes-digested"),
        pytest.param("\ud800x", b"\xed\xa0\x80x", id="lone-surrogate-as-its-bytes"),
        pytest.param("\udcff" * 30, digest(b"\xed\xb3\xbf" * 30), id="90-surrogate-bytes"),
    ],
)
async def test_a_keys_name_in_redis_is_its_utf8_up_to_64_bytes_and_a_digest_beyond(
    redis_server: RedisServer, client: aredis.Redis, prefix: str, key: str, name: bytes
) -> None:
    assert stored_key(key) == name
    assert await names_after(redis_server, client, prefix, key) == [prefix.encode() + name]


def test_a_digested_name_is_a_tilde_and_32_hex_digits() -> None:
    name = stored_key("x" * 1000)
    assert name == b"~" + hashlib.blake2b(b"x" * 1000, digest_size=16).hexdigest().encode()
    assert len(name) == 33
    assert name[1:].decode() == name[1:].decode().lower()
    int(name[1:], 16)


async def test_a_clock_time_lua_holds_exactly_is_sent_and_one_past_it_refused(
    redis_server: RedisServer, client: aredis.Redis, prefix: str
) -> None:
    assert MAX_EXACT_US == 2**52
    clock = VirtualClock(start=(2**52 - 1) / 1e6)  # int(now * 1e6) == 2^52 - 1
    options = RedisLimiterOptions(prefix=prefix, time_source="clock")
    async with RedisLimiter(redis_server.url, RATE, options, clock=clock) as limiter:
        decision = await limiter.decide("k")
        assert (decision.allowed, decision.remaining) == (True, 4)
        assert await client.get(prefix + "k") == b"%d" % (2**52 - 1 + 100_000)
        clock.advance(1e-6)
        assert int(clock.monotonic() * 1_000_000) == 2**52
        with pytest.raises(ArgumentValueError) as raised:
            await limiter.decide("k")
        assert str(raised.value) == (
            "RedisLimiter.clock time must be in [0, 2^52) us, got 4503599627370496 us"
        )
        assert limiter.pending == 0


async def test_a_clock_before_zero_is_refused(redis_server: RedisServer, prefix: str) -> None:
    options = RedisLimiterOptions(prefix=prefix, time_source="clock")
    clock = VirtualClock(start=-1.0)
    async with RedisLimiter(redis_server.url, RATE, options, clock=clock) as limiter:
        with pytest.raises(ArgumentValueError) as raised:
            await limiter.decide("k")
    assert str(raised.value) == "RedisLimiter.clock time must be in [0, 2^52) us, got -1000000 us"


async def test_a_prefix_with_a_lone_surrogate_is_stored_as_its_bytes(
    redis_server: RedisServer, client: aredis.Redis, prefix: str
) -> None:
    odd = prefix + "\udcff:"
    assert await names_after(redis_server, client, odd, "k") == [
        prefix.encode() + b"\xed\xb3\xbf:k"
    ]


async def test_a_clock_at_zero_is_sent(
    redis_server: RedisServer, client: aredis.Redis, prefix: str
) -> None:
    options = RedisLimiterOptions(prefix=prefix, time_source="clock")
    async with RedisLimiter(redis_server.url, RATE, options, clock=VirtualClock()) as limiter:
        decision = await limiter.decide("k")
        assert (decision.allowed, decision.remaining, decision.reason) == (True, 4, "")
    assert await client.get(prefix + "k") == b"100000"  # 0 us + one emission interval
