"""A config store in a directory of one host: every write atomic and durable.

Layout under the store's directory::

    versions/000001, 000002, ...   each version's exact bytes, never changed once written
    state.json                     {"current": N, "good": M}
    log.jsonl                      one JSON object a line, the last DEFAULT_LOG_ENTRIES kept
    .lock                          flock'ed by every writer (processes of the host included)

Every file is written whole to a temporary name in the same directory, flushed with
``fsync``, renamed over its final name, and the directory is ``fsync``'ed: a crash at any
instant (the process killed, the host losing power after ``fsync`` returned) leaves the old
file or the new one, never a torn one. A temporary file a crash left behind
(``.tmp-*``) is ignored. Blocking file work runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from resilient._validate import Instance, Integer, Number, check
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ConfigConflictError
from resilient.rollout._store import (
    DEFAULT_LOG_ENTRIES,
    ConfigVersion,
    LogEntry,
    check_config_bytes,
)

__all__ = ["FileConfigStore"]

_VERSION = Integer(min=1)
_STATE = "state.json"
_LOG = "log.jsonl"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: the old bytes or the new ones survive any crash."""
    temporary = path.with_name(f".tmp-{path.name}-{secrets.token_hex(6)}")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)


class FileConfigStore:
    """A :class:`~resilient.rollout.ConfigStore` in ``directory`` (made if missing), shared
    by the processes of one host. ``changes()`` looks for a new current version every
    ``poll_interval`` seconds of ``clock``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        poll_interval: float = 0.25,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(directory, str | os.PathLike):
            check("FileConfigStore.directory", directory, Instance(str, "a path"))
        self.directory = Path(directory)
        self.poll_interval: float = check(
            "FileConfigStore.poll_interval",
            poll_interval,
            Number(min=0, min_open=True, unit="seconds"),
        )
        self._clock: Clock = check("FileConfigStore.clock", clock, Instance(Clock, "a Clock"))
        self._versions = self.directory / "versions"
        self._versions.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _version_path(self, number: int) -> Path:
        return self._versions / f"{number:06d}"

    def _read_state(self) -> dict[str, int | None]:
        try:
            raw = json.loads((self.directory / _STATE).read_bytes())
        except FileNotFoundError:
            return {"current": None, "good": None}
        return {
            key: raw.get(key) if isinstance(raw.get(key), int) else None
            for key in ("current", "good")
        }

    def _write_state(self, state: dict[str, int | None]) -> None:
        write_atomically(self.directory / _STATE, json.dumps(state).encode())

    def _append_log(self, entry: LogEntry) -> None:
        path = self.directory / _LOG
        line = json.dumps(entry.as_dict(), ensure_ascii=True).encode() + b"\n"
        with open(path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        lines = path.read_bytes().splitlines(keepends=True)
        if len(lines) > 2 * DEFAULT_LOG_ENTRIES:
            write_atomically(path, b"".join(lines[-DEFAULT_LOG_ENTRIES:]))

    def _store(self, data: bytes, reason: str) -> ConfigVersion:
        with self._locked():
            numbers = [int(name) for name in os.listdir(self._versions) if name.isdigit()]
            number = max(numbers, default=0) + 1
            write_atomically(self._version_path(number), data)
            self._append_log(LogEntry.of("stored", number, reason))
        return ConfigVersion(number, data)

    def _get(self, number: int) -> ConfigVersion:
        try:
            return ConfigVersion(number, self._version_path(number).read_bytes())
        except FileNotFoundError:
            raise KeyError(number) from None

    def _activate(self, number: int, expected: int | None, reason: str) -> None:
        with self._locked():
            self._get(number)
            state = self._read_state()
            if state["current"] != expected:
                raise ConfigConflictError(
                    f"version {number} not activated: the current version is "
                    f"{state['current']}, not {expected}"
                )
            state["current"] = number
            self._write_state(state)
            self._append_log(LogEntry.of("activated", number, reason))

    def _mark_good(self, number: int, reason: str) -> None:
        with self._locked():
            self._get(number)
            state = self._read_state()
            state["good"] = number
            self._write_state(state)
            self._append_log(LogEntry.of("marked_good", number, reason))

    def _record(self, entry: LogEntry) -> None:
        with self._locked():
            self._append_log(entry)

    def _pointed(self, key: str) -> ConfigVersion | None:
        number = self._read_state()[key]
        return None if number is None else self._get(number)

    def _log(self) -> list[LogEntry]:
        try:
            lines = (self.directory / _LOG).read_bytes().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines[-DEFAULT_LOG_ENTRIES:]:
            with contextlib.suppress(ValueError):
                entries.append(LogEntry.from_dict(json.loads(line)))
        return entries

    async def store(self, data: bytes, reason: str) -> ConfigVersion:
        data = check_config_bytes("FileConfigStore.store(data)", data)
        return await asyncio.to_thread(self._store, data, reason)

    async def get(self, number: int) -> ConfigVersion:
        check("FileConfigStore.get(number)", number, _VERSION)
        return await asyncio.to_thread(self._get, number)

    async def current(self) -> ConfigVersion | None:
        return await asyncio.to_thread(self._pointed, "current")

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        check("FileConfigStore.activate(number)", number, _VERSION)
        await asyncio.to_thread(self._activate, number, expected, reason)

    async def last_good(self) -> ConfigVersion | None:
        return await asyncio.to_thread(self._pointed, "good")

    async def mark_good(self, number: int, reason: str) -> None:
        check("FileConfigStore.mark_good(number)", number, _VERSION)
        await asyncio.to_thread(self._mark_good, number, reason)

    async def record(self, action: str, version: int | None, reason: str) -> None:
        await asyncio.to_thread(self._record, LogEntry.of(action, version, reason))

    async def log(self) -> list[LogEntry]:
        return await asyncio.to_thread(self._log)

    async def changes(self) -> AsyncIterator[int]:
        seen = (await asyncio.to_thread(self._read_state))["current"]
        while True:
            await self._clock.sleep(self.poll_interval)
            now = (await asyncio.to_thread(self._read_state))["current"]
            if now is not None and now != seen:
                seen = now
                yield now
