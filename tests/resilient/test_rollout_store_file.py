"""The file store's layout, bounds and polling, exactly: the files its docstring names, a log
rewritten past twice its bound, what a crash or a stray file leaves, changes in virtual time."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import resilient.rollout._file_store as file_store_module
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout import ConfigVersion, FileConfigStore, LogEntry
from resilient.rollout._store import DEFAULT_LOG_ENTRIES


async def until(condition: Callable[[], bool]) -> None:
    """Wait (for the store's thread) until ``condition`` holds: synchronisation, not timing."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


async def test_the_layout_is_the_documented_one(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "store"  # parents made
    store = FileConfigStore(directory)
    await store.store(b"one", "boot")
    await store.store(b"two", "next")
    await store.activate(2, expected=None, reason="boot")
    await store.mark_good(1, "known good")
    assert sorted(os.listdir(directory)) == [".lock", "log.jsonl", "state.json", "versions"]
    assert sorted(os.listdir(directory / "versions")) == ["000001", "000002"]
    assert (directory / "versions" / "000002").read_bytes() == b"two"
    assert json.loads((directory / "state.json").read_bytes()) == {"current": 2, "good": 1}
    lines = (directory / "log.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "stored",
        "stored",
        "activated",
        "marked_good",
    ]
    again = FileConfigStore(directory)  # an existing directory is opened as it is
    assert await again.current() == ConfigVersion(2, b"two")
    assert await again.last_good() == ConfigVersion(1, b"one")


async def test_an_empty_store(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    assert await store.current() is None
    assert await store.last_good() is None
    assert await store.log() == []
    with pytest.raises(KeyError):
        await store.get(1)


async def test_a_log_line_is_ascii_json(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    await store.record("note", None, "caf\u00e9 \u2603")
    line = (tmp_path / "log.jsonl").read_bytes()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert line.isascii()
    [entry] = await store.log()
    assert (entry.action, entry.version, entry.reason) == ("note", None, "caf\u00e9 \u2603")


def write_log(directory: Path, count: int) -> None:
    lines = [json.dumps(LogEntry(1.0, "old", i, "r").as_dict()) + "\n" for i in range(count)]
    (directory / "log.jsonl").write_text("".join(lines))


async def test_the_log_file_is_cut_to_its_bound_past_twice_the_bound(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    write_log(tmp_path, 2 * DEFAULT_LOG_ENTRIES - 1)
    await store.record("note", None, "at twice")
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 * DEFAULT_LOG_ENTRIES  # not cut yet
    entries = await store.log()
    assert len(entries) == DEFAULT_LOG_ENTRIES  # but read to its bound
    assert entries[-1].action == "note"
    assert entries[0].version == DEFAULT_LOG_ENTRIES
    await store.record("note", None, "past twice")
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert len(lines) == DEFAULT_LOG_ENTRIES
    assert json.loads(lines[-1])["reason"] == "past twice"
    assert json.loads(lines[0])["version"] == DEFAULT_LOG_ENTRIES + 1


async def test_a_line_of_the_log_that_is_not_json_is_skipped(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    await store.record("one", 1, "r")
    log = tmp_path / "log.jsonl"
    log.write_bytes(log.read_bytes() + b'{"torn\n')
    await store.record("two", 2, "r")
    assert [(e.action, e.version) for e in await store.log()] == [("one", 1), ("two", 2)]


async def test_a_state_file_with_junk_points_nowhere(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    await store.store(b"x", "r")
    (tmp_path / "state.json").write_text('{"current": "1", "good": 1.0}')
    assert await store.current() is None
    assert await store.last_good() is None
    await store.activate(1, expected=None, reason="r")
    assert await store.current() == ConfigVersion(1, b"x")


async def test_numbers_ignore_stray_files_of_the_versions_directory(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    await store.store(b"1", "r")
    (tmp_path / "versions" / ".tmp-000007-dead").write_bytes(b"x")
    (tmp_path / "versions" / "notes").write_bytes(b"x")
    assert (await store.store(b"2", "r")).number == 2


async def test_activating_and_marking_need_a_stored_version(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    await store.store(b"1", "r")
    with pytest.raises(KeyError):
        await store.activate(2, expected=None, reason="r")
    with pytest.raises(KeyError):
        await store.mark_good(2, "r")
    assert await store.last_good() is None
    for call in (
        lambda: store.activate(0, expected=None, reason="r"),
        lambda: store.mark_good(0, "r"),
        lambda: store.get(0),
    ):
        with pytest.raises(ArgumentValueError, match=r"FileConfigStore\.\w+\(number\)"):
            await call()
    await store.activate(1, expected=None, reason="r")
    with pytest.raises(ConfigConflictError) as caught:
        await store.activate(1, expected=3, reason="r")
    assert str(caught.value) == "version 1 not activated: the current version is 1, not 3"


async def test_a_write_that_fails_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileConfigStore(tmp_path)

    def crash(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(file_store_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        await store.store(b"x", "r")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "versions") == []
    file_store_module.write_atomically(tmp_path / "plain", b"bytes")
    assert sorted(os.listdir(tmp_path)) == [".lock", "plain", "versions"]


async def test_changes_are_seen_at_each_poll_in_virtual_time(tmp_path: Path) -> None:
    clock = VirtualClock()
    store = FileConfigStore(tmp_path, poll_interval=2.0, clock=clock)
    for data in (b"1", b"2", b"3"):
        await store.store(data, "r")
    await store.activate(1, expected=None, reason="r")
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    await until(lambda: clock.pending == 1)
    clock.advance(2.0)  # the version current when it began is no change
    await until(lambda: clock.pending == 1)
    assert not waiting.done()
    await store.activate(2, expected=1, reason="r")
    clock.advance(1.99)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    clock.advance(0.01)
    await until(waiting.done)
    assert waiting.result() == 2
    waiting = asyncio.ensure_future(anext(changes))
    await until(lambda: clock.pending == 1)
    clock.advance(2.0)  # a poll with no change yields nothing
    await until(lambda: clock.pending == 1)
    assert not waiting.done()
    await store.activate(3, expected=2, reason="r")
    clock.advance(2.0)
    await until(waiting.done)
    assert waiting.result() == 3
    await changes.aclose()


async def test_a_store_with_no_current_version_announces_nothing(tmp_path: Path) -> None:
    clock = VirtualClock()
    store = FileConfigStore(tmp_path, poll_interval=1.0, clock=clock)
    changes = store.changes()
    waiting = asyncio.ensure_future(anext(changes))
    for _ in range(3):
        await until(lambda: clock.pending == 1)
        clock.advance(1.0)
    await until(lambda: clock.pending == 1)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_bad_arguments_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match=r"FileConfigStore\.directory must be a path"):
        FileConfigStore(None)  # type: ignore[arg-type]
    with pytest.raises(ArgumentValueError) as caught:
        FileConfigStore(tmp_path, poll_interval=0)
    assert str(caught.value) == (
        "FileConfigStore.poll_interval must be a finite number of seconds > 0, got 0"
    )
    with pytest.raises(ArgumentTypeError, match=r"FileConfigStore\.clock must be a Clock"):
        FileConfigStore(tmp_path, clock=object())  # type: ignore[arg-type]
    assert FileConfigStore(str(tmp_path), poll_interval=0.001).poll_interval == 0.001
    assert FileConfigStore(tmp_path).poll_interval == 0.25


async def test_the_refusals_name_the_method(tmp_path: Path) -> None:
    store = FileConfigStore(tmp_path)
    with pytest.raises(ArgumentTypeError, match=r"^FileConfigStore\.store\(data\) must be bytes"):
        await store.store("text", "r")  # type: ignore[arg-type]
    for method, call in [
        ("get", lambda: store.get(0)),
        ("activate", lambda: store.activate(0, expected=None, reason="r")),
        ("mark_good", lambda: store.mark_good(0, "r")),
    ]:
        with pytest.raises(ArgumentValueError) as caught:
            await call()
        assert str(caught.value).startswith(f"FileConfigStore.{method}(number) must be an int")


async def test_every_file_is_written_to_a_dot_tmp_name_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileConfigStore(tmp_path)
    renamed: list[tuple[str, str]] = []
    replace = os.replace

    def recording(source: Any, target: Any) -> None:
        renamed.append((Path(source).name, Path(target).name))
        replace(source, target)

    monkeypatch.setattr(file_store_module.os, "replace", recording)
    await store.store(b"x", "r")
    await store.activate(1, expected=None, reason="r")
    assert [target for _, target in renamed] == ["000001", "state.json"]
    for source, target in renamed:
        assert re.fullmatch(rf"\.tmp-{re.escape(target)}-[0-9a-f]+", source), source
