"""What every config store keeps, and the in-memory one.

A store holds immutable numbered versions of a configuration's bytes, a pointer to the
current one, the last known good one, and a log of what happened to them (stored, activated,
rejected, rolled back, with the reason). The pointer moves only by compare-and-set
(:meth:`ConfigStore.activate` with ``expected``): of two writers that read the same current
version, exactly one moves it. Reverting is activating the last known good version, whose
bytes are the very bytes stored then.

Stores: :class:`MemoryConfigStore` (one process; tests), :class:`~resilient.rollout.FileConfigStore`
(one host: atomic writes), :class:`~resilient.rollout.RedisConfigStore` (a fleet).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from resilient._validate import Integer, check
from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout._gates import CohortSamples

__all__ = [
    "DEFAULT_LOG_ENTRIES",
    "MAX_CONFIG_BYTES",
    "ConfigStore",
    "ConfigVersion",
    "LogEntry",
    "MemoryConfigStore",
    "SharedRolloutStore",
    "check_config_bytes",
    "merge_samples",
]

MAX_CONFIG_BYTES = 1 << 20
"""The largest configuration a store accepts: 1 MiB (Kubernetes' ConfigMap limit). A runtime
configuration larger than that is data, not configuration."""

DEFAULT_LOG_ENTRIES = 1000
"""Log entries a store keeps (the oldest go first); each is at most a few hundred bytes."""

_LOG_TEXT = 500
"""A log entry's reason is cut to this many characters: its size is the store's, not the
caller's."""


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One stored version: its number (1, 2, ...; never reused) and its exact bytes."""

    number: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One thing that happened to a store's versions, and why."""

    time: float
    """Wall-clock time (``time.time()``): the log is read by people, across hosts."""
    action: str
    """``stored``, ``activated``, ``marked_good``, ``rejected``, or a rollout's transition."""
    version: int | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "action": self.action,
            "version": self.version,
            "reason": self.reason,
        }

    @classmethod
    def of(cls, action: str, version: int | None, reason: str) -> LogEntry:
        return cls(time.time(), action, version, reason[:_LOG_TEXT])

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LogEntry:
        version = data.get("version")
        when = data.get("time")
        return cls(
            float(when) if isinstance(when, int | float) else 0.0,
            str(data.get("action", "")),
            version if isinstance(version, int) else None,
            str(data.get("reason", "")),
        )


def check_config_bytes(where: str, data: object) -> bytes:
    """``data`` as bytes, or an :class:`~resilient.errors.ArgumentError` naming ``where``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ArgumentTypeError(f"{where} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_CONFIG_BYTES:
        raise ArgumentValueError(
            f"{where} must be at most {MAX_CONFIG_BYTES} bytes, got {len(data)} bytes"
        )
    return data


_VERSION = Integer(min=1)


@runtime_checkable
class ConfigStore(Protocol):
    """Versioned configuration bytes with a current and a last known good version."""

    async def store(self, data: bytes, reason: str) -> ConfigVersion:
        """Keep ``data`` as a new version (not current); the log says ``reason``."""
        ...

    async def get(self, number: int) -> ConfigVersion:
        """Version ``number``; :class:`KeyError` when there is none."""
        ...

    async def current(self) -> ConfigVersion | None:
        """The current version, or None before the first activation."""
        ...

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        """Make version ``number`` current if the current one is still ``expected`` (None: no
        version is current yet), or raise :class:`~resilient.errors.ConfigConflictError`."""
        ...

    async def last_good(self) -> ConfigVersion | None:
        """The last version marked good, or None."""
        ...

    async def mark_good(self, number: int, reason: str) -> None:
        """Pin version ``number`` as the last known good one."""
        ...

    async def record(self, action: str, version: int | None, reason: str) -> None:
        """Append one entry to the log."""
        ...

    async def log(self) -> list[LogEntry]:
        """The log, oldest first (at most :data:`DEFAULT_LOG_ENTRIES` entries)."""
        ...

    def changes(self) -> AsyncIterator[int]:
        """Each new current version number, as it changes (from now on)."""
        ...


@runtime_checkable
class SharedRolloutStore(ConfigStore, Protocol):
    """A store through which the instances of a fleet share one rollout: its plan (which
    candidate, which stage, which keys are its canary) and every instance's samples."""

    async def publish_plan(self, plan: bytes) -> None:
        """Make ``plan`` (a small JSON document) the fleet's rollout plan."""
        ...

    async def plan(self) -> bytes | None:
        """The fleet's rollout plan, or None when no rollout was ever published."""
        ...

    async def add_samples(
        self, stage: str, canary: CohortSamples, control: CohortSamples, capacity: int
    ) -> None:
        """Add an instance's samples of ``stage`` (keeping the latest ``capacity`` values of
        each metric and side)."""
        ...

    async def samples(
        self, stage: str, metrics: tuple[str, ...], capacity: int
    ) -> tuple[CohortSamples, CohortSamples]:
        """Every instance's samples of ``stage``: ``(canary, control)``."""
        ...


def merge_samples(into: CohortSamples, more: CohortSamples) -> None:
    """Add ``more``'s counts and values to ``into`` (whose capacity bounds the values)."""
    into.total += more.total
    into.successes += more.successes
    for metric, values in more.metrics.items():
        into.values(metric).extend(values)


_STAGES_KEPT = 8
"""Stages whose samples a memory store keeps (the oldest go first)."""


class MemoryConfigStore:
    """A :class:`ConfigStore` in this process's memory: for tests, and for a service whose
    configuration lives no longer than the process."""

    def __init__(self) -> None:
        self._versions: dict[int, bytes] = {}
        self._current: int | None = None
        self._good: int | None = None
        self._log: deque[LogEntry] = deque(maxlen=DEFAULT_LOG_ENTRIES)
        self._watchers: set[asyncio.Queue[int]] = set()
        self._plan: bytes | None = None
        self._stages: dict[str, tuple[CohortSamples, CohortSamples]] = {}

    async def store(self, data: bytes, reason: str) -> ConfigVersion:
        data = check_config_bytes("MemoryConfigStore.store(data)", data)
        number = len(self._versions) + 1
        self._versions[number] = data
        self._log.append(LogEntry.of("stored", number, reason))
        return ConfigVersion(number, data)

    async def get(self, number: int) -> ConfigVersion:
        check("MemoryConfigStore.get(number)", number, _VERSION)
        return ConfigVersion(number, self._versions[number])

    async def current(self) -> ConfigVersion | None:
        return (
            None
            if self._current is None
            else ConfigVersion(self._current, self._versions[self._current])
        )

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        check("MemoryConfigStore.activate(number)", number, _VERSION)
        if number not in self._versions:
            raise KeyError(number)
        if self._current != expected:
            raise ConfigConflictError(
                f"version {number} not activated: the current version is {self._current}, "
                f"not {expected}"
            )
        self._current = number
        self._log.append(LogEntry.of("activated", number, reason))
        for queue in self._watchers:
            queue.put_nowait(number)

    async def last_good(self) -> ConfigVersion | None:
        return None if self._good is None else ConfigVersion(self._good, self._versions[self._good])

    async def mark_good(self, number: int, reason: str) -> None:
        check("MemoryConfigStore.mark_good(number)", number, _VERSION)
        if number not in self._versions:
            raise KeyError(number)
        self._good = number
        self._log.append(LogEntry.of("marked_good", number, reason))

    async def record(self, action: str, version: int | None, reason: str) -> None:
        self._log.append(LogEntry.of(action, version, reason))

    async def log(self) -> list[LogEntry]:
        return list(self._log)

    async def changes(self) -> AsyncIterator[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    async def publish_plan(self, plan: bytes) -> None:
        self._plan = bytes(plan)

    async def plan(self) -> bytes | None:
        return self._plan

    async def add_samples(
        self, stage: str, canary: CohortSamples, control: CohortSamples, capacity: int
    ) -> None:
        if stage not in self._stages:
            while len(self._stages) >= _STAGES_KEPT:
                del self._stages[next(iter(self._stages))]
            self._stages[stage] = (CohortSamples(capacity), CohortSamples(capacity))
        ours = self._stages[stage]
        merge_samples(ours[0], canary)
        merge_samples(ours[1], control)

    async def samples(
        self, stage: str, metrics: tuple[str, ...], capacity: int
    ) -> tuple[CohortSamples, CohortSamples]:
        copies = (CohortSamples(capacity), CohortSamples(capacity))
        for copy, ours in zip(copies, self._stages.get(stage, ()), strict=False):
            merge_samples(copy, ours)
        return copies
