"""The incident's backend client (scenario ``connection-storm``'s naive arm): connections
without a bound on how many or how fast, and a request whose connection failed retried at once
on a new one. Kept apart from the scenario so that the scenario module reads as its
declaration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["ReconnectingClient"]

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Config(Protocol):
    @property
    def reconnect_per_request(self) -> bool: ...

    @property
    def retries(self) -> int: ...


class _Connections(Protocol):
    connects: int
    opened: int
    closed: int

    async def open(self) -> Stream: ...

    async def close(self, stream: Stream) -> None: ...


class ReconnectingClient:
    """What most clients do by default: an idle connection is reused when there is one, a new
    one is opened whenever none is idle (no bound), and with ``reconnect_per_request`` every
    request opens its own; a failed request is tried again at once, ``retries`` times, each
    time on a new connection. Nothing paces the connects."""

    def __init__(
        self,
        connections: _Connections,
        ask_on: Callable[[Stream, str], Awaitable[str]],
        config: _Config,
    ) -> None:
        self._connections = connections
        self._ask_on = ask_on
        self.config: Any = config
        self._idle: list[Stream] = []

    @property
    def connects(self) -> int:
        return self._connections.connects

    @property
    def opened(self) -> int:
        return self._connections.opened

    @property
    def closed(self) -> int:
        return self._connections.closed

    async def ask(self, key: str) -> str:
        connections = self._connections
        for attempt in range(self.config.retries + 1):
            fresh = self.config.reconnect_per_request or attempt > 0 or not self._idle
            stream = await self._open_or_fail(attempt) if fresh else self._idle.pop()
            if stream is None:
                continue
            try:
                answer = await self._ask_on(stream, key)
            except OSError:
                await connections.close(stream)
                if attempt == self.config.retries:
                    raise
                continue
            except BaseException:
                await connections.close(stream)
                raise
            if self.config.reconnect_per_request:
                await connections.close(stream)
            else:
                self._idle.append(stream)
            return answer
        raise ConnectionError("every attempt failed")

    async def _open_or_fail(self, attempt: int) -> Stream | None:
        try:
            return await self._connections.open()
        except OSError:
            if attempt == self.config.retries:
                raise
            return None  # retried at once

    def apply(self, config: Any) -> None:
        self.config = config

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for stream in idle:
            await self._connections.close(stream)
