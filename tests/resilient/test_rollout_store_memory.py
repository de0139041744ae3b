"""What every store shares (a log entry, the bytes a store takes, merging samples) and the
memory store's own bounds, each at its exact edge."""

from __future__ import annotations

import asyncio

import pytest

from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout import (
    MAX_CONFIG_BYTES,
    CohortSamples,
    ConfigVersion,
    LogEntry,
    MemoryConfigStore,
)
from resilient.rollout._store import (
    DEFAULT_LOG_ENTRIES,
    check_config_bytes,
    merge_samples,
)


def test_the_bounds() -> None:
    assert MAX_CONFIG_BYTES == 1_048_576
    assert DEFAULT_LOG_ENTRIES == 1000


def test_a_store_takes_bytes_of_up_to_one_mebibyte() -> None:
    assert check_config_bytes("w", b"x" * MAX_CONFIG_BYTES) == b"x" * MAX_CONFIG_BYTES
    assert check_config_bytes("w", bytearray(b"ab")) == b"ab"
    assert type(check_config_bytes("w", memoryview(b"ab"))) is bytes
    with pytest.raises(ArgumentValueError) as caught:
        check_config_bytes("w", b"x" * (MAX_CONFIG_BYTES + 1))
    assert str(caught.value) == "w must be at most 1048576 bytes, got 1048577 bytes"
    with pytest.raises(ArgumentTypeError, match=r"^w must be bytes, got str$"):
        check_config_bytes("w", "x")


def test_a_log_entry_keeps_500_characters_of_its_reason() -> None:
    entry = LogEntry.of("note", 3, "r" * 501)
    assert (entry.action, entry.version, entry.reason) == ("note", 3, "r" * 500)
    assert LogEntry.of("note", None, "r" * 500).reason == "r" * 500
    assert entry.time > 1.6e9  # wall-clock time: read by people, across hosts
    assert entry.as_dict() == {
        "time": entry.time,
        "action": "note",
        "version": 3,
        "reason": entry.reason,
    }
    assert LogEntry.from_dict(entry.as_dict()) == entry


def test_a_log_entry_read_back_makes_do_with_what_it_finds() -> None:
    assert LogEntry.from_dict({}) == LogEntry(0.0, "", None, "")
    odd = LogEntry.from_dict({"time": "noon", "action": 5, "version": "2", "reason": None})
    assert odd == LogEntry(0.0, "5", None, "None")
    assert LogEntry.from_dict({"time": 7, "version": 2}) == LogEntry(7.0, "", 2, "")


def test_merging_samples_adds_counts_and_keeps_the_latest_values() -> None:
    into = CohortSamples(3, successes=1, total=2)
    into.values("latency").append(1.0)
    more = CohortSamples(9, successes=4, total=5)
    more.values("latency").extend([2.0, 3.0, 4.0])
    more.values("cpu").append(0.5)
    merge_samples(into, more)
    assert (into.successes, into.total) == (5, 7)
    assert list(into.metrics["latency"]) == [2.0, 3.0, 4.0]
    assert list(into.metrics["cpu"]) == [0.5]
    assert (more.successes, more.total) == (4, 5)


async def test_versions_are_numbered_from_one() -> None:
    store = MemoryConfigStore()
    assert await store.current() is None
    assert await store.last_good() is None
    assert await store.store(bytearray(b"a"), "r") == ConfigVersion(1, b"a")
    assert await store.store(b"b", "r") == ConfigVersion(2, b"b")
    assert await store.get(2) == ConfigVersion(2, b"b")
    with pytest.raises(KeyError):
        await store.get(3)
    with pytest.raises(ArgumentValueError, match=r"MemoryConfigStore\.get\(number\)"):
        await store.get(0)


async def test_activating_and_marking_need_a_stored_version() -> None:
    store = MemoryConfigStore()
    await store.store(b"a", "r")
    with pytest.raises(KeyError):
        await store.activate(2, expected=None, reason="r")
    with pytest.raises(KeyError):
        await store.mark_good(2, "r")
    with pytest.raises(ArgumentValueError, match=r"MemoryConfigStore\.activate\(number\)"):
        await store.activate(0, expected=None, reason="r")
    with pytest.raises(ArgumentValueError, match=r"MemoryConfigStore\.mark_good\(number\)"):
        await store.mark_good(0, "r")
    await store.activate(1, expected=None, reason="boot")
    with pytest.raises(ConfigConflictError) as caught:
        await store.activate(1, expected=2, reason="r")
    assert str(caught.value) == "version 1 not activated: the current version is 1, not 2"
    await store.mark_good(1, "ok")
    assert await store.last_good() == ConfigVersion(1, b"a")
    log = await store.log()
    assert [(e.action, e.version, e.reason) for e in log] == [
        ("stored", 1, "r"),
        ("activated", 1, "boot"),
        ("marked_good", 1, "ok"),
    ]


async def test_every_watcher_hears_each_activation() -> None:
    store = MemoryConfigStore()
    for data in (b"1", b"2"):
        await store.store(data, "r")
    watchers = [store.changes() for _ in range(2)]
    waiting = [asyncio.ensure_future(anext(w)) for w in watchers]
    await asyncio.sleep(0)
    await store.activate(1, expected=None, reason="r")
    assert await asyncio.gather(*waiting) == [1, 1]
    await store.activate(2, expected=1, reason="r")
    assert [await anext(w) for w in watchers] == [2, 2]
    for watcher in watchers:
        await watcher.aclose()


async def test_the_plan_is_kept_as_bytes() -> None:
    store = MemoryConfigStore()
    assert await store.plan() is None
    await store.publish_plan(bytearray(b"{}"))  # type: ignore[arg-type]
    assert await store.plan() == b"{}"
    assert type(await store.plan()) is bytes


def samples(successes: int, total: int, *latencies: float) -> CohortSamples:
    side = CohortSamples(100, successes, total)
    if latencies:
        side.values("latency").extend(latencies)
    return side


async def test_samples_of_a_stage_add_up_across_instances() -> None:
    store = MemoryConfigStore()
    canary, control = await store.samples("2:0", ("latency",), 10)
    assert (canary.total, control.total, canary.metrics, control.metrics) == (0, 0, {}, {})
    await store.add_samples("2:0", samples(1, 2, 0.1), samples(3, 4), 2)
    await store.add_samples("2:0", samples(5, 6, 0.2, 0.3), samples(7, 8, 0.4), 2)
    canary, control = await store.samples("2:0", ("latency",), 10)
    assert (canary.successes, canary.total, control.successes, control.total) == (6, 8, 10, 12)
    assert list(canary.metrics["latency"]) == [0.2, 0.3]  # the store keeps the latest 2
    assert list(control.metrics["latency"]) == [0.4]
    assert canary.capacity == 10
    canary.total = 1000  # a copy: the store's own counts are untouched
    again, _ = await store.samples("2:0", ("latency",), 10)
    assert again.total == 8
    other, _ = await store.samples("2:1", ("latency",), 10)
    assert other.total == 0


async def test_the_memory_store_keeps_the_samples_of_the_last_8_stages() -> None:
    store = MemoryConfigStore()
    for stage in range(9):
        await store.add_samples(f"2:{stage}", samples(1, 1), samples(1, 1), 5)
    kept = [(await store.samples(f"2:{stage}", (), 5))[0].total for stage in range(9)]
    assert kept == [0, 1, 1, 1, 1, 1, 1, 1, 1]
    await store.add_samples("2:8", samples(1, 1), samples(1, 1), 5)  # a known stage: none goes
    assert (await store.samples("2:1", (), 5))[0].total == 1


async def test_the_memory_stores_refusals_name_the_method() -> None:
    store = MemoryConfigStore()
    with pytest.raises(ArgumentTypeError, match=r"^MemoryConfigStore\.store\(data\) must be bytes"):
        await store.store("text", "r")  # type: ignore[arg-type]
    for method, call in [
        ("get", lambda: store.get(0)),
        ("activate", lambda: store.activate(0, expected=None, reason="r")),
        ("mark_good", lambda: store.mark_good(0, "r")),
    ]:
        with pytest.raises(ArgumentValueError) as caught:
            await call()
        assert str(caught.value).startswith(f"MemoryConfigStore.{method}(number) must be an int")
