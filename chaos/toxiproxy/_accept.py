"""Listening sockets and their accept loop, which survives running out of file descriptors.

asyncio's own accept loop (``loop.create_server``) is not used: out of file descriptors, it logs a
traceback for every accept of a batch, schedules one retry per failure, and retries after a fixed
second; with ``ulimit -n 1024`` and a proxy looping to itself that was 8.6 MB of tracebacks in 8 s
while ``/version`` went unanswered. :class:`Acceptor` does what Go's ``net/http`` server does
instead: on EMFILE, ENFILE, ENOBUFS or ENOMEM it stops accepting for 5 ms, doubling up to 1 s,
until an accept succeeds; :class:`FdGuard` logs one warning for the whole episode (then at most
one a minute, with a count).

The guard also holds a few spare descriptors (``/dev/null``). A proxy's acceptor sheds load with
one: it frees it, accepts the waiting connection, closes that at once and takes the spare back,
so a client (or a loop of proxies through some other relay) waiting in the backlog gets EOF
instead of holding descriptors for ever. The API's acceptor serves with them: it frees a spare
and accepts the request's connection into it, so ``/version`` and ``DELETE`` are answered while
proxy connections hold every other descriptor. Spares are taken back whenever an accept succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Final

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "Acceptor", "FdGuard", "bind_listener"]

_log = logging.getLogger("chaos.toxiproxy")

BACKOFF_FIRST: Final = 0.005
"""First pause of accepting after running out of descriptors (Go's net/http: 5 ms)."""
BACKOFF_MAX: Final = 1.0
"""Longest pause; each failed retry doubles the pause up to this (Go's net/http: 1 s)."""
_WARN_EVERY: Final = 60.0
"""Seconds between two warnings about descriptor exhaustion (the first one is immediate)."""
_BATCH: Final = 64
"""Connections accepted per readiness callback before the loop gets a turn."""
_BACKLOG: Final = 128
_SPARES: Final = 4
"""Spare descriptors the guard holds: one sheds a proxy connection, the rest admit API requests."""
_EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def is_exhaustion(error: OSError) -> bool:
    """Whether ``error`` says the process or the system ran out of descriptors or buffers."""
    return error.errno in _EXHAUSTED


class FdGuard:
    """The server's answer to descriptor exhaustion: spare descriptors, and quiet logging.

    :meth:`open` takes the spares, :meth:`close` gives them back. :meth:`exhausted` counts one
    refusal and logs a warning for the first one, then at most one a minute (with the count of
    refusals since), however often accepting pauses and resumes in between.
    """

    def __init__(self) -> None:
        self._spares: list[int] = []
        self._open = False
        self._warned_at: float | None = None
        self._refused = 0

    def open(self) -> None:
        self._open = True
        self.refill()

    def close(self) -> None:
        self._open = False
        while self._spares:
            os.close(self._spares.pop())

    @property
    def spares(self) -> int:
        """Spare descriptors held now."""
        return len(self._spares)

    def refill(self) -> None:
        """Take back the spares given away, as far as descriptors allow."""
        while self._open and len(self._spares) < _SPARES:
            try:
                self._spares.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                return

    def release(self) -> bool:
        """Free one spare descriptor for the caller's next ``accept``; False if none is left."""
        if not self._spares:
            return False
        os.close(self._spares.pop())
        return True

    def exhausted(self, where: str, error: OSError) -> None:
        self._refused += 1
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < _WARN_EVERY:
            return
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        _log.warning(
            "%s: %s; accepting with a pause of %g ms doubling to %g s, shedding waiting "
            "connections (%d refused since the last warning)",
            where,
            reason,
            BACKOFF_FIRST * 1000,
            BACKOFF_MAX,
            self._refused,
        )
        self._warned_at = now
        self._refused = 0

    def recovered(self, where: str) -> None:
        """An accept succeeded after a pause (the next warning still waits its minute)."""
        _log.debug("%s: accepting again", where)


def bind_listener(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host`` (an IP address) and ``port``.

    Raises :class:`OSError`; its ``filename`` is ``"socket"`` when no socket could be made and
    ``"bind"`` when the address could not be bound (``"listen"`` for the last step).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        error.filename = "socket"
        raise
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        step = "bind"
        sock.bind((host, port))
        step = "listen"
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        error.filename = step
        raise
    return sock


class Acceptor:
    """Accepts connections on ``sock`` and hands each to a protocol from ``factory``.

    ``shed``: out of descriptors, close one waiting connection per pause (proxies); otherwise
    serve waiting connections with the guard's spare descriptors (the API). :meth:`close` stops
    accepting and closes the socket; a connection already accepted still gets its protocol, which
    decides (a stopped proxy closes it at once). An accepted socket is never left open: if its
    setup is cancelled before it runs (the loop shutting down), it is closed.
    """

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        name: str,
        guard: FdGuard,
        shed: bool,
    ) -> None:
        self.sock = sock
        self._factory = factory
        self._name = name
        self._guard = guard
        self._shed = shed
        self._loop = asyncio.get_running_loop()
        self._pause = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._setups: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (host, port)."""
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])

    @property
    def paused(self) -> float:
        """The current pause in seconds (0 while accepting normally)."""
        return self._pause

    def start(self) -> None:
        self._loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        else:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _ready(self) -> None:
        for _ in range(_BATCH):
            try:
                connection, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if not is_exhaustion(error):
                    _log.warning("%s: accept failed: %s", self._name, error)
                    return
                if self._shed or not self._guard.release():
                    self._exhausted(error)
                    return
                continue  # a spare descriptor is free for the next accept
            if self._pause:
                self._pause = 0.0
                self._guard.recovered(self._name)
            self._guard.refill()
            self._serve(connection)

    def _exhausted(self, error: OSError) -> None:
        self._guard.exhausted(self._name, error)
        if self._shed and self._guard.release():
            with contextlib.suppress(OSError):
                connection, _address = self.sock.accept()
                connection.close()
            self._guard.refill()
        self._pause = min(max(self._pause * 2, BACKOFF_FIRST), BACKOFF_MAX)
        self._loop.remove_reader(self.sock.fileno())
        self._timer = self._loop.call_later(self._pause, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._guard.refill()
        if not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._ready)

    def _serve(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        task = self._loop.create_task(self._setup(connection))
        self._setups.add(task)
        task.add_done_callback(partial(self._set_up, connection))

    def _set_up(self, connection: socket.socket, task: asyncio.Task[None]) -> None:
        self._setups.discard(task)
        if task.cancelled():  # perhaps before its first step, where no except clause runs
            connection.close()

    async def _setup(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, connection)
        except OSError as error:  # the peer went away, or no descriptor for the transport
            connection.close()
            if is_exhaustion(error):
                self._guard.exhausted(self._name, error)
            else:
                _log.debug("%s: accepted connection lost at once: %s", self._name, error)
        except BaseException:
            connection.close()
            raise
