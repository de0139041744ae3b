"""Serving on loopback what a scenario declares: each topology server, and the service under test.

Every server gets a free loopback port and is stopped when its ``async with`` block exits, so
an arm leaves no process and no port behind, also when it is cancelled at any instant (Ctrl-C):
a step that binds a port runs to its end first (:func:`chaos._completing.run_to_end`). A
server that cannot start, or a service that does not answer, raises :class:`ServeError` naming
it: the harness's failure, never a guard's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from chaos._completing import run_to_end
from chaos.scenario import AiohttpServer, RedisServer, Server, TcpServer
from chaos.servers import redis_server

__all__ = ["ServeError", "check_answers", "serve_app", "serve_server"]


class ServeError(Exception):
    """A topology server did not start, or the service under test does not answer."""


@contextlib.asynccontextmanager
async def serve_server(
    server: Server, started: Mapping[str, tuple[str, int]] | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Start one topology server on a free loopback port; stop it on exit. ``started``: the
    addresses of the servers started before it, for an app factory that takes them."""
    match server:
        case RedisServer():
            try:
                async with redis_server() as redis:
                    yield redis.host, redis.port
            except (RuntimeError, TimeoutError) as exc:
                raise ServeError(f"server {server.name!r}: {exc}") from exc
        case AiohttpServer():
            factory: Any = server.app
            takes_addresses = len(inspect.signature(factory).parameters) == 1
            made = factory(dict(started or {})) if takes_addresses else factory()
            app = await made if inspect.isawaitable(made) else made
            async with serve_app(app) as url:
                host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
                yield host, int(port)
        case TcpServer():
            starting = asyncio.start_server(server.handler, "127.0.0.1", 0)
            tcp = await run_to_end(starting, release=asyncio.Server.close)
            try:
                host, port = tcp.sockets[0].getsockname()[:2]
                yield host, port
            finally:
                tcp.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await tcp.wait_closed()


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL ``http://127.0.0.1:PORT/``."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await run_to_end(site.start())  # registered with the runner: its cleanup stops it
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


async def check_answers(base_url: str) -> None:
    """One request before the load: the service must answer at all (any status)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(base_url, timeout=aiohttp.ClientTimeout(total=10)) as response,
        ):
            await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServeError(f"the service under test does not answer at {base_url}: {exc}") from exc
