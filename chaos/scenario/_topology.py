"""A scenario's topology: the servers it starts on loopback, and the proxies in front of them.

Each server starts on a free loopback port, fresh for every arm; the engine serves them
(:mod:`chaos.engine`). A :class:`Proxy` names the server it fronts; the arms reach a
dependency through its proxy, so the fault timeline can act on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from aiohttp import web

__all__ = ["AiohttpServer", "Proxy", "RedisServer", "Server", "TcpServer"]


@dataclass(frozen=True)
class AiohttpServer:
    """An aiohttp backend on a free loopback port; ``app`` builds a fresh app for each arm.

    ``app`` takes no argument, or one: the ``(host, port)`` of each server declared before
    this one, by name (a second tenant of a shared backend finds the backend so).
    """

    name: str
    app: (
        Callable[[], web.Application | Awaitable[web.Application]]
        | Callable[[Mapping[str, tuple[str, int]]], web.Application | Awaitable[web.Application]]
    )


@dataclass(frozen=True)
class RedisServer:
    """A real ``redis-server`` on a free loopback port (fresh for each arm, no persistence)."""

    name: str = "redis"


@dataclass(frozen=True)
class TcpServer:
    """A plain TCP server on a free loopback port; ``handler`` serves one connection."""

    name: str
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


Server = AiohttpServer | RedisServer | TcpServer


@dataclass(frozen=True)
class Proxy:
    """A Toxiproxy proxy named ``name`` in front of the server named ``upstream``."""

    name: str
    upstream: str
