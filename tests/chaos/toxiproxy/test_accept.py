"""The accept loop: every accepted connection is served or closed, whatever happens meanwhile.

These drive :class:`chaos.toxiproxy._accept.Acceptor` directly, so the moments that are hard to
hit through the API (a proxy disabled between an accept and the connection's setup) are exact.
:class:`FdGuard` is driven with a hand-moved clock (one warning an episode, then one a minute)
and :func:`bind_listener` with sockets that record or fail a step.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import itertools
import logging
import os
import socket
from typing import ClassVar

import pytest

from chaos.toxiproxy import _accept
from chaos.toxiproxy._accept import BACKOFF_FIRST, BACKOFF_MAX, Acceptor, FdGuard, bind_listener
from chaos.toxiproxy._link import WorkBudget
from chaos.toxiproxy._proxy import Proxy
from tests.chaos.toxiproxy.conftest import Peer

pytestmark = pytest.mark.real_server


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_a_connection_accepted_just_before_close_is_still_served() -> None:
    guard = FdGuard()
    acceptor = Acceptor(bind_listener("127.0.0.1", 0), _Echo, name="t", guard=guard, shed=False)
    reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)  # in the backlog
    acceptor._ready()  # accepted; its setup is scheduled but has not run
    acceptor.close()
    writer.write(b"late")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"late"  # served, not hung
    writer.close()
    assert not acceptor._setups


async def test_a_setup_cancelled_before_it_runs_closes_its_socket() -> None:
    guard = FdGuard()
    acceptor = Acceptor(bind_listener("127.0.0.1", 0), _Echo, name="t", guard=guard, shed=False)
    reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)
    gc.disable()  # closed by the acceptor, not left for the collector to find
    try:
        acceptor._ready()
        (setup,) = acceptor._setups
        setup.cancel()  # as the loop's shutdown cancels every task
        assert await asyncio.wait_for(reader.read(), 2) == b""  # EOF, not a hang
    finally:
        gc.enable()
    writer.close()
    acceptor.close()
    assert not acceptor._setups


async def test_a_proxy_stopped_between_an_accept_and_its_setup_closes_that_connection(
    echo_peer: Peer,
) -> None:
    proxy = Proxy(
        "p", "127.0.0.1:0", echo_peer.address, seed=None, guard=FdGuard(), budget=WorkBudget()
    )
    await proxy.start()
    assert proxy._acceptor is not None
    acceptor = proxy._acceptor
    # A blocking connect: the loop does not run (and accept) until the stop below.
    client = socket.create_connection(acceptor.address, timeout=2)
    acceptor._ready()  # accepted; its setup is scheduled but has not run
    await proxy.stop()
    reader, writer = await asyncio.open_connection(sock=client)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # EOF at once, not a hang
    writer.close()
    await proxy.wait_connections_closed()
    assert proxy.connection_count == 0
    assert echo_peer.connections == 0  # never dialled


async def test_an_accepted_connection_is_served_and_the_listener_freed_on_close() -> None:
    guard = FdGuard()
    acceptor = Acceptor(bind_listener("127.0.0.1", 0), _Echo, name="t", guard=guard, shed=False)
    acceptor.start()
    port = acceptor.address[1]
    reader, writer = await _client(port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"ping"
    acceptor.close()
    acceptor.close()  # idempotent
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await _client(port)


class _Exhausted(socket.socket):
    """A listening socket whose accept fails with EMFILE ``failures`` times."""

    failures = 0

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


async def test_out_of_descriptors_the_pause_doubles_from_5_ms_to_1_s_and_resets() -> None:
    guard = FdGuard()
    sock = bind_listener("127.0.0.1", 0)
    exhausted = _Exhausted(sock.family, sock.type, fileno=sock.detach())
    exhausted.setblocking(False)
    acceptor = Acceptor(exhausted, _Echo, name="t", guard=guard, shed=False)
    exhausted.failures = 12
    pauses = []
    for _ in range(12):
        acceptor._ready()
        pauses.append(acceptor.paused)
        assert acceptor._timer is not None
        acceptor._timer.cancel()
        acceptor._resume()
    assert pauses[:3] == [BACKOFF_FIRST, BACKOFF_FIRST * 2, BACKOFF_FIRST * 4]
    assert pauses[-1] == BACKOFF_MAX
    assert all(b == min(a * 2, BACKOFF_MAX) for a, b in itertools.pairwise(pauses))
    reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)
    acceptor._ready()  # an accept succeeds: the pause is over
    assert acceptor.paused == 0
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"x"
    writer.close()
    acceptor.close()


async def test_the_guard_sheds_a_waiting_proxy_connection_and_serves_an_api_one() -> None:
    guard = FdGuard()
    guard.open()
    try:
        spares = guard.spares
        assert spares == 4
        sock = bind_listener("127.0.0.1", 0)
        exhausted = _Exhausted(sock.family, sock.type, fileno=sock.detach())
        exhausted.setblocking(False)
        shedding = Acceptor(exhausted, _Echo, name="proxy", guard=guard, shed=True)
        reader, writer = await _client(shedding.address[1])
        await asyncio.sleep(0.05)
        exhausted.failures = 1
        shedding._ready()  # EMFILE: a spare is freed, the waiting connection taken and closed
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert guard.spares == spares  # taken back
        writer.close()
        shedding.close()

        sock = bind_listener("127.0.0.1", 0)
        exhausted = _Exhausted(sock.family, sock.type, fileno=sock.detach())
        exhausted.setblocking(False)
        serving = Acceptor(exhausted, _Echo, name="API", guard=guard, shed=False)
        reader, writer = await _client(serving.address[1])
        await asyncio.sleep(0.05)
        exhausted.failures = 1
        serving._ready()  # EMFILE: a spare is freed and the connection accepted into it
        writer.write(b"api")
        assert await asyncio.wait_for(reader.readexactly(3), 2) == b"api"
        assert serving.paused == 0
        writer.close()
        serving.close()
    finally:
        guard.close()
    assert guard.spares == 0


def test_bind_listener_names_the_step_that_failed() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(OSError, match="in use") as caught:
            bind_listener("127.0.0.1", port)
    assert (caught.value.errno, caught.value.filename) == (errno.EADDRINUSE, "bind")


# -- FdGuard: one warning an episode, spare descriptors ----------------------------------------


class _Clock:
    """``time.monotonic`` as the guard sees it, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(_accept, "time", clock)
    return clock


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "chaos.toxiproxy" and record.levelno == logging.WARNING
    ]


def test_the_first_refusal_is_one_warning_with_its_reason_and_the_backoff(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    FdGuard().exhausted("proxy p", OSError(errno.EMFILE, "ignored"))
    assert _warnings(caplog) == [
        "proxy p: too many open files; accepting with a pause of 5 ms doubling to 1 s, "
        "shedding waiting connections (1 refused since the last warning)"
    ]


def test_a_refusal_without_an_errno_is_described_by_its_text(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    FdGuard().exhausted("API", OSError("no buffers"))
    (warning,) = _warnings(caplog)
    assert warning.startswith("API: no buffers; accepting")


def test_then_at_most_one_warning_a_minute_counting_the_refusals_since(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    guard = FdGuard()
    error = OSError(errno.ENFILE, "ignored")
    guard.exhausted("p", error)
    clock.now += 30.0
    guard.exhausted("p", error)
    clock.now += 29.999
    guard.exhausted("p", error)
    assert len(_warnings(caplog)) == 1  # quiet within the minute
    clock.now += 0.001  # a minute after the first warning
    guard.exhausted("p", error)
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert warnings[1].startswith("p: too many open files in system;")
    assert warnings[1].endswith("(3 refused since the last warning)")
    clock.now += 59.0  # the minute counts from the last warning, not the first
    guard.exhausted("p", error)
    assert len(_warnings(caplog)) == 2
    clock.now += 1.0
    guard.exhausted("p", error)
    assert _warnings(caplog)[2].endswith("(2 refused since the last warning)")


def test_recovering_waits_out_the_minute_and_says_so_at_debug(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    guard = FdGuard()
    error = OSError(errno.EMFILE, "ignored")
    guard.exhausted("p", error)
    guard.recovered("p")
    guard.exhausted("p", error)  # a new episode within the minute: still quiet
    assert len(_warnings(caplog)) == 1
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == ["p: accepting again"]


def test_spares_are_taken_on_open_given_away_one_at_a_time_and_taken_back() -> None:
    guard = FdGuard()
    guard.refill()  # not open: takes nothing
    assert guard.spares == 0
    assert guard.release() is False  # none to give
    guard.open()
    try:
        assert guard.spares == 4
        assert guard.release() is True
        assert guard.release() is True
        assert guard.spares == 2
        guard.refill()
        assert guard.spares == 4
    finally:
        guard.close()
    assert guard.spares == 0
    guard.refill()  # closed: takes nothing again
    assert guard.spares == 0


def test_refilling_stops_when_no_descriptor_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = FdGuard()
    opened: list[int] = []
    real_open = os.open

    def open_two(path: str, flags: int) -> int:
        if len(opened) == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        opened.append(real_open(path, flags))
        return opened[-1]

    monkeypatch.setattr(os, "open", open_two)
    try:
        guard.open()
        assert guard.spares == 2
    finally:
        monkeypatch.undo()
        guard.close()
    assert guard.spares == 0


# -- bind_listener and the accept batch ----------------------------------------------------------


class _Recording(socket.socket):
    """A socket recording the backlog it listens with, or failing at one step."""

    backlogs: ClassVar[list[int]] = []
    fail_listen: ClassVar[bool] = False

    def listen(self, backlog: int = 0, /) -> None:
        if _Recording.fail_listen:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        _Recording.backlogs.append(backlog)
        super().listen(backlog)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> type[_Recording]:
    _Recording.backlogs = []
    _Recording.fail_listen = False
    monkeypatch.setattr(socket, "socket", _Recording)
    return _Recording


def test_a_listener_listens_with_a_backlog_of_128_reusing_the_address(
    recording: type[_Recording],
) -> None:
    with bind_listener("127.0.0.1", 0) as sock:
        assert recording.backlogs == [128]
        assert sock.family == socket.AF_INET
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getblocking() is False


def test_an_ipv6_listener_is_ipv6_only() -> None:
    with bind_listener("::1", 0) as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert sock.getsockname()[0] == "::1"


def test_bind_listener_names_a_failed_listen_and_a_socket_that_could_not_be_made(
    recording: type[_Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    recording.fail_listen = True
    with pytest.raises(OSError, match="already in use") as caught:
        bind_listener("127.0.0.1", 0)
    assert caught.value.filename == "listen"

    def no_socket(*args: object) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(socket, "socket", no_socket)
    with pytest.raises(OSError, match="Too many open files") as caught:
        bind_listener("127.0.0.1", 0)
    assert (caught.value.errno, caught.value.filename) == (errno.EMFILE, "socket")


async def test_one_readiness_callback_accepts_at_most_64_connections() -> None:
    acceptor = Acceptor(bind_listener("127.0.0.1", 0), _Echo, name="t", guard=FdGuard(), shed=False)
    clients = [await _client(acceptor.address[1]) for _ in range(70)]
    await asyncio.sleep(0.05)  # all in the backlog
    acceptor._ready()
    assert len(acceptor._setups) == 64  # then the loop gets a turn
    acceptor._ready()
    assert len(acceptor._setups) == 70
    for _reader, writer in clients:
        writer.close()
    acceptor.close()
    await asyncio.gather(*acceptor._setups)


class _Failing(socket.socket):
    """A listening socket whose next accepts fail with the errors in ``errors``."""

    errors: list[OSError]

    def accept(self) -> tuple[socket.socket, object]:
        if self.errors:
            raise self.errors.pop(0)
        return super().accept()


def _failing_acceptor(errors: list[OSError], *, name: str = "t") -> tuple[Acceptor, _Failing]:
    sock = bind_listener("127.0.0.1", 0)
    failing = _Failing(sock.family, sock.type, fileno=sock.detach())
    failing.setblocking(False)
    failing.errors = errors
    return Acceptor(failing, _Echo, name=name, guard=FdGuard(), shed=False), failing


async def test_a_connection_aborted_in_the_backlog_is_skipped_and_the_next_one_accepted() -> None:
    acceptor, _sock = _failing_acceptor([ConnectionAbortedError(errno.ECONNABORTED, "aborted")])
    reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)
    acceptor._ready()
    assert len(acceptor._setups) == 1  # accepted in the same callback
    assert acceptor.paused == 0
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"x"
    writer.close()
    acceptor.close()


async def test_another_accept_error_is_one_warning_naming_the_acceptor_and_no_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    error = OSError(errno.EPROTO, "Protocol error")
    acceptor, _sock = _failing_acceptor([error], name="proxy p")
    _reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)
    acceptor._ready()  # fails: the waiting connection stays for the next callback
    assert _warnings(caplog) == [f"proxy p: accept failed: {error}"]
    assert (acceptor.paused, acceptor._timer, acceptor._setups) == (0, None, set())
    acceptor._ready()
    assert len(acceptor._setups) == 1
    writer.close()
    acceptor.close()


async def test_out_of_descriptors_the_warning_names_the_acceptor(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    acceptor, _sock = _failing_acceptor([OSError(errno.EMFILE, "x")], name="API")
    acceptor._ready()  # no spare to serve with: a pause
    assert acceptor.paused == BACKOFF_FIRST
    (warning,) = _warnings(caplog)
    assert warning.startswith("API: too many open files;")
    acceptor.close()


async def test_after_a_pause_accepting_resumes_by_itself_and_not_once_closed() -> None:
    acceptor, _sock = _failing_acceptor([OSError(errno.EMFILE, "x")])
    acceptor.start()
    acceptor._ready()  # paused: no longer watching the socket
    assert acceptor._timer is not None
    acceptor._timer.cancel()
    acceptor._resume()  # the pause is over (called at once instead of waiting 5 ms)
    reader, writer = await _client(acceptor.address[1])
    writer.write(b"x")  # accepted and served by the loop, no _ready() called by hand
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"x"
    writer.close()

    other, failing = _failing_acceptor([OSError(errno.EMFILE, "x")])
    other.start()
    other._ready()
    assert other._timer is not None
    timer = other._timer
    other.close()  # closing during a pause cancels it
    assert timer.cancelled()
    other._resume()  # a resume that raced the close watches nothing
    assert failing.fileno() == -1
    acceptor.close()


@pytest.mark.parametrize(
    ("error", "level", "message"),
    [
        (
            OSError(errno.ECONNRESET, "Connection reset by peer"),
            logging.DEBUG,
            "t: accepted connection lost at once: [Errno 104] Connection reset by peer",
        ),
        (OSError(errno.EMFILE, "x"), logging.WARNING, "t: too many open files; accepting"),
    ],
)
async def test_a_setup_that_fails_closes_the_connection_and_says_why(
    clock: _Clock,
    caplog: pytest.LogCaptureFixture,
    error: OSError,
    level: int,
    message: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")

    def failing() -> asyncio.Protocol:
        raise error

    acceptor = Acceptor(
        bind_listener("127.0.0.1", 0), failing, name="t", guard=FdGuard(), shed=False
    )
    reader, writer = await _client(acceptor.address[1])
    await asyncio.sleep(0.05)
    acceptor._ready()
    await asyncio.gather(*acceptor._setups)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, not left open
    logged = [
        r.getMessage() for r in caplog.records if r.name == "chaos.toxiproxy" and r.levelno == level
    ]
    assert len(logged) == 1
    assert logged[0].startswith(message)
    writer.close()
    acceptor.close()
