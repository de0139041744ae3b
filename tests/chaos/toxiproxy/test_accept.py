"""The accept loop: every accepted connection is served or closed, whatever happens meanwhile.

These drive :class:`chaos.toxiproxy._accept.Acceptor` directly, so the moments that are hard to
hit through the API (a proxy disabled between an accept and the connection's setup) are exact.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import itertools
import socket

import pytest

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
