"""One proxy (``chaos.toxiproxy._proxy``) driven directly: its listener, connections and draws.

``test_api.py`` and ``test_toxics.py`` check proxies through the API; here a :class:`Proxy` is
started on loopback against an echo peer, so what the API does not show is exact: the log line
of a start, the accept loop's name and shedding, each socket's write buffer limit, the grace
before a closing connection is aborted, the draws of seeded and unseeded proxies, and which
stop outdates an accepted connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest

from chaos.toxiproxy import _link
from chaos.toxiproxy._accept import FdGuard
from chaos.toxiproxy._link import WorkBudget
from chaos.toxiproxy._proxy import Connection, Proxy, resolve_listen
from chaos.toxiproxy._toxics import Stage, Toxic
from tests.chaos.toxiproxy.conftest import Peer, round_trip

pytestmark = pytest.mark.real_server


def _proxy(peer: Peer, seed: int | None = None) -> Proxy:
    return Proxy("p", "127.0.0.1:0", peer.address, seed=seed, guard=FdGuard(), budget=WorkBudget())


@pytest.fixture
async def started(echo_peer: Peer) -> AsyncIterator[Proxy]:
    proxy = _proxy(echo_peer, seed=7)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(abort=True)


async def _connected(proxy: Proxy) -> tuple[Connection, asyncio.StreamWriter]:
    host, port = proxy.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await round_trip(reader, writer)  # accepted, dialled and relaying
    (connection,) = proxy._connections
    return connection, writer


async def test_a_start_is_one_info_line_naming_the_proxy_its_address_and_upstream(
    echo_peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chaos.toxiproxy")
    proxy = _proxy(echo_peer)
    await proxy.start()
    try:
        assert [r.getMessage() for r in caplog.records if r.name == "chaos.toxiproxy"] == [
            f"proxy p listening on {proxy.listen}, upstream {echo_peer.address}"
        ]
    finally:
        await proxy.stop(abort=True)


async def test_a_proxys_accept_loop_is_named_after_it_and_sheds_load(started: Proxy) -> None:
    acceptor = started._acceptor
    assert acceptor is not None
    assert (acceptor._name, acceptor._shed) == ("proxy p", True)


async def test_every_socket_pauses_its_source_above_256_kib_unsent(started: Proxy) -> None:
    connection, writer = await _connected(started)
    for side in (connection.client, connection.server):
        assert side.transport is not None
        assert side.transport.get_write_buffer_limits() == (64 * 1024, 256 * 1024)
    writer.close()


async def test_a_closing_connection_is_aborted_after_a_grace_of_10_seconds(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    loop = asyncio.get_running_loop()
    connection.close()
    assert connection._grace is not None
    assert connection._grace.when() - loop.time() == pytest.approx(10.0, abs=0.5)
    writer.close()


async def test_a_plain_stop_closes_connections_without_waiting_for_them(echo_peer: Peer) -> None:
    proxy = _proxy(echo_peer)
    await proxy.start()
    _connection, writer = await _connected(proxy)
    await proxy.stop()  # flushing: the sockets close in their own time
    assert proxy.connection_count == 1
    await proxy.wait_connections_closed()
    assert proxy.connection_count == 0
    writer.close()


async def test_a_seeded_proxy_draws_per_connection_number_from_1_and_direction(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    assert connection.up.rng.random() == random.Random("7/p/1/up").random()
    assert connection.down.rng.random() == random.Random("7/p/1/down").random()
    writer.close()


def test_an_unseeded_proxy_shares_one_generator_among_its_links(echo_peer: Peer) -> None:
    proxy = _proxy(echo_peer)
    shared = proxy._link_rng(1, "up")
    assert isinstance(shared, random.Random)
    assert proxy._link_rng(2, "down") is shared


async def test_a_connection_accepted_before_any_later_stop_does_not_live_on(
    echo_peer: Peer,
) -> None:
    proxy = _proxy(echo_peer)
    await proxy.start()
    await proxy.stop()
    await proxy.start()  # the second life of the same proxy
    acceptor = proxy._acceptor
    assert acceptor is not None
    client = socket.create_connection(acceptor.address, timeout=2)
    acceptor._ready()  # accepted; its setup is scheduled but has not run
    await proxy.stop()
    reader, writer = await asyncio.open_connection(sock=client)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once
    writer.close()
    await proxy.wait_connections_closed()
    assert proxy.connection_count == 0


@pytest.mark.parametrize(("listen", "port"), [("", 0), (":5000", 5000)])
async def test_an_empty_listen_host_means_loopback(listen: str, port: int) -> None:
    assert await resolve_listen(listen) == ("127.0.0.1", port)


async def test_waiting_for_connections_returns_as_soon_as_they_are_gone(
    echo_peer: Peer,
) -> None:
    proxy = _proxy(echo_peer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await proxy.wait_connections_closed()  # none: at once
    assert loop.time() - started < 0.5
    await proxy.start()
    _connection, writer = await _connected(proxy)
    await proxy.stop()
    started = loop.time()
    await proxy.wait_connections_closed()  # polled every 5 ms, not every second
    assert loop.time() - started < 0.5
    assert proxy.connection_count == 0
    writer.close()


async def test_a_toxic_updated_restarts_its_stage_on_every_open_connection(
    started: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Counting(Stage):
        def start(self) -> None:
            self.starts = getattr(self, "starts", 0) + 1
            super().start()

    monkeypatch.setattr(_link, "make_stage", Counting)
    connection, writer = await _connected(started)
    toxic = Toxic("t", "noop", "downstream", False, 1.0, {})
    started.add_toxic(toxic)
    (stage,) = connection.down.stages
    assert cast(Counting, stage).starts == 1
    started.update_toxic(toxic)
    assert cast(Counting, stage).starts == 2
    started.remove_toxic(toxic)
    assert connection.down.stages == []
    writer.close()
