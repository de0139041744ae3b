"""One proxy: its listener, its connections, and the two links of each connection.

Every accepted client connection dials the upstream once. Data then flows on two links: the
upstream link (client to server) and the downstream link (server to client).

A link with no toxic is a *direct* relay: the source socket's ``data_received`` writes straight
into the sink transport, and flow control is the transports' own (the source stops reading while
the sink's write buffer is above its high-water mark). That path allocates nothing and runs no
task, so the toxic machinery costs nothing where no toxic is set. A link with toxics runs them
in a task of its own (:class:`~chaos.toxiproxy._link.Link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import struct
from functools import partial
from typing import Final, cast

from chaos.toxiproxy._accept import Acceptor, FdGuard, bind_listener, is_exhaustion
from chaos.toxiproxy._link import Link, WorkBudget, resolve_future
from chaos.toxiproxy._toxics import Toxic

__all__ = ["Proxy", "ProxyError", "format_address", "resolve_listen", "split_host_port"]

_log = logging.getLogger("chaos.toxiproxy")

_WRITE_HIGH_WATER: Final = 256 * 1024
"""A sink transport above this many unsent bytes pauses its source (flow control)."""
_CLOSE_GRACE: Final = 10.0
"""Seconds a closed socket may spend flushing to a peer that does not read before it is aborted."""
_LOOPBACK: Final = "127.0.0.1"


class ProxyError(Exception):
    """Binding or resolving a proxy's address failed; ``str()`` is Go's message (API 500)."""


class Proxy:
    """A named listener that relays every accepted connection to ``upstream`` through toxics.

    ``listen`` is the requested address until the proxy starts, then the address actually
    bound, so a disable/enable cycle rebinds the same concrete port.
    """

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        seed: int | None,
        guard: FdGuard,
        budget: WorkBudget,
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.guard = guard
        self.budget = budget
        self._seed = seed
        self._shared_rng = random.Random()
        self._acceptor: Acceptor | None = None
        self._connections: set[Connection] = set()
        self._accepted = 0
        self._generation = 0  # bumped by stop: a connection accepted before it must not live on

    def to_json(self) -> dict[str, object]:
        """The proxy as the API returns it: upstream toxics first, then downstream."""
        ordered = [t for t in self.toxics if t.upstream] + [
            t for t in self.toxics if not t.upstream
        ]
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in ordered],
        }

    @property
    def connection_count(self) -> int:
        """Connections still open (either socket not yet closed)."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind ``listen`` and accept connections; raise :class:`ProxyError` on failure."""
        if self.enabled:
            return
        host, port = await resolve_listen(self.listen)
        try:
            sock = bind_listener(host, port)
        except OSError as error:
            reason = os.strerror(error.errno).lower() if error.errno else str(error)
            address = format_address(host, port)
            raise ProxyError(f"listen tcp {address}: {error.filename}: {reason}") from None
        acceptor = Acceptor(
            sock,
            partial(self._accept, self._generation),  # a later stop outdates its connections
            name=f"proxy {self.name}",
            guard=self.guard,
            shed=True,
        )
        acceptor.start()
        self._acceptor = acceptor
        self.listen = format_address(*acceptor.address)
        self.enabled = True
        _log.info("proxy %s listening on %s, upstream %s", self.name, self.listen, self.upstream)

    async def stop(self, *, abort: bool = False) -> None:
        """Close the listener and every live connection (``abort``: without flushing)."""
        self.enabled = False
        self._generation += 1
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        tasks = [task for connection in self._connections for task in connection.tasks()]
        for connection in list(self._connections):
            if abort:
                connection.abort()
            else:
                connection.close()
        if abort:
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.wait_connections_closed()

    async def wait_connections_closed(self, timeout: float = 5.0) -> None:
        """Wait until every connection has released its sockets (bounded by ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._connections and loop.time() < deadline:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.005)

    def add_toxic(self, toxic: Toxic) -> None:
        """Add ``toxic``; it starts at once on every open connection."""
        self.toxics.append(toxic)
        for connection in list(self._connections):
            if not connection.closing:
                connection.link(toxic.upstream).add_stage(toxic)

    def update_toxic(self, toxic: Toxic) -> None:
        """``toxic``'s attributes changed: restart its stage on every open connection."""
        for connection in list(self._connections):
            if not connection.closing:
                connection.link(toxic.upstream).restart_stage(toxic)

    def remove_toxic(self, toxic: Toxic) -> None:
        """Remove ``toxic``; its stages flush what they hold (a timeout closes its connections)."""
        self.toxics.remove(toxic)
        for connection in list(self._connections):
            if not connection.closing:
                connection.link(toxic.upstream).remove_stage(toxic)

    def _accept(self, generation: int) -> Side:
        self._accepted += 1
        return Connection(self, self._accepted, generation).client

    def _link_rng(self, number: int, direction: str) -> random.Random:
        if self._seed is None:
            return self._shared_rng
        return random.Random(f"{self._seed}/{self.name}/{number}/{direction}")

    def _connection_opened(self, connection: Connection) -> None:
        self._connections.add(connection)

    def _connection_finished(self, connection: Connection) -> None:
        self._connections.discard(connection)


class Connection:
    """A client connection, the upstream connection dialled for it, and the two links."""

    def __init__(self, proxy: Proxy, number: int, generation: int) -> None:
        self.proxy = proxy
        self.generation = generation
        self.loop = asyncio.get_running_loop()
        self.client = Side(self)
        self.server = Side(self)
        self.up = Link(self, self.client, self.server, proxy._link_rng(number, "up"))
        self.down = Link(self, self.server, self.client, proxy._link_rng(number, "down"))
        self.up.direct = False  # until the upstream is dialled, client data waits in the queue
        self.dialed: asyncio.Future[None] = self.loop.create_future()
        self.client.in_link = self.up
        self.client.out_link = self.down
        self.server.in_link = self.down
        self.server.out_link = self.up
        self.closing = False
        self._open_sides = 0
        self._dial_task: asyncio.Task[None] | None = None
        self._grace: asyncio.TimerHandle | None = None

    def link(self, upstream: bool) -> Link:
        return self.up if upstream else self.down

    def tasks(self) -> list[asyncio.Task[None]]:
        """The connection's running tasks (upstream dial, links with toxics)."""
        candidates = (self._dial_task, self.up.task, self.down.task)
        return [task for task in candidates if task is not None]

    def side_made(self, side: Side) -> None:
        self._open_sides += 1
        if side is self.client:
            if self.generation != self.proxy._generation:  # its listener was stopped since
                self.close()
                return
            self.proxy._connection_opened(self)
            for toxic in self.proxy.toxics:
                self.link(toxic.upstream).add_stage(toxic)
            self._dial_task = self.loop.create_task(self._dial())

    async def _dial(self) -> None:
        try:
            host, port = split_host_port(self.proxy.upstream)
            await self.loop.create_connection(lambda: self.server, host, int(port))
        except (OSError, ValueError) as error:
            if isinstance(error, OSError) and is_exhaustion(error):
                self.proxy.guard.exhausted(f"proxy {self.proxy.name}: dial", error)
            else:
                _log.info(
                    "proxy %s: dial %s failed: %s", self.proxy.name, self.proxy.upstream, error
                )
            self.close()
            return
        finally:
            self._dial_task = None
            self._maybe_finished()
        if self.closing:
            self.close_sides()
            return
        resolve_future(self.dialed, None)
        self.up.dialed()

    def side_lost(self, side: Side) -> None:
        self._open_sides -= 1
        self.close()
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if self.closing and self._open_sides == 0 and self._dial_task is None:
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            self.proxy._connection_finished(self)

    def close(self) -> None:
        """Close both sockets after flushing what they hold (peers see EOF)."""
        if self.closing:
            return
        self.closing = True
        self.up.stop()
        self.down.stop()
        if self._dial_task is not None:
            self._dial_task.cancel()
        self.close_sides()
        self._grace = self.loop.call_later(_CLOSE_GRACE, self.abort)
        self._maybe_finished()

    def close_sides(self) -> None:
        for side in (self.client, self.server):
            if side.transport is not None:
                side.transport.close()

    def abort(self) -> None:
        """Close both sockets at once, dropping unsent data."""
        self.close()
        for side in (self.client, self.server):
            if side.transport is not None:
                side.transport.abort()

    def reset(self) -> None:
        """Send the client a TCP RST (SO_LINGER 0) and close the upstream socket."""
        transport = self.client.transport
        if transport is not None and not transport.is_closing():
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self.close()


class Side(asyncio.Protocol):
    """One socket of a connection: the source of one link and the sink of the other."""

    in_link: Link
    out_link: Link

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self.out_link.sink_transport = transport
        self.connection.side_made(self)

    def data_received(self, data: bytes) -> None:
        link = self.in_link
        if link.direct:
            sink = link.sink_transport
            if sink is not None and not sink.is_closing():
                sink.write(data)
        else:
            link.feed(data)

    def eof_received(self) -> bool:
        self.in_link.feed_eof()
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self.out_link.sink_changed()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.out_link.sink_changed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.write_paused = False
        self.out_link.sink_changed()
        self.connection.side_lost(self)

    def set_reading(self, *, paused: bool) -> None:
        if paused == self.reading_paused:
            return
        self.reading_paused = paused
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()


def split_host_port(address: str) -> tuple[str, str]:
    """``host``, ``port`` of ``host:port`` (``[v6]:port``), with Go's error messages."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        if not address[end + 1 : end + 2] == ":":
            raise ValueError(f"address {address}: missing port in address")
        return address[1:end], address[end + 2 :]
    if ":" not in address:
        raise ValueError(f"address {address}: missing port in address")
    host, _, port = address.rpartition(":")
    if ":" in host:
        raise ValueError(f"address {address}: too many colons in address")
    return host, port


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 host (as Go prints it)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_listen(listen: str) -> tuple[str, int]:
    """The IP and port to bind for ``listen``; an empty host means loopback, not every interface.

    Raises :class:`ProxyError` with Go's wording when the address cannot be used.
    """
    if not listen:
        return _LOOPBACK, 0
    try:
        host, port_text = split_host_port(listen)
    except ValueError as error:
        raise ProxyError(str(error)) from None
    if not port_text:
        port = 0
    elif port_text.isdigit():
        port = int(port_text)
        if port > 65535:
            raise ProxyError(f"listen tcp: address {port_text}: invalid port")
    else:
        raise ProxyError(f"listen tcp: lookup tcp/{port_text}: unknown port")
    if not host:
        return _LOOPBACK, port
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ProxyError(f"listen tcp: lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0]), port
