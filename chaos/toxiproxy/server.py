"""The embedded Toxiproxy server: a drop-in for ``toxiproxy-server`` 2.12 in this process.

:class:`ToxiproxyServer` runs on the caller's event loop; :class:`BackgroundToxiproxy` runs one on
its own loop in a daemon thread, for synchronous code or to keep proxy traffic off the caller's
loop. Both serve the same HTTP API (``/proxies``, ``/populate``, toxics, ``/reset``,
``/version``) and relay real TCP connections through the configured toxics.

Where it differs from toxiproxy-server 2.12 (on purpose, see ``toxiproxy-api.md`` section 9):

* attribute values that crash or hang Toxiproxy (negative ``rate`` or times, slicer
  ``average_size`` 0 or ``size_variation`` above ``average_size``) get 400
  ``invalid attribute NAME: ...`` on create and on update (after the merge), changing nothing;
* ``seed`` makes jitter, toxicity draws and slicer cuts reproducible (per proxy name, connection
  number and direction), where Toxiproxy ignores ``-seed``;
* a listen address with no host (``:8080`` or empty) binds loopback, not every interface;
* ``reset_peer`` always resets the client with a TCP RST (SO_LINGER 0), also on connections that
  were open before the toxic was added (Toxiproxy sends a plain FIN to those);
* ``reset_peer``'s wait follows the toxic like every other toxic's: removing it lets the chunk
  through, updating it measures the new ``timeout`` from the chunk's arrival (Toxiproxy's wait is
  a bare timer that neither removal nor update reaches);
* removing a ``timeout`` toxic closes the connections on which it applied (its toxicity draw
  said yes), where Toxiproxy closes every connection of the proxy;
* the stages of one direction handle one chunk at a time, so the waits of a ``slicer`` and a
  ``bandwidth`` in the same direction add up instead of overlapping (latency is measured from
  the time each chunk was read, so a burst still arrives about one latency later);
* the proxy JSON has no ``"Logger":{}`` field;
* a proxy whose upstream leads back to itself (its own listen address, or a cycle through other
  proxies of this server) is refused with 400 (Toxiproxy accepts it and runs out of file
  descriptors);
* out of file descriptors, a proxy sheds the connection waiting in its backlog (accepting it with
  a spare descriptor and closing it at once) where Toxiproxy leaves it waiting, and the API
  accepts its requests into spare descriptors so that it keeps answering; both pause accepting
  from 5 ms doubling to 1 s, as Go's ``net/http`` does, and log one warning a minute at most;
* a request body may be at most 1 MiB (aiohttp's limit; 413 beyond), where Toxiproxy has none.

As Toxiproxy, the API gives a request 15 s to arrive and a keep-alive connection 60 s between
requests, reads numbers and nesting exactly as Go's ``encoding/json`` does (``toxicity`` is a
float32: past its range a 400 with Go's message; at most 10,000 levels of nesting), and writes
replies as ``json.Marshal`` does (a float32 in its shortest form, ``<``, ``>`` and ``&`` escaped).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Final

from aiohttp import web

from chaos.toxiproxy._accept import Acceptor, bind_listener
from chaos.toxiproxy._api import TOXIPROXY_VERSION, make_app
from chaos.toxiproxy._collection import ApiError, ProxyCollection
from chaos.toxiproxy._http import DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, ApiConnections

__all__ = ["DEFAULT_HOST", "TOXIPROXY_VERSION", "BackgroundToxiproxy", "ToxiproxyServer"]

DEFAULT_HOST: Final = "127.0.0.1"
"""The API and proxies listen on loopback unless told otherwise (toxiproxy-server: localhost)."""

_log = logging.getLogger("chaos.toxiproxy")


class ToxiproxyServer:
    """A Toxiproxy-compatible server on the running event loop.

    ``port=0`` picks a free port; after :meth:`start`, :attr:`port` and :attr:`url` give the
    real one. ``seed`` makes every random draw (jitter, toxicity, slicer cuts) reproducible.
    ``config`` is a JSON file in the ``/populate`` format loaded at start; like toxiproxy-server,
    a missing or bad file is logged and the server starts anyway. ``read_timeout`` (seconds for
    a whole request to arrive) and ``idle_timeout`` (between keep-alive requests) default to
    toxiproxy-server's 15 s and 60 s. :meth:`stop` closes the API listener, every proxy listener
    and every live connection, and awaits their tasks.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        seed: int | None = None,
        config: str | os.PathLike[str] | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.config = Path(config) if config is not None else None
        self.idle_timeout = idle_timeout
        self._connections = ApiConnections(read_timeout)
        self._collection = ProxyCollection(seed=seed)
        self._runner: web.AppRunner | None = None
        self._acceptor: Acceptor | None = None

    @property
    def read_timeout(self) -> float:
        """Seconds a request (headers and body) may take to arrive before its connection closes."""
        return self._connections.read_timeout

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:8474``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def collection(self) -> ProxyCollection:
        """The server's proxies (for introspection in tests)."""
        return self._collection

    async def start(self) -> None:
        """Bind the API (and the ``config`` proxies); return once it accepts requests."""
        if self._runner is not None:
            raise RuntimeError("ToxiproxyServer is already started")
        runner = web.AppRunner(
            make_app(self._collection, self._connections),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.idle_timeout,
        )
        await runner.setup()
        try:
            sock = bind_listener(await _resolve(self.host), self.port)
        except BaseException:
            await runner.cleanup()
            raise
        assert runner.server is not None
        guard = self._collection.guard
        guard.open()
        acceptor = Acceptor(
            sock, self._connections.factory(runner.server), name="API", guard=guard, shed=False
        )
        acceptor.start()
        self._runner = runner
        self._acceptor = acceptor
        self.port = acceptor.address[1]
        _log.info("API listening on %s", self.url)
        if self.config is not None:
            await self._load_config(self.config)

    async def _load_config(self, path: Path) -> None:
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as error:
            _log.error("config %s not loaded: %s", path, error)
            return
        try:
            proxies = await self._collection.populate(body)
        except ApiError as error:
            _log.error("config %s: %s", path, error.message)
            return
        _log.info("config %s: %d proxies", path, len(proxies))

    async def stop(self) -> None:
        """Close the API, every proxy and every connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        await runner.cleanup()
        await self._collection.stop_all()
        self._collection.guard.close()

    async def __aenter__(self) -> ToxiproxyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class BackgroundToxiproxy:
    """A :class:`ToxiproxyServer` on its own event loop in a daemon thread (sync API).

    :meth:`start` returns once the API accepts requests; :meth:`stop` stops the server, ends the
    loop and joins the thread.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        seed: int | None = None,
        config: str | os.PathLike[str] | None = None,
        use_uvloop: bool = False,
    ) -> None:
        self.server = ToxiproxyServer(host, port, seed=seed, config=config)
        self._use_uvloop = use_uvloop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (while started)."""
        if self._loop is None:
            raise RuntimeError("BackgroundToxiproxy is not started")
        return self._loop

    def start(self) -> None:
        """Start the thread and the server; raise what the server's start raised."""
        if self._thread is not None:
            raise RuntimeError("BackgroundToxiproxy is already started")
        if self._use_uvloop:
            import uvloop  # type: ignore[import-not-found,unused-ignore]

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="toxiproxy", daemon=True)
        try:
            thread.start()
        except BaseException:
            loop.close()  # a thread that cannot start leaves no loop behind
            raise
        self._loop = loop
        self._thread = thread
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), loop).result()
        except BaseException:
            self._shutdown()
            raise

    def stop(self) -> None:
        """Stop the server and the loop and join the thread; idempotent."""
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(_cancel_remaining(loop))
        loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> BackgroundToxiproxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


async def _resolve(host: str) -> str:
    """The IP address to bind for ``host`` (IPv4 first); :class:`OSError` if it has none."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


async def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
