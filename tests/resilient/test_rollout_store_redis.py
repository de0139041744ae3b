"""The Redis store on a real redis-server: its documented keys, a client that decodes replies,
the log's bound, conflicts, a stage's samples and their expiry, the plan's announcement."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer
from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout import CohortSamples, LogEntry, RedisConfigStore
from resilient.rollout._store import DEFAULT_LOG_ENTRIES


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def unique() -> str:
    return f"t-{uuid.uuid4().hex}"


async def test_the_keys_are_the_documented_ones(client: aredis.Redis) -> None:
    name = unique()
    store = RedisConfigStore(client, name)
    assert store.channel == f"resilient:config:{name}:changes"
    await store.store(b"one", "boot")
    await store.store(b"two", "next")
    await store.activate(2, expected=None, reason="boot")
    await store.mark_good(1, "good")
    await store.publish_plan(b"{}")
    prefix = f"resilient:config:{name}"
    keys = {key.decode() async for key in client.scan_iter(f"{prefix}:*")}
    assert keys == {
        f"{prefix}:{k}" for k in ("next", "v:1", "v:2", "current", "good", "log", "plan")
    }
    assert await client.get(f"{prefix}:v:2") == b"two"
    assert (await client.get(f"{prefix}:current"), await client.get(f"{prefix}:good")) == (
        b"2",
        b"1",
    )
    lines = await client.lrange(f"{prefix}:log", 0, -1)
    assert [json.loads(line)["action"] for line in lines] == [
        "stored",
        "stored",
        "activated",
        "marked_good",
    ]
    assert all(line.isascii() for line in lines)


async def test_a_conflict_names_both_versions(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    await store.store(b"1", "r")
    await store.store(b"2", "r")
    with pytest.raises(ConfigConflictError) as caught:
        await store.activate(2, expected=1, reason="r")
    assert str(caught.value) == "version 2 not activated: the current version is None, not 1"
    await store.activate(1, expected=None, reason="r")
    with pytest.raises(ConfigConflictError) as caught:
        await store.activate(2, expected=2, reason="r")
    assert str(caught.value) == "version 2 not activated: the current version is 1, not 2"
    await store.activate(2, expected=1, reason="r")
    assert (await store.current()).number == 2  # type: ignore[union-attr]


async def test_marking_good_needs_a_stored_version(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    with pytest.raises(KeyError):
        await store.mark_good(1, "r")
    assert await store.last_good() is None
    assert await store.log() == []
    for call in (lambda: store.get(0), lambda: store.activate(0, expected=None, reason="r")):
        with pytest.raises(ArgumentValueError, match=r"RedisConfigStore\.\w+\(number\)"):
            await call()


async def test_the_log_keeps_its_bound_and_skips_what_is_not_json(client: aredis.Redis) -> None:
    name = unique()
    store = RedisConfigStore(client, name)
    key = f"resilient:config:{name}:log"
    old = [json.dumps(LogEntry(1.0, "old", i, "r").as_dict()) for i in range(DEFAULT_LOG_ENTRIES)]
    await client.rpush(key, *old)
    await store.record("note", 7, "r")
    assert await client.llen(key) == DEFAULT_LOG_ENTRIES
    await client.rpush(key, b"{torn", json.dumps(LogEntry(2.0, "after", 8, "r").as_dict()))
    entries = await store.log()
    assert len(entries) == DEFAULT_LOG_ENTRIES + 1  # the torn line skipped, the next one read
    assert (entries[0].version, entries[-2].action, entries[-1].action) == (1, "note", "after")
    await store.store(b"x", "r")
    await store.activate(1, expected=None, reason="r")
    assert await client.llen(key) == DEFAULT_LOG_ENTRIES
    assert json.loads(await client.lindex(key, -1))["action"] == "activated"


async def test_samples_of_a_stage_add_up_and_keep_the_latest_values(client: aredis.Redis) -> None:
    name = unique()
    store = RedisConfigStore(client, name)
    one, two = CohortSamples(10, 1, 2), CohortSamples(10, 3, 4)
    one.values("latency").extend([0.5, 0.25])
    one.values("cpu")  # no value: no key
    two.values("latency").append(1.5)
    await store.add_samples("2:0", one, two, 3)
    more = CohortSamples(10, 5, 6)
    more.values("latency").extend([0.125, 2.0])
    await store.add_samples("2:0", more, CohortSamples(10), 3)
    canary, control = await store.samples("2:0", ("cpu", "latency"), 3)
    assert (canary.successes, canary.total, control.successes, control.total) == (6, 8, 3, 4)
    assert list(canary.metrics["latency"]) == [0.25, 0.125, 2.0]
    assert list(control.metrics["latency"]) == [1.5]
    assert list(canary.metrics["cpu"]) == []
    assert canary.capacity == 3
    fewer, _ = await store.samples("2:0", ("latency",), 2)
    assert list(fewer.metrics["latency"]) == [0.125, 2.0]
    prefix = f"resilient:config:{name}:stage:2:0"
    assert await client.hgetall(prefix) == {
        b"canary_total": b"8",
        b"canary_ok": b"6",
        b"control_total": b"4",
        b"control_ok": b"3",
    }
    assert not await client.exists(f"{prefix}:canary:cpu")
    for key in (prefix, f"{prefix}:canary:latency", f"{prefix}:control:latency"):
        assert 86_000 < await client.ttl(key) <= 86_400
    nothing, _ = await store.samples("9:9", ("latency",), 3)
    assert (nothing.total, list(nothing.metrics["latency"])) == (0, [])


async def test_a_plan_is_announced_on_the_channel(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique())
    pubsub = client.pubsub()
    await pubsub.subscribe(store.channel)
    await pubsub.get_message(timeout=1.0)  # the subscription's confirmation
    await store.publish_plan(b'{"p": 1}')
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
    assert message is not None
    assert message["data"] == b"plan"
    assert await store.plan() == b'{"p": 1}'
    await store.store(b"x", "r")
    await store.activate(1, expected=None, reason="r")
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
    assert message is not None
    assert message["data"] == b"1"
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_changes_yield_each_new_current_version_once(client: aredis.Redis) -> None:
    store = RedisConfigStore(client, unique(), poll_interval=0.05)
    for data in (b"1", b"2", b"3"):
        await store.store(data, "r")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # no current version: nothing to announce
    await store.activate(1, expected=None, reason="r")
    assert await asyncio.wait_for(waiting, 5) == 1
    waiting = asyncio.ensure_future(anext(changes))
    await store.publish_plan(b"{}")  # a message that is no new version
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await store.activate(3, expected=1, reason="r")
    assert await asyncio.wait_for(waiting, 5) == 3
    await changes.aclose()


def test_bad_arguments_are_refused_by_name(client: aredis.Redis) -> None:
    with pytest.raises(ArgumentTypeError, match=r"RedisConfigStore\.client .*got str"):
        RedisConfigStore("redis://", "x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentValueError, match=r"RedisConfigStore\.name"):
        RedisConfigStore(client, "")
    with pytest.raises(ArgumentValueError, match=r"RedisConfigStore\.poll_interval"):
        RedisConfigStore(client, "x", poll_interval=0)
    assert RedisConfigStore(client, "x").poll_interval == 0.25
