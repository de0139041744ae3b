"""The API's connections: aiohttp's request handler behind Go's read and idle timeouts.

Toxiproxy's ``http.Server`` has a read timeout of 15 s (a request, headers and body, must arrive
within 15 s of its first byte; a new connection has 15 s for its first request) and an idle
timeout of 60 s between requests. aiohttp has no read timeout at all, and keeps an idle
connection for an hour: a client sending partial headers (slowloris) held a connection for as
long as it liked. :class:`ApiConnections` wraps each connection's aiohttp protocol and closes a
connection whose request is not read in time; the API's middleware reports when it holds the
whole request (:meth:`ApiConnections.request_read`) and when it has answered it
(:meth:`ApiConnections.request_done`). The idle timeout is aiohttp's keep-alive timeout.

A request pipelined behind one still being handled gets its read deadline when the one before
it is answered (Go reads it only then, too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, cast

__all__ = ["DEFAULT_IDLE_TIMEOUT", "DEFAULT_READ_TIMEOUT", "ApiConnections"]

_log = logging.getLogger("chaos.toxiproxy")

DEFAULT_READ_TIMEOUT: Final = 15.0
"""Seconds for a request (headers and body) to arrive, as Toxiproxy's server (``read_timeout``)."""
DEFAULT_IDLE_TIMEOUT: Final = 60.0
"""Seconds a keep-alive connection may wait between requests, as Toxiproxy's ``IdleTimeout``."""


class ApiConnections:
    """The API's open connections and their read deadlines."""

    def __init__(self, read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        if not read_timeout > 0:
            raise ValueError(f"read_timeout must be > 0 seconds, got {read_timeout!r}")
        self.read_timeout = read_timeout
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}

    def factory(self, inner: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory: each protocol of ``inner`` behind a read deadline."""
        return lambda: _Connection(self, cast(asyncio.Protocol, inner()))

    def request_read(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on ``transport`` is read in full: its read deadline is off."""
        connection = self._connections.get(transport) if transport is not None else None
        if connection is not None:
            connection.request_read()

    def request_done(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on ``transport`` is answered: the connection is idle (or reads the next)."""
        connection = self._connections.get(transport) if transport is not None else None
        if connection is not None:
            connection.request_done()

    def _opened(self, transport: asyncio.BaseTransport, connection: _Connection) -> None:
        self._connections[transport] = connection

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._connections.pop(transport, None)


class _Connection(asyncio.Protocol):
    """One API connection: forwards everything to aiohttp's protocol, keeps the deadline."""

    def __init__(self, owner: ApiConnections, inner: asyncio.Protocol) -> None:
        self._owner = owner
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._handling = False
        self._pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._owner._opened(transport, self)
        self._arm()  # the first request must arrive within the read timeout
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handling:
            self._pending = True
        elif self._timer is None:
            self._arm()  # the first byte of a request after an idle wait
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._transport is not None:
            self._owner._closed(self._transport)
        self._inner.connection_lost(exc)

    def request_read(self) -> None:
        self._cancel()
        self._handling = True

    def request_done(self) -> None:
        self._handling = False
        if self._pending:
            self._pending = False
            self._arm()

    def _arm(self) -> None:
        self._cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._owner.read_timeout, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            _log.debug("API: no whole request within %g s; closing", self._owner.read_timeout)
            transport.close()
