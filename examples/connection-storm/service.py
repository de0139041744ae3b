"""A profile service whose connections to a shared backend are bounded and gated.

Every request asks a shared backend (a line protocol over TCP; a new connection costs the
backend a handshake before it says ``HELLO``). The service's configuration says how it uses
its connections: keep them (the default) or open one per request, and how many times to retry
a request whose connection failed. A configuration rolled out with ``reconnect_per_request``
and retries is the 2026-06-02 incident's: every replica reconnects again and again, and the
handshakes eat the backend that other services share.

Here every connection comes from a :class:`~resilient.pool.BoundedPool` (4 at most per
replica) whose new connections all pass the :class:`~resilient.pool.ConnectGate` of the
backend (5 connects a second per process, 2 at once, gRPC's backoff after failures, a breaker
that stops connecting while the backend keeps failing, connections lost young counted as
failures). A bad configuration can then cost the backend at most what the gates allow,
whatever it asks for: the service's own requests wait or fail fast (503), the backend's other
tenants do not notice.

Run it (a stub backend on a free loopback port, the service on port 8080)::

    python examples/connection-storm/service.py
    curl http://127.0.0.1:8080/                     # "OK profile"
    curl -X POST 'http://127.0.0.1:8080/config?reconnect_per_request=1&retries=2'
    curl http://127.0.0.1:8080/stats                # connects, open connections, the gate

The ``connection-storm`` chaos scenario runs this file's :func:`build_app` in each replica of
its guarded arm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from resilient.errors import ResilientError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions, shared_gate
from resilient.ratelimit import Rate

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

GATE_OPTIONS = GateOptions(connect_rate=Rate(5, 1.0, burst=1), max_connecting=2)
"""Per process: 5 connects a second (2 at once), gRPC's backoff, the default breaker."""

POOL_OPTIONS = PoolOptions(max_size=4, acquire_timeout=0.5, max_waiting=64)
"""Per process: 4 connections at most; a request waits 0.5 s for one, then gets a 503."""

CONNECT_TIMEOUT = 0.05
"""Seconds a new connection may take to get the backend's ``HELLO`` (its handshake)."""

REQUEST_TIMEOUT = 0.5
"""Seconds one request to the backend may take."""


@dataclass(frozen=True)
class Config:
    """How the service uses its connections to the backend (its runtime configuration)."""

    reconnect_per_request: bool = False
    """Open a connection for each request and close it after (the incident's configuration)."""
    retries: int = 0
    """Times a request whose connection failed is tried again, at once, on a new connection."""


STORM_CONFIG = Config(reconnect_per_request=True, retries=2)
"""The configuration of the incident's rollout."""


class BackendClient(Protocol):
    """What the service needs of its backend client (the scenario's naive arm has another)."""

    @property
    def connects(self) -> int:
        """Connect attempts started."""
        ...

    @property
    def opened(self) -> int: ...

    @property
    def closed(self) -> int: ...

    async def ask(self, key: str) -> str: ...

    def apply(self, config: Config) -> None: ...

    async def aclose(self) -> None: ...


class Connections:
    """Opens and closes connections to the backend, and counts them."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.connects = 0
        """Connect attempts started (each a handshake the backend pays for)."""
        self.opened = 0
        self.closed = 0

    async def open(self) -> Stream:
        self.connects += 1
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                hello = await reader.readline()
            if hello != b"HELLO\n":
                raise ConnectionResetError(f"the backend said {hello!r}, not HELLO")
        except BaseException:
            writer.close()
            raise
        self.opened += 1
        return reader, writer

    async def close(self, stream: Stream) -> None:
        self.closed += 1
        stream[1].close()
        with contextlib.suppress(OSError):
            await stream[1].wait_closed()


async def ask_on(stream: Stream, key: str) -> str:
    """One request on an open connection: ``GET key``, answered by one line."""
    reader, writer = stream
    writer.write(f"GET {key}\n".encode())
    async with asyncio.timeout(REQUEST_TIMEOUT):
        line = await reader.readline()
    if not line:
        raise ConnectionResetError("the backend closed the connection")
    return line.decode().strip()


def _pool_options(config: Config) -> PoolOptions:
    if config.reconnect_per_request:  # a connection lives for one request
        return dataclasses.replace(POOL_OPTIONS, max_lifetime=1e-6)
    return POOL_OPTIONS


class GuardedClient:
    """The backend through a :class:`BoundedPool` whose connections pass the backend's gate."""

    def __init__(self, host: str, port: int, config: Config, events: EventBus) -> None:
        self._connections = Connections(host, port)
        self._events = events
        self.gate: ConnectGate = shared_gate(f"{host}:{port}", GATE_OPTIONS, events=events)
        self.config = config
        self.pool = self._pool(config)

    def _pool(self, config: Config) -> BoundedPool[Stream]:
        connections = self._connections
        return BoundedPool(
            connections.open,
            connections.close,
            _pool_options(config),
            gate=self.gate,
            events=self._events,
        )

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
        for attempt in range(self.config.retries + 1):
            try:
                async with self.pool.acquire() as stream:
                    return await ask_on(stream, key)
            except ResilientError:
                raise  # the pool or the gate refused: retrying now cannot help
            except OSError:
                if attempt == self.config.retries:
                    raise
        raise AssertionError("unreachable")

    def apply(self, config: Config) -> None:
        """A new configuration: the pool is rebuilt in stages under the same gate (its
        connections retired a few at a time, each replaced through the gate when needed)."""
        self.config = config
        self.pool.rebuild(options=_pool_options(config))

    async def aclose(self) -> None:
        await self.pool.aclose()


CLIENT = web.AppKey("client", BackendClient)


def service_app(client: BackendClient) -> web.Application:
    """The service over any backend client: ``GET /`` asks the backend, ``POST /config``
    applies a configuration, ``GET /stats`` shows the connection counts."""
    app = web.Application()
    app[CLIENT] = client

    async def profile(request: web.Request) -> web.Response:
        try:
            return web.Response(text=await client.ask("profile"))
        except (OSError, ResilientError) as error:
            return web.Response(status=503, text=f"backend unavailable: {type(error).__name__}")

    async def configure(request: web.Request) -> web.Response:
        query = request.query
        config = Config(
            reconnect_per_request=query.get("reconnect_per_request") == "1",
            retries=int(query.get("retries", "0")),
        )
        client.apply(config)
        return web.Response(text=f"{config}\n")

    async def stats(request: web.Request) -> web.Response:
        counts = {"connects": client.connects, "open": client.opened - client.closed}
        return web.Response(text=json.dumps(counts) + "\n", content_type="application/json")

    async def close(app: web.Application) -> None:
        await client.aclose()

    app.router.add_get("/", profile)
    app.router.add_post("/config", configure)
    app.router.add_get("/stats", stats)
    app.on_cleanup.append(close)
    return app


def build_app(
    backend_host: str,
    backend_port: int,
    *,
    config: Config = Config(),
    events: EventBus = DEFAULT_EVENTS,
) -> web.Application:
    """The guarded service: every backend connection through a bounded pool and the gate."""
    return service_app(GuardedClient(backend_host, backend_port, config, events))


# -- running it by hand ----------------------------------------------------------------------

HANDSHAKE = 0.004
"""Seconds a new connection costs the stub backend's one core before it says ``HELLO``."""


async def stub_backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend with one core: each handshake holds it :data:`HANDSHAKE` seconds."""
    await asyncio.sleep(HANDSHAKE)
    writer.write(b"HELLO\n")
    with contextlib.suppress(OSError):
        while line := await reader.readline():
            writer.write(b"OK " + line.split(b" ", 1)[-1])
            await writer.drain()
    writer.close()


async def _main(host: str, port: int) -> None:
    backend = await asyncio.start_server(stub_backend, "127.0.0.1", 0)
    backend_port = backend.sockets[0].getsockname()[1]
    runner = web.AppRunner(build_app("127.0.0.1", backend_port))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"service on http://{host}:{port}/, backend on 127.0.0.1:{backend_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        backend.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
