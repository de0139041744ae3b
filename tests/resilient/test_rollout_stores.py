"""The config stores: one contract for all three, atomic files, compare-and-set in Redis, and
a new version seen by every instance of a fleet within one second."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

import resilient.rollout._file_store as file_store_module
from chaos.servers import RedisServer
from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout import (
    MAX_CONFIG_BYTES,
    ConfigStore,
    FileConfigStore,
    MemoryConfigStore,
    RedisConfigStore,
)

KINDS = ["memory", "file", "redis"]


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    redis = aredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


@pytest.fixture(params=KINDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[ConfigStore]:
    if request.param == "memory":
        yield MemoryConfigStore()
    elif request.param == "file":
        yield FileConfigStore(tmp_path / "store")
    else:
        redis = aredis.Redis.from_url(redis_server.url)
        yield RedisConfigStore(redis, f"test-{uuid.uuid4().hex}")
        await redis.aclose()


async def test_versions_keep_their_exact_bytes_and_revert_restores_them(store: ConfigStore) -> None:
    first = b'{"a": 1}\n\x00\xff'
    one = await store.store(first, "first")
    two = await store.store(b'{"a": 2}', "second")
    assert (one.number, two.number) == (1, 2)
    assert await store.current() is None
    await store.activate(1, expected=None, reason="boot")
    await store.mark_good(1, "boot")
    await store.activate(2, expected=1, reason="change")
    assert (await store.current()).data == b'{"a": 2}'  # type: ignore[union-attr]
    good = await store.last_good()
    assert good is not None
    await store.activate(good.number, expected=2, reason="revert")
    assert (await store.current()).data == first  # type: ignore[union-attr]
    actions = [(e.action, e.version) for e in await store.log()]
    assert actions == [
        ("stored", 1),
        ("stored", 2),
        ("activated", 1),
        ("marked_good", 1),
        ("activated", 2),
        ("activated", 1),
    ]


async def test_activation_is_compare_and_set(store: ConfigStore) -> None:
    await store.store(b"1", "x")
    await store.store(b"2", "x")
    await store.activate(1, expected=None, reason="boot")
    with pytest.raises(ConfigConflictError, match="the current version is 1, not None"):
        await store.activate(2, expected=None, reason="late")
    with pytest.raises(KeyError):
        await store.activate(9, expected=1, reason="missing")
    assert (await store.current()).number == 1  # type: ignore[union-attr]


async def test_bad_input_is_refused_by_name(store: ConfigStore) -> None:
    name = type(store).__name__
    with pytest.raises(ArgumentTypeError, match=rf"{name}.store\(data\) must be bytes, got str"):
        await store.store("text", "x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentValueError, match=rf"at most {MAX_CONFIG_BYTES} bytes"):
        await store.store(b"x" * (MAX_CONFIG_BYTES + 1), "huge")
    with pytest.raises(ArgumentTypeError, match=rf"{name}.get\(number\) must be an int"):
        await store.get(True)  # type: ignore[arg-type]
    assert await store.log() == []


async def test_the_log_is_bounded(store: ConfigStore) -> None:
    from resilient.rollout._store import DEFAULT_LOG_ENTRIES

    for _ in range(DEFAULT_LOG_ENTRIES + 5):
        await store.record("note", None, "r" * 10_000)
    entries = await store.log()
    assert len(entries) == DEFAULT_LOG_ENTRIES
    assert all(len(e.reason) == 500 for e in entries)


async def test_of_concurrent_writers_exactly_one_wins(store: ConfigStore) -> None:
    await store.store(b"0", "boot")
    await store.activate(1, expected=None, reason="boot")

    async def writer(i: int) -> int:
        version = await store.store(f"writer {i}".encode(), "race")
        await store.activate(version.number, expected=1, reason="race")
        return version.number

    outcomes = await asyncio.gather(*(writer(i) for i in range(8)), return_exceptions=True)
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1
    assert all(isinstance(o, ConfigConflictError) for o in outcomes if o not in winners)
    assert (await store.current()).number == winners[0]  # type: ignore[union-attr]


async def test_of_writers_in_other_processes_exactly_one_wins(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    store = FileConfigStore(directory)
    await store.store(b"0", "boot")
    await store.activate(1, expected=None, reason="boot")
    code = (
        "import asyncio, sys\n"
        "from resilient.rollout import FileConfigStore\n"
        "from resilient.errors import ConfigConflictError\n"
        "async def main():\n"
        f"    s = FileConfigStore({str(directory)!r})\n"
        "    v = await s.store(sys.argv[1].encode(), 'race')\n"
        "    try:\n"
        "        await s.activate(v.number, expected=1, reason='race')\n"
        "        print('won')\n"
        "    except ConfigConflictError:\n"
        "        print('lost')\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(i), stdout=subprocess.PIPE
        )
        for i in range(6)
    ]
    outputs = [(await p.communicate())[0].decode().strip() for p in processes]
    assert sorted(outputs) == ["lost"] * 5 + ["won"]
    numbers = sorted(int(name) for name in os.listdir(directory / "versions"))
    assert numbers == list(range(1, 8))  # no version number given twice


async def test_a_crash_before_the_rename_leaves_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileConfigStore(tmp_path / "store")
    await store.store(b"old", "boot")
    await store.activate(1, expected=None, reason="boot")

    def crash(source: object, target: object) -> None:
        raise KeyboardInterrupt  # the process dies between the write and the rename

    monkeypatch.setattr(file_store_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        await store.store(b"new", "change")
    with pytest.raises(KeyboardInterrupt):
        await store.activate(1, expected=1, reason="again")
    monkeypatch.undo()
    # a temporary file a harder crash leaves behind is ignored
    (tmp_path / "store" / "versions" / ".tmp-000002-dead").write_bytes(b"ne")
    (tmp_path / "store" / ".tmp-state.json-dead").write_bytes(b'{"curr')
    again = FileConfigStore(tmp_path / "store")
    assert (await again.current()).data == b"old"  # type: ignore[union-attr]
    assert (await again.store(b"new", "retry")).number == 2


WRITER = """
import asyncio, hashlib, sys
from resilient.rollout import FileConfigStore

async def main():
    store = FileConfigStore(sys.argv[1])
    previous = (await store.current())
    expected = previous.number if previous else None
    for i in range(10_000):
        body = bytes([i % 251]) * (200_000 + i)
        data = hashlib.sha256(body).hexdigest().encode() + body
        version = await store.store(data, "loop")
        await store.activate(version.number, expected=expected, reason="loop")
        expected = version.number
        print(version.number, flush=True)

asyncio.run(main())
"""


def whole(data: bytes) -> bool:
    return hashlib.sha256(data[64:]).hexdigest().encode() == data[:64]


def test_a_writer_killed_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    for round_ in range(5):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE
        )
        assert process.stdout is not None
        for _ in range(3 + round_):  # let it write a few versions, then kill it mid-way
            process.stdout.readline()
        time.sleep(0.003 * round_)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        store = FileConfigStore(directory)
        current = asyncio.run(store.current())
        assert current is not None
        assert whole(current.data)
        for name in os.listdir(directory / "versions"):
            if name.isdigit():
                assert whole((directory / "versions" / name).read_bytes())
        assert asyncio.run(store.log())


async def test_every_instance_sees_a_new_version_within_a_second(
    redis_server: RedisServer,
) -> None:
    name = f"fleet-{uuid.uuid4().hex}"
    clients = [aredis.Redis.from_url(redis_server.url) for _ in range(11)]
    writer = RedisConfigStore(clients[0], name)
    await writer.store(b"v1", "boot")
    await writer.activate(1, expected=None, reason="boot")
    seen: list[float] = []

    async def instance(client: aredis.Redis) -> None:
        async for number in RedisConfigStore(client, name).changes():
            assert number == 2
            seen.append(time.monotonic())
            return

    watchers = [asyncio.create_task(instance(c)) for c in clients[1:]]
    await asyncio.sleep(0.3)  # every instance subscribed
    await writer.store(b"v2", "change")
    started = time.monotonic()
    await writer.activate(2, expected=1, reason="change")
    await asyncio.wait_for(asyncio.gather(*watchers), timeout=5)
    assert len(seen) == 10
    assert max(seen) - started < 1.0
    for client in clients:
        await client.aclose()


async def test_an_instance_that_missed_the_announcement_still_sees_the_change(
    client: aredis.Redis,
) -> None:
    name = f"missed-{uuid.uuid4().hex}"
    store = RedisConfigStore(client, name, poll_interval=0.1)
    await store.store(b"v1", "boot")
    await store.store(b"v2", "change")
    await store.activate(1, expected=None, reason="boot")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.2)
    await client.set(f"resilient:config:{name}:current", 2)  # moved with no message published
    started = time.monotonic()
    assert await asyncio.wait_for(waiting, timeout=2) == 2
    assert time.monotonic() - started < 0.5
    with contextlib.suppress(Exception):
        await changes.aclose()


async def test_the_file_store_announces_changes_by_polling(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path / "s", poll_interval=0.05)
    await store.store(b"1", "boot")
    await store.store(b"2", "x")
    await store.activate(1, expected=None, reason="boot")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.1)
    await FileConfigStore(tmp_path / "s").activate(2, expected=1, reason="x")
    assert await asyncio.wait_for(waiting, timeout=2) == 2
    await changes.aclose()


async def test_the_memory_store_announces_changes() -> None:
    store = MemoryConfigStore()
    await store.store(b"1", "boot")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    await store.activate(1, expected=None, reason="boot")
    assert await asyncio.wait_for(waiting, timeout=1) == 1
    await changes.aclose()


def test_bad_store_arguments_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match=r"FileConfigStore\.directory must be a path"):
        FileConfigStore(3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentValueError, match=r"FileConfigStore\.poll_interval"):
        FileConfigStore(tmp_path, poll_interval=0)
    with pytest.raises(ArgumentTypeError, match=r"RedisConfigStore\.client"):
        RedisConfigStore(object(), "x")  # type: ignore[arg-type]
