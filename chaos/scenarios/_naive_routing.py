"""The incident's way of changing a fleet's routing: a new configuration is made current in
the store at once, and every instance serves it as soon as it sees it. It is parsed (a
configuration that is not one would not load anywhere), but nothing else checks it, nothing
compares it with what it replaced, and nothing takes it back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resilient.rollout import ConfigStore

__all__ = ["AppliedAtOnce"]

POLL = 0.25
"""Seconds between two reads of the store's current version (as the guarded fleet's sync)."""


@dataclass(frozen=True)
class _Served:
    config: Any


class AppliedAtOnce:
    """Every request sees the store's current configuration (read every :data:`POLL` s)."""

    def __init__(self, store: ConfigStore, parse: Callable[[bytes], Any], initial: Any) -> None:
        self.store = store
        self._parse = parse
        self._served = _Served(initial)
        self._version: int | None = None

    def config_for(self, user: str, region: str) -> _Served:
        return self._served

    def record(self, served: Any, *, ok: bool, latency: float) -> bool:
        return False

    async def refresh(self) -> None:
        current = await self.store.current()
        if current is not None and current.number != self._version:
            self._served = _Served(self._parse(current.data))
            self._version = current.number

    async def watch(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(POLL)

    async def apply(self, data: bytes, reason: str) -> None:
        """Make ``data`` current for the whole fleet, now."""
        self._parse(data)
        current = await self.store.current()
        version = await self.store.store(data, reason)
        await self.store.activate(
            version.number, expected=None if current is None else current.number, reason=reason
        )
        await self.refresh()
