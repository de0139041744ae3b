"""RedisConfigStore in exact words and exact keys, on a real redis-server: every argument check's
message, the refusal of a client that decodes replies, what it writes as one MULTI/EXEC, log
lines kept as ASCII JSON, a version's bytes never overwritten, a missing version's KeyError,
the last good version read back, and what ``changes()`` does not announce (mutation survivors
of rollout/_redis_store).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.rollout import CohortSamples, RedisConfigStore


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def unique() -> str:
    return f"t-{uuid.uuid4().hex}"


async def test_a_client_that_is_no_redis_is_refused_in_exact_words() -> None:
    with pytest.raises(ArgumentTypeError) as raised:
        RedisConfigStore("redis://", "x")  # type: ignore[arg-type]
    assert str(raised.value) == "RedisConfigStore.client must be a redis.asyncio.Redis, got str"


async def test_a_client_that_decodes_responses_is_refused_in_exact_words(
    redis_server: RedisServer,
) -> None:
    decoding = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with pytest.raises(ArgumentValueError) as raised:
            RedisConfigStore(decoding, "x")
    finally:
        await decoding.aclose()
    assert str(raised.value) == (
        "RedisConfigStore.client must not decode responses (decode_responses=True): a "
        "configuration's bytes are kept exactly, and may be no text"
    )


async def test_bad_arguments_are_named_in_exact_words(client: aredis.Redis) -> None:
    with pytest.raises(ArgumentValueError) as raised:
        RedisConfigStore(client, "")
    assert str(raised.value) == "RedisConfigStore.name must be a non-empty str, got ''"
    with pytest.raises(ArgumentValueError) as raised:
        RedisConfigStore(client, "x", poll_interval=0)
    assert str(raised.value) == (
        "RedisConfigStore.poll_interval must be a finite number of seconds > 0, got 0"
    )
    store = RedisConfigStore(client, unique())
    with pytest.raises(ArgumentTypeError) as raised:
        await store.store("text", "r")  # type: ignore[arg-type]
    assert str(raised.value) == "RedisConfigStore.store(data) must be bytes, got str"
    with pytest.raises(ArgumentValueError) as raised:
        await store.get(0)
    assert str(raised.value) == "RedisConfigStore.get(number) must be an int >= 1, got 0"
    with pytest.raises(ArgumentValueError) as raised:
        await store.activate(0, expected=None, reason="r")
    assert str(raised.value) == "RedisConfigStore.activate(number) must be an int >= 1, got 0"


async def test_log_lines_are_ascii_json_whatever_the_reason(client: aredis.Redis) -> None:
    name = unique()
    store = RedisConfigStore(client, name)
    await store.store(b"x", "café")
    await store.activate(1, expected=None, reason="naïve → ok")
    lines = await client.lrange(f"resilient:config:{name}:log", 0, -1)
    assert lines[0].decode("ascii") == json.dumps(json.loads(lines[0]), ensure_ascii=True)
    assert b"caf\\u00e9" in lines[0]
    assert b"na\\u00efve \\u2192 ok" in lines[1]
    assert [entry.reason for entry in await store.log()] == ["café", "naïve → ok"]


async def _transactions(client: aredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_exec", {}).get("calls", 0))


async def test_a_log_entry_and_a_plan_are_each_written_as_one_transaction(
    fresh_redis_server: RedisServer,
) -> None:
    # A log entry's RPUSH and LTRIM are one MULTI/EXEC (no reader sees the log over its
    # bound), and so are a plan's SET and its announcement; a stage's samples need none.
    client = aredis.Redis.from_url(fresh_redis_server.url)
    try:
        store = RedisConfigStore(client, unique())
        before = await _transactions(client)
        await store.store(b"x", "r")
        assert await _transactions(client) == before + 1
        await store.record("note", 1, "r")
        assert await _transactions(client) == before + 2
        await store.publish_plan(b"{}")
        assert await _transactions(client) == before + 3
    finally:
        await client.aclose()


async def test_a_stored_version_is_never_overwritten(client: aredis.Redis) -> None:
    # A version key already there (say its `next` counter was lost in a restore) keeps its
    # bytes, and the new configuration gets the next free number: store() never answers a
    # number whose bytes are not the ones it was given.
    name = unique()
    store = RedisConfigStore(client, name)
    await client.set(f"resilient:config:{name}:v:1", b"old")
    version = await store.store(b"new", "r")
    assert (version.number, version.data) == (2, b"new")
    assert (await store.get(1)).data == b"old"
    assert (await store.get(2)).data == b"new"
    assert [(e.action, e.version) for e in await store.log()] == [("stored", 2)]
    assert await client.get(f"resilient:config:{name}:next") == b"2"  # the last number given
    assert (await store.store(b"newer", "r")).number == 3


async def test_activating_a_version_never_stored_is_a_key_error(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    with pytest.raises(KeyError) as raised:
        await store.activate(3, expected=None, reason="r")
    assert raised.value.args == (3,)
    assert await store.current() is None


async def test_the_last_good_version_is_the_one_marked(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    await store.store(b"one", "r")
    await store.store(b"two", "r")
    await store.mark_good(2, "r")
    good = await store.last_good()
    assert good is not None
    assert (good.number, good.data) == (2, b"two")


async def test_changes_do_not_announce_the_version_current_when_they_start(
    client: aredis.Redis,
) -> None:
    store = RedisConfigStore(client, unique(), poll_interval=0.05)
    await store.store(b"1", "r")
    await store.store(b"2", "r")
    await store.activate(1, expected=None, reason="r")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # version 1 was current before: no change to announce
    await store.activate(2, expected=1, reason="r")
    assert await asyncio.wait_for(waiting, 5) == 2
    await changes.aclose()


async def test_a_stage_without_samples_reads_as_none_on_either_side(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    canary, control = await store.samples("1:0", (), 5)
    for side in (canary, control):
        assert (side.successes, side.total, side.capacity) == (0, 0, 5)
    await store.add_samples("1:0", CohortSamples(5, 0, 2), CohortSamples(5, 1, 1), 5)
    canary, control = await store.samples("1:0", (), 5)
    assert (canary.successes, canary.total, control.successes, control.total) == (0, 2, 1, 1)
